"""workers: what a pool renders (celeryconfig.py, Deployment, KEDA ScaledObject) and the separate queue Redis."""

from __future__ import annotations

import ast

from generators import workers
from generators.render import render

from .conftest import load, rendered_bundle, variant


def _objects(bundle, kind: str) -> dict:  # type: ignore[no-untyped-def]
    return {o["metadata"]["name"]: o for o in bundle.objects if o["kind"] == kind}


def test_celeryconfig_is_python_with_the_pools_settings_and_no_password() -> None:
    bundle = rendered_bundle("prod")
    text = bundle.files["workers/agents/celeryconfig.py"]
    tree = ast.parse(text)
    values = {node.targets[0].id: node.value for node in tree.body if isinstance(node, ast.Assign)}
    literal = {name: ast.literal_eval(value) for name, value in values.items() if name != "broker_url"}
    assert literal["worker_concurrency"] == 8 and literal["worker_prefetch_multiplier"] == 1
    assert literal["task_acks_late"] is True and literal["task_reject_on_worker_lost"] is True
    assert literal["task_time_limit"] == 180 and literal["task_soft_time_limit"] == 162
    assert literal["broker_transport_options"] == {"visibility_timeout": 900, "unacked_restore_interval": 60,
                                                   "unacked_restore_throttle": 1}
    assert literal["task_annotations"]["*"]["max_retries"] == 3
    assert 'broker_url = os.environ["CELERY_BROKER_URL"]' in text and "redis://" not in text


def test_deployment_and_scaled_object_of_a_pool() -> None:
    bundle = rendered_bundle("prod")
    deployment = _objects(bundle, "Deployment")["worker-agents"]
    assert "replicas" not in deployment["spec"]  # the ScaledObject's HPA owns the count
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 210  # time_limit 3m + 30s
    container = pod["containers"][0]
    assert container["command"][:4] == ["celery", "-A", "app.worker", "worker"]
    assert container["command"][container["command"].index("--queues") + 1] == "agents"
    assert container["resources"] == {"requests": {"cpu": "2000m", "memory": "2176Mi"}, "limits": {"memory": "2176Mi"}}
    env = {e["name"]: e for e in container["env"]}
    assert env["CELERY_BROKER_URL"]["value"] == "redis://:$(REDIS_PASSWORD)@redis-queue:6380/0"
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "redis-credentials"
    scaled = _objects(bundle, "ScaledObject")["worker-agents"]["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (2, 16)
    assert scaled["triggers"] == [{"type": "redis", "authenticationRef": {"name": "worker-redis"}, "metadata": {
        "address": "redis-queue.ai-platform.svc:6380", "listName": "agents", "listLength": "50",
        "activationListLength": "0", "databaseIndex": "0"}}]


def test_one_trigger_per_queue() -> None:
    bundle = render(variant("prod", {"workers": {"pools": {"default": {"queues": ["default", "reports"]}}}}))
    triggers = _objects(bundle, "ScaledObject")["worker-default"]["spec"]["triggers"]
    assert [t["metadata"]["listName"] for t in triggers] == ["default", "reports"]


def test_the_separate_queue_redis_never_evicts_and_persists() -> None:
    bundle = rendered_bundle("prod")
    conf = bundle.files[workers.QUEUE_REDIS_CONF]
    assert "maxmemory-policy noeviction" in conf and "appendonly yes" in conf and "maxmemory 2gb" in conf
    statefulset = _objects(bundle, "StatefulSet")["redis-queue"]
    claim = statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    assert claim == "4Gi"  # twice maxmemory 2GiB
    assert bundle.setting("workers.redis-queue.maxmemory-policy").text == "noeviction"
    # ... and fsyncs every job (appendfsync always), never 1 s of jobs lost.
    assert "appendfsync always" in conf
    # The cache Redis is untouched: an evicting cache (LFU: it holds LLM answers) without persistence.
    assert "maxmemory-policy allkeys-lfu" in bundle.files["redis/redis.conf"]
    assert "appendonly no" in bundle.files["redis/redis.conf"]


def test_every_pool_setting_has_an_explain_entry() -> None:
    bundle = rendered_bundle("prod")
    keys = {s.key for s in bundle.settings if s.target == "workers"}
    for pool in ("default", "agents"):
        for key in ("worker_concurrency", "worker_prefetch_multiplier", "task_acks_late", "task_time_limit",
                    "broker_transport_options", "task_annotations", "resources", "listLength", "max_replicas"):
            assert f"{pool}.{key}" in keys


def test_a_profile_without_workers_renders_none_of_it() -> None:
    profile = load("prod").model_copy(update={"workers": None})
    bundle = render(profile)
    assert not [p for p in bundle.files if p.startswith(("workers/", "redis-queue/"))]
    assert not [o for o in bundle.objects if o["metadata"]["name"].startswith(("worker", "redis-queue"))]
