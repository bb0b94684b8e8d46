"""What the Pulumi program checks in the cluster before it registers any resource.

- The cluster is the stack's: its identity (the UID of the kube-system namespace, which lives as long as the
  cluster) must equal the stack's `clusterId` when the stack sets one; the program exports the identity it
  found as the `clusterId` output so it can be recorded (`pulumi config set clusterId ...`).
- The namespace exists when the stack does not own it (`kubernetes.manage_namespace: false`).
- Every CRD a rendered object needs is installed; a missing one is named with the setting that turns the
  object off.
- No rendered object exists already unless Pulumi wrote it (a pulumi-kubernetes field manager): an object
  someone else created is not taken over silently (server-side apply would), it is named with how to adopt it.
  The Namespace, when the stack owns it, is adopted on purpose and not checked.

The checks read with the kubernetes client through the same kubeconfig and context the provider uses.
They are skipped when the stack renders manifests to a folder (renderYamlToDirectory: no cluster).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from generators.errors import Problem, ProfileError

# (API group, kind) -> (CRD name, the operator, how to do without it)
OPERATOR_KINDS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("monitoring.coreos.com", "PrometheusRule"): (
        "prometheusrules.monitoring.coreos.com", "prometheus-operator",
        "pulumi config set prometheusOperator false"),
    ("monitoring.coreos.com", "Probe"): (
        "probes.monitoring.coreos.com", "prometheus-operator", "pulumi config set prometheusOperator false"),
    ("monitoring.coreos.com", "ServiceMonitor"): (
        "servicemonitors.monitoring.coreos.com", "prometheus-operator", "pulumi config set prometheusOperator false"),
    ("monitoring.coreos.com", "PodMonitor"): (
        "podmonitors.monitoring.coreos.com", "prometheus-operator", "pulumi config set prometheusOperator false"),
    ("keda.sh", "ScaledObject"): (
        "scaledobjects.keda.sh", "KEDA", "pulumi config set llmScaler hpa (or autoscaling.llm.scaler: hpa)"),
    ("keda.sh", "TriggerAuthentication"): (
        "triggerauthentications.keda.sh", "KEDA", "remove workers: from the profile (their ScaledObjects need KEDA)"),
    ("postgresql.cnpg.io", "Cluster"): (
        "clusters.postgresql.cnpg.io", "CloudNativePG",
        "pulumi config set postgres external (or kubernetes.postgres: external)"),
    ("grafana.integreatly.org", "GrafanaDashboard"): (
        "grafanadashboards.grafana.integreatly.org", "grafana-operator",
        "pulumi config set dashboards configmap (or kubernetes.dashboards: configmap)"),
}


@dataclass(frozen=True)
class ClusterFacts:
    identity: str  # kube-system's UID
    server: str


def api_client(kubeconfig: str | None, context: str | None) -> Any:
    """A kubernetes ApiClient for the stack's kubeconfig/context (kubectl's defaults when unset)."""
    from kubernetes import config

    try:
        return config.new_client_from_config(config_file=kubeconfig, context=context)
    except Exception as exc:  # noqa: BLE001 - the kubernetes client raises plain exceptions for bad kubeconfigs
        raise ProfileError([Problem(f"cannot load kubeconfig {kubeconfig or '(default)'}"
                                    f"{' context ' + context if context else ''}: {exc}",
                                    file="stack config perfstack:kubeconfig")]) from None


def _problem(message: str, key: str) -> Problem:
    return Problem(message, file=f"stack config perfstack:{key}")


def check(client: Any, *, cluster_id: str | None, namespace: str, manage_namespace: bool,
          objects: Iterable[dict[str, Any]]) -> ClusterFacts:
    """Raise ProfileError listing every unmet prerequisite; return the cluster's identity."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    core = k8s.CoreV1Api(client)
    server = client.configuration.host
    try:
        identity = str(core.read_namespace("kube-system").metadata.uid)  # type: ignore[union-attr]
    except ApiException as exc:
        raise ProfileError([_problem(f"cannot read the cluster's identity (namespace kube-system) at {server}: "
                                     f"{exc.status} {exc.reason}", "kubeconfig")]) from None
    except Exception as exc:  # noqa: BLE001 - urllib3 connection errors
        raise ProfileError([_problem(f"cannot reach the Kubernetes API at {server}: {exc}", "kubeconfig")]) from None
    if cluster_id and identity != cluster_id:
        raise ProfileError([_problem(
            f"the cluster at {server} is not this stack's: its identity (kube-system UID) is {identity}, the stack "
            f"records {cluster_id}; check the kubeconfig/context, or `pulumi config set clusterId {identity}` if "
            "the stack really moved", "clusterId")])
    problems: list[Problem] = []
    if not manage_namespace:
        try:
            core.read_namespace(namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            problems.append(_problem(
                f"namespace {namespace} does not exist and the stack does not own it: create it "
                f"(kubectl create namespace {namespace}) or set kubernetes.manage_namespace: true", "namespace"))
    needed: dict[str, tuple[str, str, list[str]]] = {}
    for obj in objects:
        group = obj["apiVersion"].rpartition("/")[0]
        entry = OPERATOR_KINDS.get((group, obj["kind"]))
        if entry:
            crd, operator, off = entry
            needed.setdefault(crd, (operator, off, []))[2].append(f"{obj['kind']} {obj['metadata']['name']}")
    if needed:
        ext = k8s.ApiextensionsV1Api(client)
        for crd, (operator, off, users) in sorted(needed.items()):
            try:
                ext.read_custom_resource_definition(crd)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                problems.append(_problem(
                    f"CRD {crd} is not installed in the cluster ({operator} is missing), needed by "
                    f"{', '.join(users)}: install {operator}, or turn these objects off: {off}", "prometheusOperator"
                    if operator == "prometheus-operator" else "postgres" if operator == "CloudNativePG" else
                    "llmScaler" if operator == "KEDA" else "dashboards"))
    if not problems:
        problems.extend(_foreign_objects(client, objects))
    if problems:
        raise ProfileError(problems)
    return ClusterFacts(identity=identity, server=server)


def _foreign_objects(client: Any, objects: Iterable[dict[str, Any]]) -> list[Problem]:
    from generators.drift.kubernetes import object_id, read_object

    problems = []
    for obj in objects:
        if obj["kind"] == "Namespace":
            continue
        live = read_object(client, obj)
        if live is None:
            continue
        managers = {m.get("manager", "") for m in live.get("metadata", {}).get("managedFields") or []}
        if not any(m.startswith("pulumi-kubernetes") or m == "pulumi-resource-kubernetes" for m in managers):
            problems.append(Problem(
                f"{object_id(obj)} already exists and was not created by Pulumi (field managers: "
                f"{', '.join(sorted(managers)) or 'none'}): delete it, or adopt it with `pulumi import`",
                file="cluster"))
    return problems
