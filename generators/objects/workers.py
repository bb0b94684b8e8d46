"""The worker pools' objects: each pool's ConfigMap (celeryconfig.py), Deployment and KEDA ScaledObject on its
queue lists, the TriggerAuthentication for the queue Redis's password, and a separate queue Redis when declared."""

from __future__ import annotations

import posixpath
from typing import Any

from .. import units
from ..bundle import Part
from ..k8s import CHECKSUM_ANNOTATION, checksum_of, config_map, labels, metadata
from ..profile import Profile, QueueRedis, WorkerPool
from ..workers import (
    CONFIG_DIR,
    CONFIG_FILE,
    KEDA_POLLING_INTERVAL_S,
    QUEUE_REDIS_CONF,
    QUEUE_REDIS_IMAGE,
    REDIS_CONFIG_DIR,
    broker_url_template,
    grace_period_s,
    queue_redis_address,
    resources,
    separate_queue_redis,
    trigger_authentication_name,
    worker_name,
)

# The official Redis image's `redis` user: the queue server never runs as root.
QUEUE_REDIS_SECURITY = {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999,
                        "capabilities": {"drop": ["ALL"]}}
QUEUE_REDIS_POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999,
                            "seccompProfile": {"type": "RuntimeDefault"}}


def deployment(profile: Profile, name: str, pool: WorkerPool, config: dict[str, str]) -> dict[str, Any]:
    component = worker_name(name)
    secret = profile.secrets.redis_password
    res = resources(pool)
    container = {
        "name": "worker",
        "image": pool.image,
        "command": ["celery", "-A", pool.app, "worker", "--queues", ",".join(pool.queues),
                    "--hostname", f"{name}@%h", "--loglevel", "INFO"],
        "env": [
            {"name": "CELERY_CONFIG_MODULE", "value": "celeryconfig"},
            {"name": "PYTHONPATH", "value": CONFIG_DIR},
            {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret.secret, "key": secret.key}}},
            {"name": "CELERY_BROKER_URL", "value": broker_url_template(profile)},
        ],
        "resources": {"requests": res, "limits": {"memory": res["memory"]}},
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
    }
    selector = {k: v for k, v in labels(profile, component).items()
                if k in ("app.kubernetes.io/name", "app.kubernetes.io/part-of")}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(profile, component, component),
        "spec": {
            # No `replicas`: the ScaledObject's HPA owns the count.
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels(profile, component),
                             "annotations": {CHECKSUM_ANNOTATION: checksum_of(config)}},
                "spec": {
                    # SIGTERM is Celery's warm shutdown: running tasks finish within the longest task's limit.
                    "terminationGracePeriodSeconds": grace_period_s(pool),
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": component}}],
                },
            },
        },
    }


def trigger_authentication(profile: Profile) -> dict[str, Any]:
    secret = profile.secrets.redis_password
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": metadata(profile, trigger_authentication_name(profile), "workers"),
            "spec": {"secretTargetRef": [{"parameter": "password", "name": secret.secret, "key": secret.key}]}}


def scaled_object(profile: Profile, name: str, pool: WorkerPool) -> dict[str, Any]:
    component = worker_name(name)
    host, port = queue_redis_address(profile)
    triggers = [{"type": "redis", "authenticationRef": {"name": trigger_authentication_name(profile)},
                 "metadata": {"address": f"{host}.{profile.namespace}.svc:{port}", "listName": queue,
                              "listLength": str(pool.target_queue_length), "activationListLength": "0",
                              "databaseIndex": "0"}}
                for queue in pool.queues]
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": metadata(profile, component, component),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": component},
                     "minReplicaCount": pool.min_replicas, "maxReplicaCount": pool.max_replicas,
                     "pollingInterval": KEDA_POLLING_INTERVAL_S,
                     # Scale down only after the longest task could have finished: a pod stopping mid-task
                     # waits out its grace period anyway.
                     "cooldownPeriod": max(60, grace_period_s(pool)),
                     "triggers": triggers}}


def queue_redis_objects(profile: Profile, queue: QueueRedis, conf: str, maxmemory: int) -> list[dict[str, Any]]:
    name = queue.name
    data = {"redis.conf": conf}
    secret = profile.secrets.redis_password
    res = {"cpu": str(queue.cpus), "memory": f"{-(-queue.memory // units.MIB)}Mi"}
    selector = {k: v for k, v in labels(profile, name).items()
                if k in ("app.kubernetes.io/name", "app.kubernetes.io/part-of")}
    probe = {"tcpSocket": {"port": "redis"}}
    container = {
        "name": "redis", "image": QUEUE_REDIS_IMAGE[queue.version],
        "command": ["redis-server", posixpath.join(REDIS_CONFIG_DIR, "redis.conf"), "--requirepass", "$(REDIS_PASSWORD)"],
        "env": [{"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret.secret, "key": secret.key}}}],
        "ports": [{"name": "redis", "containerPort": queue.port, "protocol": "TCP"}],
        "resources": {"requests": res, "limits": res},
        "volumeMounts": [{"name": "config", "mountPath": REDIS_CONFIG_DIR, "readOnly": True},
                         {"name": "data", "mountPath": "/data"}],
        "securityContext": QUEUE_REDIS_SECURITY,
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 6},
    }
    # Both AOF rewrites and RDB saves write a new file beside the old one: twice maxmemory of disk.
    storage = -(-2 * maxmemory // units.GIB)
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata(profile, name, name),
        "spec": {"replicas": 1, "serviceName": name, "selector": {"matchLabels": selector},
                 "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": labels(profile, name)},
                                           "spec": {"accessModes": ["ReadWriteOnce"],
                                                    "resources": {"requests": {"storage": f"{storage}Gi"}}}}],
                 "template": {"metadata": {"labels": labels(profile, name),
                                           "annotations": {CHECKSUM_ANNOTATION: checksum_of(data)}},
                              "spec": {"containers": [container], "securityContext": QUEUE_REDIS_POD_SECURITY,
                                       "volumes": [{"name": "config", "configMap": {"name": name}}]}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": metadata(profile, name, name),
               "spec": {"type": "ClusterIP", "selector": selector,
                        "ports": [{"name": "redis", "port": queue.port, "targetPort": "redis", "protocol": "TCP"}]}}
    return [config_map(profile, name, name, data), statefulset, service]


def objects(profile: Profile, part: Part) -> list[dict[str, Any]]:
    if profile.workers is None:
        return []
    out: list[dict[str, Any]] = []
    queue = separate_queue_redis(profile)
    if queue is not None:
        out += queue_redis_objects(profile, queue, part.files[QUEUE_REDIS_CONF], part.derived["queue_redis"].value("maxmemory"))
    out.append(trigger_authentication(profile))
    for name, pool in profile.workers.pools.items():
        data = {CONFIG_FILE: part.files[f"workers/{name}/{CONFIG_FILE}"]}
        out += [config_map(profile, worker_name(name), worker_name(name), data),
                deployment(profile, name, pool, data), scaled_object(profile, name, pool)]
    return out
