"""Monitoring objects: the PrometheusRule with the rendered alert groups, Ollama's Probe, and the dashboards
as ConfigMaps (Grafana sidecar) or GrafanaDashboard objects (grafana-operator)."""

from __future__ import annotations

from typing import Any

from ..alerts import Rules
from ..alerts.llm import ollama_probe_job, ollama_probe_url
from ..alerts.transform import groups
from ..k8s import LLM_SERVER, config_map, metadata
from ..profile import Profile

RULE_NAME = "perfstack-alerts"  # the PrometheusRule object


def prometheus_rule(profile: Profile, rules: Rules) -> dict[str, Any]:
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": metadata(profile, RULE_NAME, "alerts", dict(profile.kubernetes.prometheus_rule_labels)),
            "spec": {"groups": groups(profile, rules)}}


def ollama_probe(profile: Profile) -> dict[str, Any]:
    """Ollama has no /metrics: a Probe has the blackbox exporter fetch /api/version (probe_success)."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "Probe",
            "metadata": metadata(profile, LLM_SERVER, LLM_SERVER, dict(profile.kubernetes.prometheus_rule_labels)),
            "spec": {"jobName": ollama_probe_job(profile), "module": "http_2xx",
                     "prober": {"url": profile.alerts.blackbox_exporter},
                     "targets": {"staticConfig": {"static": [ollama_probe_url(profile)]}}}}


def dashboard_object(profile: Profile, component: str, board_uid: str, text: str) -> dict[str, Any]:
    name = f"grafana-dashboard-{component}"
    if profile.kubernetes.dashboards == "grafana-operator":
        return {"apiVersion": "grafana.integreatly.org/v1beta1", "kind": "GrafanaDashboard",
                "metadata": metadata(profile, name, "dashboards"),
                "spec": {"instanceSelector": {"matchLabels": dict(profile.kubernetes.grafana_instance_labels)},
                         "allowCrossNamespaceImport": True, "resyncPeriod": "10m", "json": text}}
    return config_map(profile, name, "dashboards", {f"{board_uid}.json": text},
                      dict(profile.kubernetes.dashboard_labels))


def objects(profile: Profile, rules: Rules, boards: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """boards: component -> (uid, JSON text) as the dashboards stage rendered them."""
    out = [prometheus_rule(profile, rules)]
    if profile.llm is not None and profile.llm.server == "ollama":
        out.append(ollama_probe(profile))
    out.extend(dashboard_object(profile, component, board_uid, text) for component, (board_uid, text) in boards.items())
    return out
