"""The autoscalers as objects: the API's HPA, and the LLM server's HPA (through prometheus-adapter) or KEDA
ScaledObject. Their numbers are the autoscaling target's rules (behavior, metrics), used as rendered."""

from __future__ import annotations

from typing import Any

from .. import formats, units
from ..autoscaling import (
    ADAPTER_NAMES,
    KEDA_POLLING_INTERVAL_S,
    KV_USAGE,
    RUNNING,
    WAITING,
    api_behavior,
    api_metrics,
    keda_cooldown_s,
    llm_behavior,
    llm_target,
    threshold,
)
from ..bundle import Part
from ..k8s import LLM_SERVER, metadata
from ..metrics import APP_LLM_CALLS
from ..profile import Profile


def hpa(profile: Profile, name: str, component: str, min_replicas: int, max_replicas: int,
        metrics: list[dict[str, Any]], behavior: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(profile, name, component),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                     "minReplicas": min_replicas, "maxReplicas": max_replicas,
                     "metrics": metrics, "behavior": behavior}}


def api_hpa(profile: Profile) -> dict[str, Any]:
    api = profile.autoscaling.api
    return hpa(profile, profile.app.deployment, profile.app.deployment, api.min_replicas, api.max_replicas,
               api_metrics(profile), api_behavior(profile))


def llm_hpa(profile: Profile) -> dict[str, Any]:
    scaling = profile.autoscaling.llm
    metric = {"type": "Pods", "pods": {"metric": {"name": ADAPTER_NAMES[scaling.signal]},
                                       "target": {"type": "AverageValue", "averageValue": units.format_decimal_quantity(llm_target(profile))}}}
    return hpa(profile, LLM_SERVER, LLM_SERVER, scaling.min_replicas, scaling.max_replicas, [metric],
               llm_behavior(profile))


def _matchers(profile: Profile) -> str:
    assert profile.llm is not None
    return f'{formats.matcher("namespace", profile.namespace)},{formats.matcher("model_name", profile.llm.model.name)}'


def keda_query(profile: Profile) -> str:
    """The fleet's total of the signal; KEDA's AverageValue divides it by the replicas."""
    m = _matchers(profile)
    if profile.autoscaling.llm.signal == "requests":
        return f"sum({RUNNING}{{{m}}}) + sum({WAITING}{{{m}}})"
    return f"sum({KV_USAGE}{{{m}}})"


def wake_query(profile: Profile) -> str:
    """The app's LLM calls per second: it exists while the LLM fleet is at zero, so it can wake it."""
    return f'sum(rate({APP_LLM_CALLS}{{{formats.matcher("namespace", profile.namespace)}}}[2m]))'


def wake_threshold(profile: Profile) -> float:
    """Calls per second one pod serves at the target: target in flight / the LLM latency SLO (Little's law)."""
    assert profile.llm is not None
    target = llm_target(profile) if profile.autoscaling.llm.signal == "requests" else profile.llm.max_num_seqs * 0.7
    return max(0.001, round(target / (profile.slo.llm_latency_p95 / 1000), 3))


def llm_scaled_object(profile: Profile, part: Part) -> dict[str, Any]:
    scaling = profile.autoscaling.llm
    triggers: list[dict[str, Any]] = [{"type": "prometheus", "metricType": "AverageValue", "metadata": {
        "serverAddress": scaling.prometheus_url, "query": keda_query(profile),
        "threshold": threshold(llm_target(profile)), "activationThreshold": "0"}}]
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": LLM_SERVER},
        "minReplicaCount": scaling.min_replicas, "maxReplicaCount": scaling.max_replicas,
        "pollingInterval": KEDA_POLLING_INTERVAL_S,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": llm_behavior(profile)}},
        "triggers": triggers,
    }
    if scaling.min_replicas == 0:
        # At zero no vLLM pod reports anything: the app's LLM calls wake the fleet. cooldownPeriod (idle time
        # before going to zero) covers a cold start, so the fleet never drops faster than it comes back.
        spec["cooldownPeriod"] = keda_cooldown_s(profile, int(part.derived["load_time"]))
        triggers.append({"type": "prometheus", "metricType": "AverageValue", "metadata": {
            "serverAddress": scaling.prometheus_url, "query": wake_query(profile),
            "threshold": threshold(wake_threshold(profile)), "activationThreshold": "0"}})
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": metadata(profile, LLM_SERVER, LLM_SERVER), "spec": spec}


def objects(profile: Profile, llm_part: Part) -> list[dict[str, Any]]:
    out = [api_hpa(profile)]
    if profile.llm_autoscaled():
        out.append(llm_scaled_object(profile, llm_part) if profile.autoscaling.llm.scaler == "keda"
                   else llm_hpa(profile))
    return out
