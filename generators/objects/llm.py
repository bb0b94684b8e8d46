"""The LLM server's objects: its ConfigMap (vllm.args or Ollama's environment), Deployment, Service, model cache
PersistentVolumeClaim and PodDisruptionBudget.

The pod starts as rendered: the Hugging Face token comes from a Secret reference (gated models), weights
live on a cache volume that survives restarts, the pod lands on the GPU model its budget was sized for
(hardware.gpu.node_label), and it requests CPU and memory (never BestEffort, the first evicted)."""

from __future__ import annotations

from typing import Any

from .. import units
from ..bundle import Part
from ..k8s import CHECKSUM_ANNOTATION, LLM_SERVER, checksum_of, config_map, labels, metadata
from ..llm import CONFIG_MAP, IMAGES, health_path, startup_probe
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
    container: dict[str, Any] = {
        "name": LLM_SERVER,
        "image": llm.image or IMAGES[llm.server],
        "ports": [{"name": "http", "containerPort": llm.port, "protocol": "TCP"}],
        "resources": part.derived["resources"],
        "startupProbe": startup_probe(profile),
        "readinessProbe": {"httpGet": {"path": health_path(profile), "port": "http"},
                           "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": health_path(profile), "port": "http"},
                          "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 3},
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    cache = _cache_volume(profile)
    volumes: list[dict[str, Any]]
    if llm.server == "vllm":
        container["command"] = ["vllm", "serve"]
        container["args"] = args  # the model first (positional), then the flags
        container["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"},
                                     {"name": "model-cache", "mountPath": "/root/.cache/huggingface"}]
        # Tensor-parallel workers exchange tensors through /dev/shm; the container default is 64Mi. It is
        # memory: bounded, and counted in the pod's memory limit.
        volumes = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}, cache]
        token = profile.secrets.hf_token
        if token is not None:
            container["env"] = [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
                "name": token.secret, "key": token.key}}}]
    else:
        container["command"] = ["ollama", "serve"]
        container["envFrom"] = [{"configMapRef": {"name": CONFIG_MAP}}]
        container["volumeMounts"] = [{"name": "model-cache", "mountPath": "/root/.ollama"}]
        volumes = [cache]
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
                **({"nodeSelector": part.derived["node_selector"]} if part.derived["node_selector"] else {}),
            },
        },
    }
    if not profile.llm_autoscaled():
        spec["replicas"] = max(1, profile.autoscaling.llm.min_replicas)  # no autoscaler owns the count
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": metadata(profile, LLM_SERVER, LLM_SERVER), "spec": spec}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": metadata(profile, LLM_SERVER, LLM_SERVER),
               "spec": {"type": "ClusterIP", "selector": _selector(profile),
                        "ports": [{"name": "http", "port": llm.port, "targetPort": "http", "protocol": "TCP"}]}}
    out = [config_map(profile, CONFIG_MAP, LLM_SERVER, config), deployment, service]
    if llm.model_cache.kind == "pvc":
        out.append(_claim(profile, part))
    # A drain evicts one LLM pod at a time (maxUnavailable 1): a fleet keeps serving while a node drains, and a
    # single replica is not pinned forever (minAvailable 1 on one pod would block every drain).
    out.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": metadata(profile, LLM_SERVER, LLM_SERVER),
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(profile)}}})
    return out


def _cache_volume(profile: Profile) -> dict[str, Any]:
    assert profile.llm is not None
    cache = profile.llm.model_cache
    if cache.kind == "pvc":
        return {"name": "model-cache", "persistentVolumeClaim": {"claimName": cache.claim}}
    if cache.kind == "host_path":
        return {"name": "model-cache", "hostPath": {"path": cache.path, "type": "DirectoryOrCreate"}}
    return {"name": "model-cache", "emptyDir": {}}


def _claim(profile: Profile, part: Part) -> dict[str, Any]:
    """The model cache: ReadWriteMany when several replicas share it, else ReadWriteOnce."""
    assert profile.llm is not None
    cache = profile.llm.model_cache
    shared = profile.autoscaling.llm.max_replicas > 1 and profile.llm_autoscaled()
    spec: dict[str, Any] = {"accessModes": ["ReadWriteMany" if shared else "ReadWriteOnce"],
                            "resources": {"requests": {"storage": units.format_quantity(part.derived["cache_size"])}}}
    if cache.storage_class is not None:
        spec["storageClassName"] = cache.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": metadata(profile, cache.claim, LLM_SERVER), "spec": spec}


