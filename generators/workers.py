"""Background workers: Celery worker pools on a Redis queue, their settings, Deployments and KEDA scaling.

Each pool of `workers.pools` renders
- `workers/<pool>/celeryconfig.py`: the Celery settings (concurrency, prefetch, acks, visibility timeout,
  time limits, retries with backoff), loaded by the worker with `CELERY_CONFIG_MODULE=celeryconfig`;
  the broker URL (and so the Redis password) comes from the environment, never from the file;
- a ConfigMap carrying that file, the worker Deployment (`worker-<pool>`) with resources sized from
  its concurrency, and a KEDA ScaledObject on the length of its Redis lists (KEDA's `redis` list scaler:
  a Celery queue on Redis is a list, LPUSHed by producers and BRPOPed by workers).

The queue lives either in the profile's own `redis` (which must then be
`role: queue`, when `workers.redis` is not given) or in a second Redis only for the queue
(`workers.redis: {memory: ..., ...}`): its
redis.conf is `redis-queue/redis.conf` and it runs as its own StatefulSet, so the cache and the queue
are two Redis instances with their own eviction and persistence. Cross-component checks:
generators/checks_workers.py. Alerts: generators/alerts/workers.py; panels: dashboards.worker_panels; objects: objects/workers.py.
"""

from __future__ import annotations

import math
from typing import Any

from . import formats, paths, redis, serverversions, units
from .bundle import Part, Setting
from .profile import Hardware, Profile, QueueRedis, RedisHardware, WorkerPool

TARGET = "workers"
CONFIG_DIR = "/etc/celery"  # the ConfigMap's mount; on PYTHONPATH so `celeryconfig` imports
CONFIG_FILE = "celeryconfig.py"
QUEUE_REDIS_CONF = "redis-queue/redis.conf"
# The queue Redis image by redis.version of workers.redis (serverversions: patched releases).
QUEUE_REDIS_IMAGE = {version: release.image for version, release in serverversions.REDIS_RELEASES.items()}
REDIS_CONFIG_DIR = "/etc/redis"
# The worker's main (consumer) process, besides its `concurrency` pool processes.
MAIN_PROCESS_MEMORY = 128 * units.MIB
# A warm shutdown (SIGTERM) lets running tasks finish; the pod gets the longest task and this margin.
SHUTDOWN_MARGIN_MS = 30_000
KEDA_POLLING_INTERVAL_S = 15
# The visibility-timeout sweep: kombu rescans its unacked index every interval (x throttle, set to 1).
RESTORE_INTERVAL_MAX_S = 60


def _setting(key: str, value: Any, text: str, rule: str, **inputs: Any) -> Setting:
    return Setting(TARGET, key, value, text, rule, inputs)


def worker_name(pool: str) -> str:
    return f"worker-{pool}"


# ---------------------------------------------------------------- which Redis holds the queue
def separate_queue_redis(profile: Profile) -> QueueRedis | None:
    return profile.workers.redis if profile.workers else None


def queue_profile(profile: Profile) -> Profile:
    """The profile as the queue's Redis sees it: `redis` and `hardware.redis` are the queue's own, so
    redis.py's rules (maxmemory, persistence) and the Redis checks apply to it unchanged."""
    queue = separate_queue_redis(profile)
    if queue is None:
        return profile
    fields = {name: getattr(queue, name) for name in ("role", "maxmemory", "maxmemory_policy", "persistence",
                                                       "timeout", "tcp_keepalive", "port", "version",
                                                       "appendfsync", "settings")}
    hardware = Hardware(postgres=profile.hardware.postgres, gpu=profile.hardware.gpu,
                        redis=RedisHardware(memory=queue.memory, cpus=queue.cpus))
    return profile.model_copy(update={"redis": profile.redis.model_copy(update=fields), "hardware": hardware})


def queue_redis_address(profile: Profile) -> tuple[str, int]:
    queue = separate_queue_redis(profile)
    return (queue.name, queue.port) if queue else ("redis", profile.redis.port)


def broker_url_template(profile: Profile) -> str:
    """The broker URL as the Deployment's env builds it: Kubernetes expands $(REDIS_PASSWORD) from the Secret."""
    host, port = queue_redis_address(profile)
    return f"redis://:$(REDIS_PASSWORD)@{host}:{port}/0"


# ---------------------------------------------------------------- one pool's Celery settings
def soft_time_limit_ms(pool: WorkerPool) -> int:
    return pool.soft_time_limit if pool.soft_time_limit is not None else pool.time_limit * 9 // 10


def restore_interval_s(pool: WorkerPool) -> int:
    """How often kombu sweeps for jobs past their visibility timeout: a tenth of it, 1 s to 60 s."""
    return max(1, min(RESTORE_INTERVAL_MAX_S, pool.visibility_timeout // 10_000))


def backoff_s(ms: int) -> int:
    """Celery's retry_backoff is a whole number of seconds (the jitter draws an integer below it)."""
    return max(1, units.seconds_up(ms))


def pool_settings(name: str, pool: WorkerPool) -> list[tuple[Setting, Any]]:
    """(explain entry, Python value for celeryconfig.py) for every Celery setting a pool renders."""
    vt = pool.visibility_timeout
    items: list[tuple[Setting, Any]] = []

    def add(key: str, value: Any, rule: str, **inputs: Any) -> None:
        items.append((_setting(f"{name}.{key}", value, repr(value), rule, **inputs), value))

    add("worker_concurrency", pool.concurrency, "given by workers.pools.concurrency (processes per replica)")
    add("worker_prefetch_multiplier", pool.prefetch_multiplier,
        "given by prefetch_multiplier: jobs each process reserves ahead (1: a long task holds back no others)")
    add("task_acks_late", pool.acks_late, "given by acks_late: acknowledged after the task ran, so a job whose "
        "worker dies is redelivered after the visibility timeout")
    add("task_reject_on_worker_lost", pool.acks_late,
        "= acks_late: a job whose process was killed goes back to the queue instead of being acked as failed")
    add("worker_cancel_long_running_tasks_on_connection_loss", pool.acks_late,
        "= acks_late: tasks running when the broker connection drops are cancelled (they are redelivered) "
        "rather than run twice")
    add("task_time_limit", units.ms_to_seconds(pool.time_limit), "given by time_limit, in seconds (the process is killed)",
        time_limit=units.format_duration(pool.time_limit))
    add("task_soft_time_limit", units.ms_to_seconds(soft_time_limit_ms(pool)),
        "given by soft_time_limit" if pool.soft_time_limit is not None else
        "90% of time_limit: the task gets SoftTimeLimitExceeded and time to clean up before the kill",
        time_limit=units.format_duration(pool.time_limit))
    add("broker_transport_options", {"visibility_timeout": units.seconds_up(vt),
                                     "unacked_restore_interval": restore_interval_s(pool),
                                     "unacked_restore_throttle": 1},
        "visibility_timeout given by workers.pools.visibility_timeout (s); kombu sweeps for expired jobs every "
        "tenth of it (1 s to 60 s), every sweep scanning (throttle 1)",
        visibility_timeout=units.format_duration(vt))
    add("task_default_queue", pool.queues[0], "the first of workers.pools.queues")
    add("task_annotations", {"*": {"max_retries": pool.max_retries, "retry_backoff": backoff_s(pool.retry_backoff),
                                   "retry_backoff_max": units.seconds_up(pool.retry_backoff_max),
                                   "retry_jitter": pool.retry_jitter}},
        "max_retries, retry_backoff (whole seconds, doubling per retry) and retry_backoff_max for every task "
        "(tasks opt in with autoretry_for)", max_retries=pool.max_retries,
        retry_backoff=units.format_duration(pool.retry_backoff),
        retry_backoff_max=units.format_duration(pool.retry_backoff_max))
    add("worker_max_tasks_per_child", pool.max_tasks_per_child,
        "given by max_tasks_per_child: a process is replaced after this many tasks (leaks stay bounded)")
    add("worker_send_task_events", True, "celery-exporter counts tasks from these events (alerts, dashboards)")
    add("task_send_sent_event", True, "celery-exporter counts published tasks (task-sent)")
    add("broker_connection_retry_on_startup", True, "a worker started before its Redis waits for it")
    return items


def celeryconfig(profile: Profile, name: str, pool: WorkerPool) -> str:
    """celeryconfig.py: every value written with repr() of a typed value (a Python literal), nothing else."""
    lines = [
        f"# Celery settings of worker pool {name!r}, rendered by perfstack for environment "
        f"{profile.environment!r}.",
        "# Do not edit: change the profile. Load with CELERY_CONFIG_MODULE=celeryconfig "
        "(app.config_from_envvar).",
        "# The broker URL, with the Redis password, comes from the Secret through the environment.",
        "import os",
        "",
        'broker_url = os.environ["CELERY_BROKER_URL"]',
    ]
    for setting, value in pool_settings(name, pool):
        lines += ["", f"# {formats.comment(setting.rule)}", f"{setting.key.split('.', 1)[1]} = {value!r}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- resources and objects
def resources(pool: WorkerPool) -> dict[str, str]:
    millicores = math.ceil(pool.concurrency * pool.cpu_per_process * 1000)
    memory = pool.concurrency * pool.memory_per_process + MAIN_PROCESS_MEMORY
    return {"cpu": f"{millicores}m", "memory": f"{-(-memory // units.MIB)}Mi"}


def resource_setting(name: str, pool: WorkerPool) -> Setting:
    res = resources(pool)
    return _setting(f"{name}.resources", res, f"cpu={res['cpu']}, memory={res['memory']}",
                    "concurrency x cpu_per_process; concurrency x memory_per_process + 128Mi for the main process "
                    "(memory requests = limits, no CPU limit)", concurrency=pool.concurrency,
                    cpu_per_process=pool.cpu_per_process,
                    memory_per_process=units.format_size_human(pool.memory_per_process))


def grace_period_s(pool: WorkerPool) -> int:
    return units.seconds_up(pool.time_limit + SHUTDOWN_MARGIN_MS)


def trigger_authentication_name(profile: Profile) -> str:
    return "worker-redis"


def scaling_settings(name: str, pool: WorkerPool) -> list[Setting]:
    return [
        _setting(f"{name}.min_replicas", pool.min_replicas, str(pool.min_replicas), "given by workers.pools.min_replicas"),
        _setting(f"{name}.max_replicas", pool.max_replicas, str(pool.max_replicas), "given by workers.pools.max_replicas"),
        _setting(f"{name}.listLength", pool.target_queue_length, str(pool.target_queue_length),
                 "KEDA redis list scaler: target_queue_length jobs waiting per replica, for each of "
                 + ", ".join(pool.queues), queues=",".join(pool.queues)),
        _setting(f"{name}.terminationGracePeriodSeconds", grace_period_s(pool), f"{grace_period_s(pool)}s",
                 "time_limit + 30s: a warm shutdown lets the longest task finish instead of waiting out the "
                 "visibility timeout", time_limit=units.format_duration(pool.time_limit)),
    ]


# ---------------------------------------------------------------- the separate queue Redis


def render(profile: Profile) -> Part:
    """The pools' settings and celeryconfig.py files (objects/workers.py builds their objects); with a separate
    queue Redis its redis.conf, and its rendered part in derived["queue_redis"] for the checks."""
    if profile.workers is None:
        return Part()
    part = Part()
    queue = separate_queue_redis(profile)
    if queue is not None:
        queue_part = redis.render(queue_profile(profile))
        part.files[QUEUE_REDIS_CONF] = queue_part.files[paths.REDIS_CONF]
        part.settings += [Setting(TARGET, f"redis-queue.{s.key}", s.value, s.text, s.rule, s.inputs)
                          for s in queue_part.settings]
        part.derived["queue_redis"] = queue_part
    for name, pool in profile.workers.pools.items():
        text = celeryconfig(profile, name, pool)
        part.files[f"workers/{name}/{CONFIG_FILE}"] = text
        part.settings += [s for s, _ in pool_settings(name, pool)]
        part.settings += [resource_setting(name, pool), *scaling_settings(name, pool)]
    return part
