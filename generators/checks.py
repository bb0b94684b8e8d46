"""Cross-component checks: the one place where components are sized against each other.

Each check returns Findings whose message carries the numbers on both sides. Errors refuse the
profile (validate, render and the Pulumi program alike); warnings are printed and kept in explain.json.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from . import llm, pgbouncer, postgres, redis, units
from . import margins as margins_
from .bundle import Finding
from .profile import Profile

Check = Callable[[Profile], list[Finding]]


def pgbouncer_fits_postgres(profile: Profile) -> list[Finding]:
    pb = profile.pgbouncer
    needed = pgbouncer.server_connections(profile)
    max_conn = postgres.max_connections(postgres.Inputs.from_profile(profile)).value
    reserved = profile.postgres.superuser_reserved_connections
    available = max_conn - reserved
    if needed <= available:
        return []
    return [Finding(
        "pgbouncer_fits_postgres",
        f"pgbouncer needs {pb.replicas} replicas x {len(pb.databases)} pools x ({pb.default_pool_size} + "
        f"{pb.reserve_pool_size}) = {needed} server connections but postgres.max_connections {max_conn} - "
        f"{reserved} reserved leaves {available}",
        "error", ("pgbouncer.default_pool_size", "postgres.max_connections"))]


def app_fits_pgbouncer(profile: Profile) -> list[Finding]:
    pool = profile.app.db_pool
    replicas = profile.autoscaling.api.max_replicas
    needed = replicas * (pool.size + pool.max_overflow)
    # Every PgBouncer replica takes max_client_conn clients; a Service spreads pods across them.
    available = profile.pgbouncer.max_client_conn * profile.pgbouncer.replicas
    if needed <= available:
        return []
    return [Finding(
        "app_fits_pgbouncer",
        f"the app at autoscaling.api.max_replicas {replicas} x (db_pool.size {pool.size} + max_overflow "
        f"{pool.max_overflow}) = {needed} client connections but pgbouncer allows {profile.pgbouncer.replicas} "
        f"replicas x max_client_conn {profile.pgbouncer.max_client_conn} = {available}",
        "error", ("app.db_pool.size", "pgbouncer.max_client_conn"))]


human = units.format_size_human


def _duration(ms: int) -> str:
    return "0 (no limit)" if ms == 0 else units.format_duration(ms)


def _limit(ms: int) -> float:
    """A timeout of 0 means no limit."""
    return math.inf if ms == 0 else ms


# ---------------------------------------------------------------- Redis
# maxmemory must leave headroom in the Redis host's memory. Without persistence a quarter covers
# client and replication buffers and allocator fragmentation. An RDB save or AOF rewrite forks, and
# copy-on-write can duplicate every page written meanwhile: Redis's docs say up to 2x, so half.
REDIS_MAXMEMORY_SHARE = {"none": (3, 4), "rdb": (1, 2), "aof": (1, 2)}


def redis_fits_memory(profile: Profile) -> list[Finding]:
    memory = profile.hardware.redis.memory
    num, den = REDIS_MAXMEMORY_SHARE[profile.redis.persistence]
    allowed = memory * num // den
    used = redis.maxmemory_bytes(profile)
    if used <= allowed:
        return []
    return [Finding(
        "redis_fits_memory",
        f"redis.maxmemory {human(used)} ({used} bytes) exceeds {num}/{den} of hardware.redis.memory "
        f"{human(memory)} = {human(allowed)} ({allowed} bytes), the most that leaves headroom with persistence "
        f"{profile.redis.persistence}" + (" (a fork for the save can double the memory)"
                                          if profile.redis.persistence != "none" else
                                          " (buffers and fragmentation)"),
        "error", ("redis.maxmemory", "hardware.redis.memory"))]


def redis_queue_keeps_jobs(profile: Profile) -> list[Finding]:
    r = profile.redis
    if r.role != "queue" or (r.maxmemory_policy == "noeviction" and r.persistence == "aof"):
        return []
    wrong = []
    if r.maxmemory_policy != "noeviction":
        wrong.append(f"maxmemory_policy noeviction (is {r.maxmemory_policy})")
    if r.persistence != "aof":
        wrong.append(f"persistence aof (is {r.persistence})")
    return [Finding(
        "redis_queue_keeps_jobs",
        "redis.role queue must never evict or lose a job, so it needs " + " and ".join(wrong),
        "error", ("redis.maxmemory_policy" if r.maxmemory_policy != "noeviction" else "redis.persistence",
                  "redis.role"))]


# ---------------------------------------------------------------- LLM
VLLM_KV_CACHE_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")
OLLAMA_KV_CACHE_DTYPES = ("auto", "f16", "q8_0", "q4_0")


def llm_needs_gpu(profile: Profile) -> list[Finding]:
    if profile.llm is None or profile.hardware.gpu is not None:
        return []
    return [Finding("llm_needs_gpu", f"llm.server {profile.llm.server} needs hardware.gpu (memory and count) "
                    "to size its memory budget", "error", ("hardware.gpu", "llm"))]


def llm_kv_cache_dtype_supported(profile: Profile) -> list[Finding]:
    if profile.llm is None:
        return []
    allowed = VLLM_KV_CACHE_DTYPES if profile.llm.server == "vllm" else OLLAMA_KV_CACHE_DTYPES
    if profile.llm.kv_cache_dtype in allowed:
        return []
    return [Finding("llm_kv_cache_dtype_supported",
                    f"llm.kv_cache_dtype {profile.llm.kv_cache_dtype} is not a {profile.llm.server} KV-cache type; "
                    f"{profile.llm.server} takes {', '.join(allowed)}", "error", ("llm.kv_cache_dtype", "llm.server"))]


def llm_tensor_parallel_fits_heads(profile: Profile) -> list[Finding]:
    if profile.llm is None or profile.hardware.gpu is None or profile.llm.server != "vllm":
        return []
    tp, heads = profile.hardware.gpu.count, profile.llm.model.kv_heads
    if heads % tp == 0 or tp % heads == 0:
        return []
    return [Finding("llm_tensor_parallel_fits_heads",
                    f"vLLM splits the model's kv_heads {heads} across tensor-parallel size {tp} "
                    f"(hardware.gpu.count): one must divide the other ({heads} % {tp} = {heads % tp}, "
                    f"{tp} % {heads} = {tp % heads})", "error", ("hardware.gpu.count", "llm.model.kv_heads"))]


def llm_fits_gpu(profile: Profile) -> list[Finding]:
    if profile.llm is None or profile.hardware.gpu is None:
        return []
    b = llm.gpu_budget(profile)
    left = (f"gpu_memory_utilization {b.utilization:g} x {human(b.gpu_memory)} x {b.gpu_count} GPU(s) = "
            f"{human(b.budget)} - weights {human(b.weights)} - activation reserve {human(b.activation_reserve)} "
            f"leaves {human(b.kv_cache_bytes)} ({b.kv_cache_bytes} bytes) = {b.kv_cache_tokens} tokens at "
            f"{b.kv_bytes_per_token} bytes per token")
    one = b.max_model_len * b.kv_bytes_per_token
    if b.kv_cache_tokens < b.max_model_len:
        return [Finding(
            "llm_fits_gpu",
            f"one sequence of llm.max_model_len {b.max_model_len} tokens needs {human(one)} ({one} bytes) of KV "
            f"cache but {left}: {profile.llm.server} would refuse to start",
            "error", ("llm.max_model_len", "llm.gpu_memory_utilization"))]
    if b.tokens_wanted <= b.kv_cache_tokens:
        return []
    wanted = b.tokens_wanted * b.kv_bytes_per_token
    return [Finding(
        "llm_fits_gpu",
        f"llm.max_num_seqs {b.max_num_seqs} x max_model_len {b.max_model_len} = {b.tokens_wanted} tokens need "
        f"{human(wanted)} of KV cache but {left}: {b.concurrency} sequences of full length fit at once, "
        "longer batches wait or are preempted",
        "warning", ("llm.max_num_seqs",))]


def llm_scale_down_covers_keep_alive(profile: Profile) -> list[Finding]:
    if profile.llm is None:
        return []
    stabilization = profile.autoscaling.llm.scale_down_stabilization
    keep_alive = profile.llm.keep_alive
    if stabilization >= keep_alive:
        return []
    return [Finding(
        "llm_scale_down_covers_keep_alive",
        f"autoscaling.llm.scale_down_stabilization {_duration(stabilization)} ({stabilization} ms) is shorter than "
        f"llm.keep_alive {_duration(keep_alive)} ({keep_alive} ms): a model would be unloaded and reloaded in a loop",
        "error", ("autoscaling.llm.scale_down_stabilization", "llm.keep_alive"))]


def llm_startup_covers_load_time(profile: Profile) -> list[Finding]:
    if profile.llm is None or profile.hardware.gpu is None:
        return []
    budget = llm.startup_budget_ms(profile)
    probe = llm.startup_probe(profile)
    load_time = profile.llm.load_time
    if budget >= load_time:
        return []
    return [Finding(
        "llm_startup_covers_load_time",
        f"the LLM startup probe allows failureThreshold {probe['failureThreshold']} x periodSeconds "
        f"{probe['periodSeconds']} = {budget // 1000}s but llm.load_time is {_duration(load_time)} "
        f"({load_time / 1000:g}s): Kubernetes would restart the pod before the model loads",
        "error", ("llm.startup_timeout", "llm.load_time"))]


def llm_autoscaling_has_metric(profile: Profile) -> list[Finding]:
    if profile.llm is None or profile.llm.server != "ollama" or profile.autoscaling.llm.max_replicas <= 1:
        return []
    scaling = profile.autoscaling.llm
    return [Finding(
        "llm_autoscaling_has_metric",
        f"Ollama exports no Prometheus metrics, so autoscaling.llm (min {scaling.min_replicas}, max "
        f"{scaling.max_replicas}) cannot scale on {scaling.metric}: no autoscaler is rendered and the server "
        f"runs {scaling.min_replicas} replica(s)",
        "warning", ("autoscaling.llm.max_replicas", "llm.server"))]


HPA_MAX_STABILIZATION_MS = 3_600_000  # the API server refuses a stabilizationWindowSeconds above 3600


def hpa_stabilization_within_limit(profile: Profile) -> list[Finding]:
    found = []
    for name in ("api", "llm"):
        window = getattr(profile.autoscaling, name).scale_down_stabilization
        if window > HPA_MAX_STABILIZATION_MS:
            found.append(Finding(
                "hpa_stabilization_within_limit",
                f"autoscaling.{name}.scale_down_stabilization {_duration(window)} ({window // 1000}s) exceeds the "
                f"HorizontalPodAutoscaler's limit of {HPA_MAX_STABILIZATION_MS // 1000}s"
                + (" (with llm.keep_alive above 1h, keep autoscaling.llm.max_replicas at min_replicas)"
                   if name == "llm" else ""),
                "error", (f"autoscaling.{name}.scale_down_stabilization",)))
    return found


# ---------------------------------------------------------------- timeouts nest
def http_timeout_above_query_timeout(profile: Profile) -> list[Finding]:
    http, query = profile.app.http.timeout, profile.pgbouncer.query_timeout
    if _limit(http) > _limit(query) or (http == 0 and query == 0):
        return []
    return [Finding(
        "http_timeout_above_query_timeout",
        f"app.http.timeout {_duration(http)} ({http} ms) must be above pgbouncer.query_timeout {_duration(query)} "
        f"({query} ms): the database side gives up first and the client gets its error, not a hang",
        "error", ("app.http.timeout", "pgbouncer.query_timeout"))]


def query_timeout_covers_statement_timeout(profile: Profile) -> list[Finding]:
    query, statement = profile.pgbouncer.query_timeout, profile.postgres.statement_timeout
    if _limit(query) >= _limit(statement):
        return []
    return [Finding(
        "query_timeout_covers_statement_timeout",
        f"pgbouncer.query_timeout {_duration(query)} ({query} ms) is below postgres.statement_timeout "
        f"{_duration(statement)} ({statement} ms): PgBouncer would drop the connection before PostgreSQL "
        "cancels the statement with a clean error",
        "error", ("pgbouncer.query_timeout", "postgres.statement_timeout"))]


def llm_timeout_covers_slo(profile: Profile) -> list[Finding]:
    if profile.llm is None:
        return []
    timeout, slo = profile.llm.request_timeout, profile.slo.llm_latency_p95
    if _limit(timeout) >= slo:
        return []
    return [Finding(
        "llm_timeout_covers_slo",
        f"llm.request_timeout {_duration(timeout)} ({timeout} ms) is below slo.llm_latency_p95 {_duration(slo)} "
        f"({slo} ms): requests the SLO allows would time out",
        "error", ("llm.request_timeout", "slo.llm_latency_p95"))]


def db_query_slo_within_statement_timeout(profile: Profile) -> list[Finding]:
    slo, statement = profile.slo.db_query_p95, profile.postgres.statement_timeout
    if slo <= _limit(statement):
        return []
    return [Finding(
        "db_query_slo_within_statement_timeout",
        f"slo.db_query_p95 {_duration(slo)} ({slo} ms) is above postgres.statement_timeout {_duration(statement)} "
        f"({statement} ms): queries the SLO allows would be cancelled",
        "error", ("slo.db_query_p95", "postgres.statement_timeout"))]


def retry_backoff_ordered(profile: Profile) -> list[Finding]:
    retry = profile.app.retry
    if retry.backoff_max >= retry.backoff_base:
        return []
    return [Finding(
        "retry_backoff_ordered",
        f"app.retry.backoff_max {_duration(retry.backoff_max)} ({retry.backoff_max} ms) is below backoff_base "
        f"{_duration(retry.backoff_base)} ({retry.backoff_base} ms): the exponential backoff would be capped "
        "below its first step",
        "error", ("app.retry.backoff_max", "app.retry.backoff_base"))]


CHECKS: list[Check] = [
    pgbouncer_fits_postgres, app_fits_pgbouncer,
    redis_fits_memory, redis_queue_keeps_jobs,
    llm_needs_gpu, llm_kv_cache_dtype_supported, llm_tensor_parallel_fits_heads, llm_fits_gpu,
    llm_scale_down_covers_keep_alive, llm_startup_covers_load_time, llm_autoscaling_has_metric,
    hpa_stabilization_within_limit,
    http_timeout_above_query_timeout, query_timeout_covers_statement_timeout, llm_timeout_covers_slo,
    db_query_slo_within_statement_timeout, retry_backoff_ordered,
]


def run(profile: Profile) -> list[Finding]:
    found: list[Finding] = []
    for check in CHECKS:
        found.extend(check(profile))
    return found


def margins(profile: Profile) -> list[margins_.Margin]:
    """The (used, limit) numbers behind the capacity and timeout checks above (generators/margins.py)."""
    return margins_.margins(profile)
