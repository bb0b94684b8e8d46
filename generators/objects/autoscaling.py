"""The autoscalers as objects: the API's HPA, and the LLM server's HPA (through prometheus-adapter) or KEDA
ScaledObject. Their numbers are the autoscaling target's rules (behavior, metrics), used as rendered."""

from __future__ import annotations

from typing import Any

from ..autoscaling import (
    KEDA_POLLING_INTERVAL_S,
    adapter_metric_name,
    api_behavior,
    api_metrics,
    llm_behavior,
)
from ..k8s import LLM_SERVER, metadata
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
    metric = {"type": "Pods", "pods": {"metric": {"name": adapter_metric_name(scaling.metric)},
                                       "target": {"type": "AverageValue", "averageValue": str(scaling.target)}}}
    return hpa(profile, LLM_SERVER, LLM_SERVER, scaling.min_replicas, scaling.max_replicas, [metric],
               llm_behavior(profile))


def keda_query(profile: Profile) -> str:
    assert profile.llm is not None
    model = profile.llm.model.name.replace("\\", "\\\\").replace('"', '\\"')
    return f'sum({profile.autoscaling.llm.metric}{{namespace="{profile.namespace}",model_name="{model}"}})'


def llm_scaled_object(profile: Profile) -> dict[str, Any]:
    scaling = profile.autoscaling.llm
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": metadata(profile, LLM_SERVER, LLM_SERVER),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": LLM_SERVER},
                "minReplicaCount": scaling.min_replicas, "maxReplicaCount": scaling.max_replicas,
                "pollingInterval": KEDA_POLLING_INTERVAL_S,
                # cooldownPeriod only applies to scaling to zero; minReplicaCount >= 1 never does.
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": llm_behavior(profile)}},
                "triggers": [{"type": "prometheus", "metricType": "AverageValue", "metadata": {
                    "serverAddress": scaling.prometheus_url, "query": keda_query(profile),
                    "threshold": str(scaling.target)}}],
            }}


def objects(profile: Profile) -> list[dict[str, Any]]:
    out = [api_hpa(profile)]
    if profile.llm_autoscaled():
        out.append(llm_scaled_object(profile) if profile.autoscaling.llm.scaler == "keda" else llm_hpa(profile))
    return out
