"""Cross-component checks for the background workers (`workers:`), run with the others (checks.CHECKS).

Each refuses a profile with the numbers on both sides, like generators/checks.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from . import units, workers
from .bundle import Finding, Parts
from .profile import Profile


def db_clients(profile: Profile) -> tuple[int, list[str]]:
    """Client connections the app and every worker pool open at their max replicas, and the terms."""
    pool = profile.app.db_pool
    api, surge = profile.autoscaling.api.max_replicas, profile.api_surge()  # the app's rolling-update surge counts
    total = (api + surge) * (pool.size + pool.max_overflow)
    terms = [f"app ({api} + {surge} surge) x ({pool.size} + {pool.max_overflow}) = {total}"]
    assert profile.workers is not None
    for name, wp in profile.workers.pools.items():
        per_process = wp.db_pool.size + wp.db_pool.max_overflow
        if per_process == 0:
            continue
        n = wp.max_replicas * wp.concurrency * per_process
        terms.append(f"workers.pools.{name} {wp.max_replicas} replicas x concurrency {wp.concurrency} x "
                     f"({wp.db_pool.size} + {wp.db_pool.max_overflow}) = {n}")
        total += n
    return total, terms


def workers_fit_database(profile: Profile, parts: Parts) -> list[Finding]:
    """Worker DB pools x max replicas, with the app's, against PgBouncer's clients, and in session pooling
    (one server connection per client) against PostgreSQL's max_connections too."""
    if profile.workers is None:
        return []
    needed, terms = db_clients(profile)
    if needed == profile.autoscaling.api.max_replicas * (profile.app.db_pool.size + profile.app.db_pool.max_overflow):
        return []  # no pool uses the database: app_fits_pgbouncer covers the app alone
    pb = profile.pgbouncer
    found = []
    clients = pb.max_client_conn * pb.replicas
    if needed > clients:
        found.append(Finding(
            "workers_fit_pgbouncer",
            f"{' + '.join(terms)} = {needed} client connections but pgbouncer allows {pb.replicas} replicas x "
            f"max_client_conn {pb.max_client_conn} = {clients}",
            "error", _worker_db_keys(profile) + ("pgbouncer.max_client_conn",)))
    if pb.pool_mode == "session":
        max_conn = parts.postgres.value("max_connections")
        reserved = parts.postgres.value("superuser_reserved_connections")
        available = max_conn - reserved
        server = parts.pgbouncer.derived["server_connections"]
        if needed > available:
            found.append(Finding(
                "workers_fit_postgres",
                f"pgbouncer.pool_mode session holds one server connection per client: {' + '.join(terms)} = "
                f"{needed} but postgres.max_connections {max_conn} - {reserved}"
                f" reserved leaves {available} (PgBouncer's pools open at most {server})",
                "error", _worker_db_keys(profile) + ("postgres.max_connections",)))
    return found


def _worker_db_keys(profile: Profile) -> tuple[str, ...]:
    assert profile.workers is not None
    return tuple(f"workers.pools.{name}.db_pool.size" for name, wp in profile.workers.pools.items()
                 if wp.db_pool.size + wp.db_pool.max_overflow)


def visibility_timeout_above_time_limit(profile: Profile, parts: Parts) -> list[Finding]:
    """A job still running (or still reserved behind prefetched ones) when its visibility timeout passes is
    handed to a second worker: duplicate execution. So the timeout must exceed prefetch_multiplier x the
    hard time limit, and the longest retry countdown (Redis holds a countdown job unacknowledged)."""
    if profile.workers is None:
        return []
    found = []
    for name, wp in profile.workers.pools.items():
        longest = wp.prefetch_multiplier * wp.time_limit
        if wp.visibility_timeout > longest and wp.visibility_timeout > wp.retry_backoff_max:
            continue
        if wp.visibility_timeout <= longest:
            detail = (f"prefetch_multiplier {wp.prefetch_multiplier} x time_limit {units.format_duration_or_unbounded(wp.time_limit)} = "
                      f"{units.format_duration_or_unbounded(longest)} ({longest} ms), the longest a reserved job can take to finish")
            key = f"workers.pools.{name}.time_limit"
        else:
            detail = (f"retry_backoff_max {units.format_duration_or_unbounded(wp.retry_backoff_max)} ({wp.retry_backoff_max} ms), the longest "
                      "a retry waits unacknowledged for its countdown")
            key = f"workers.pools.{name}.retry_backoff_max"
        found.append(Finding(
            "visibility_timeout_above_time_limit",
            f"workers.pools.{name}.visibility_timeout {units.format_duration_or_unbounded(wp.visibility_timeout)} "
            f"({wp.visibility_timeout} ms) must be above {detail}: the job would be redelivered to a second "
            "worker while the first still runs it (duplicate execution)",
            "error", (f"workers.pools.{name}.visibility_timeout", key)))
    return found


def queue_redis_keeps_jobs(profile: Profile, parts: Parts) -> list[Finding]:
    """The Redis the queue lives in never evicts a job and keeps them on disk; it fits its memory."""
    if profile.workers is None:
        return []
    from . import checks  # checks imports this module: import it when the checks run

    queue = workers.separate_queue_redis(profile)
    if queue is None:
        r = profile.redis
        if r.role == "queue":
            return []  # redis_queue_keeps_jobs checks the profile's own queue Redis
        return [Finding(
            "queue_redis_keeps_jobs",
            f"without workers.redis the job queue lives in the profile's redis, whose role is {r.role} "
            f"(maxmemory_policy {r.maxmemory_policy}, persistence {r.persistence}): set redis.role queue with "
            "noeviction and aof, or declare a separate queue Redis under workers.redis",
            "error", ("redis.role", "workers"))]
    qp = workers.queue_profile(profile)
    found = []
    queue_parts = dataclasses.replace(parts, redis=parts.workers.derived["queue_redis"])
    for finding in checks.redis_queue_keeps_jobs(qp, queue_parts) + checks.redis_fits_memory(qp, queue_parts):
        message = (finding.message.replace("redis.role queue", "the queue Redis (workers.redis)")
                   .replace("redis.maxmemory", "workers.redis.maxmemory")
                   .replace("hardware.redis.memory", "workers.redis.memory"))
        keys = tuple(k.replace("redis.", "workers.redis.").replace("hardware.workers.redis.", "workers.redis.")
                     .replace("workers.redis.role", "workers.redis") for k in finding.keys)
        found.append(Finding("queue_redis_keeps_jobs" if finding.check == "redis_queue_keeps_jobs"
                             else "queue_redis_fits_memory", message, finding.severity, keys))
    return found


def llm_replicas(profile: Profile) -> int:
    """The most LLM server replicas there will be: max_replicas where it is autoscaled (vLLM), else min."""
    scaling = profile.autoscaling.llm
    return scaling.max_replicas if profile.llm_autoscaled() else max(1, scaling.min_replicas)


def workers_fit_llm(profile: Profile, parts: Parts) -> list[Finding]:
    """Tasks that call the LLM: concurrency x max replicas of those pools, with the app's LLM client
    connections, within what the LLM server runs at once (max_num_seqs x replicas)."""
    if profile.workers is None:
        return []
    calling = {name: wp for name, wp in profile.workers.pools.items() if wp.calls_llm}
    if not calling:
        return []
    keys = tuple(f"workers.pools.{name}.concurrency" for name in calling)
    if profile.llm is None:
        return [Finding("workers_fit_llm", f"workers.pools {', '.join(calling)} set calls_llm but the profile has no llm: "
                        "the LLM they call is not sized here", "warning", keys)]
    terms = [f"workers.pools.{name} {wp.max_replicas} replicas x concurrency {wp.concurrency} = "
             f"{wp.max_replicas * wp.concurrency}" for name, wp in calling.items()]
    needed = sum(wp.max_replicas * wp.concurrency for wp in calling.values())
    replicas = llm_replicas(profile)
    capacity = profile.llm.max_num_seqs * replicas
    if needed <= capacity:
        return []
    return [Finding(
        "workers_fit_llm",
        f"{' + '.join(terms)} = {needed} concurrent LLM requests but the LLM server runs llm.max_num_seqs "
        f"{profile.llm.max_num_seqs} x {replicas} replica(s) = {capacity} at once: the rest queue in the server "
        "and the tasks' time limits run out",
        "error", keys + ("llm.max_num_seqs",))]


WORKER_CHECKS: list[Callable[[Profile, Parts], list[Finding]]] = [
    workers_fit_database, visibility_timeout_above_time_limit, queue_redis_keeps_jobs, workers_fit_llm,
]
