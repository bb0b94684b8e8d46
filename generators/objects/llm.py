"""The LLM server's objects: its ConfigMap (vllm.args or Ollama's environment), Deployment and Service."""

from __future__ import annotations

from typing import Any

from .. import units
from ..bundle import Part
from ..k8s import CHECKSUM_ANNOTATION, LLM_SERVER, checksum_of, config_map, labels, metadata
from ..llm import CONFIG_MAP, IMAGES, health_path, startup_probe, tensor_parallel_size
from ..profile import Profile


def _selector(profile: Profile) -> dict[str, str]:
    return {k: v for k, v in labels(profile, LLM_SERVER).items()
            if k in ("app.kubernetes.io/name", "app.kubernetes.io/part-of")}


def strategy(profile: Profile) -> dict[str, Any]:
    if profile.autoscaling.llm.max_replicas > 1:
        # A replacement loads its model before the old pod goes: one spare GPU during a roll.
        return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    # One GPU: the old pod frees it before the new one can be scheduled.
    return {"type": "Recreate"}


def objects(profile: Profile, part: Part) -> list[dict[str, Any]]:
    """The LLM server's ConfigMap, Deployment and Service, from its rendered part (none without an LLM)."""
    if profile.llm is None or not part.derived:
        return []
    config: dict[str, str] = part.derived["config"]
    args: list[str] = part.derived["args"]
    llm = profile.llm
    gpu_count = tensor_parallel_size(profile)
    gpus = {"nvidia.com/gpu": str(gpu_count)}
    container: dict[str, Any] = {
        "name": LLM_SERVER,
        "image": llm.image or IMAGES[llm.server],
        "ports": [{"name": "http", "containerPort": llm.port, "protocol": "TCP"}],
        "resources": {"requests": gpus, "limits": gpus},
        "startupProbe": startup_probe(profile),
        "readinessProbe": {"httpGet": {"path": health_path(profile), "port": "http"},
                           "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": health_path(profile), "port": "http"},
                          "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 3},
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    volumes: list[dict[str, Any]]
    if llm.server == "vllm":
        container["command"] = ["vllm", "serve"]
        container["args"] = args
        container["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"},
                                     {"name": "model-cache", "mountPath": "/root/.cache/huggingface"}]
        # Tensor-parallel workers exchange tensors through /dev/shm; the container default is 64Mi.
        volumes = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}, {"name": "model-cache", "emptyDir": {}}]
    else:
        container["command"] = ["ollama", "serve"]
        container["envFrom"] = [{"configMapRef": {"name": CONFIG_MAP}}]
        container["volumeMounts"] = [{"name": "model-cache", "mountPath": "/root/.ollama"}]
        volumes = [{"name": "model-cache", "emptyDir": {}}]
    spec: dict[str, Any] = {
        "selector": {"matchLabels": _selector(profile)},
        "strategy": strategy(profile),
        "template": {
            "metadata": {"labels": labels(profile, LLM_SERVER),
                         "annotations": {CHECKSUM_ANNOTATION: checksum_of(config)}},
            "spec": {
                "containers": [container], "volumes": volumes,
                # In-flight generations may run up to request_timeout; let them finish on shutdown.
                "terminationGracePeriodSeconds": units.seconds_up(llm.request_timeout),
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
        },
    }
    if not profile.llm_autoscaled():
        spec["replicas"] = profile.autoscaling.llm.min_replicas  # no autoscaler owns the count
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": metadata(profile, LLM_SERVER, LLM_SERVER), "spec": spec}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": metadata(profile, LLM_SERVER, LLM_SERVER),
               "spec": {"type": "ClusterIP", "selector": _selector(profile),
                        "ports": [{"name": "http", "port": llm.port, "targetPort": "http", "protocol": "TCP"}]}}
    return [config_map(profile, CONFIG_MAP, LLM_SERVER, config), deployment, service]


