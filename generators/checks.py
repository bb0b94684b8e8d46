"""Cross-component checks: the one place where components are sized against each other.

Each check is `check(profile, parts) -> list[Finding]` and reads the values the config stage really
rendered (`parts.postgres.value("max_connections")`), whether a rule, a profile key or a
`postgres.settings` override set them; it never calls another target's rule functions. Messages carry
the numbers on both sides. Errors refuse the profile (render, validate, diff, drift and the Pulumi
program alike, through render.gate); warnings are printed and kept in explain.json.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from . import margins as margins_
from . import pgversions, units
from .bundle import Finding, Part, Parts
from .checks_workers import WORKER_CHECKS
from .profile import Profile

Check = Callable[[Profile, Parts], list[Finding]]


def pg_key(profile: Profile, name: str) -> str:
    """The profile key that set PostgreSQL's `name`: its `postgres.settings` override when there is one."""
    written = next((k for k in profile.postgres.settings if k.lower() == name), None)
    return f"postgres.settings.{written}" if written else f"postgres.{name}"


def pgbouncer_fits_postgres(profile: Profile, parts: Parts) -> list[Finding]:
    pb = profile.pgbouncer
    pool, reserve = parts.pgbouncer.value("default_pool_size"), parts.pgbouncer.value("reserve_pool_size")
    steady = parts.pgbouncer.derived["server_connections"]
    surge = parts.pgbouncer.derived["surge_server_connections"]  # PgBouncer's own rolling update: one more pod
    needed = steady + surge
    max_conn = parts.postgres.value("max_connections")
    reserved = parts.postgres.value("superuser_reserved_connections")
    available = max_conn - reserved
    if needed <= available:
        return []
    users = len(pb.users)
    return [Finding(
        "pgbouncer_fits_postgres",
        f"pgbouncer needs {pb.replicas} replicas x {len(pb.databases)} databases x {users} users "
        f"(one pool per database and user) x ({pool} + {reserve}) = {steady} server connections, + {surge} for the "
        f"surge pod of its own rolling update = {needed}, but "
        f"{pg_key(profile, 'max_connections')} {max_conn} - {reserved} reserved leaves {available}",
        "error", ("pgbouncer.users" if users > 1 else "pgbouncer.default_pool_size",
                  "pgbouncer.default_pool_size", pg_key(profile, "max_connections")))]


def app_surge(profile: Profile, parts: Parts) -> int:
    """Pods a rolling update adds above autoscaling.api.max_replicas: app.max_surge, or Kubernetes' default
    maxSurge of 25%, rounded up."""
    return profile.api_surge()


def app_client_connections(profile: Profile, parts: Parts) -> tuple[int, int, int]:
    """(pods, connections per pod, total): the app at max_replicas plus its rolling-update surge."""
    size, overflow = parts.app.value("DB_POOL_SIZE"), parts.app.value("DB_MAX_OVERFLOW")
    pods = parts.autoscaling.value("api.max_replicas") + app_surge(profile, parts)
    return pods, size + overflow, pods * (size + overflow)


def app_fits_pgbouncer(profile: Profile, parts: Parts) -> list[Finding]:
    size, overflow = parts.app.value("DB_POOL_SIZE"), parts.app.value("DB_MAX_OVERFLOW")
    replicas = parts.autoscaling.value("api.max_replicas")
    surge = app_surge(profile, parts)
    needed = app_client_connections(profile, parts)[2]
    # Every PgBouncer replica takes max_client_conn clients; a Service spreads pods across them.
    max_client = parts.pgbouncer.value("max_client_conn")
    available = max_client * profile.pgbouncer.replicas
    if needed <= available:
        return []
    return [Finding(
        "app_fits_pgbouncer",
        f"the app at autoscaling.api.max_replicas {replicas} + {surge} rolling-update surge (app.max_surge) x "
        f"(db_pool.size {size} + max_overflow {overflow}) = {needed} client connections but pgbouncer allows "
        f"{profile.pgbouncer.replicas} replicas x max_client_conn {max_client} = {available}",
        "error", ("app.db_pool.size", "pgbouncer.max_client_conn", "app.max_surge"))]


def pgbouncer_pool_mode_fits_app(profile: Profile, parts: Parts) -> list[Finding]:
    """session mode gives each client a server connection for its whole session; statement mode refuses
    transactions of more than one statement."""
    mode = parts.pgbouncer.value("pool_mode")
    key = "pgbouncer.settings.pool_mode" if "pool_mode" in profile.pgbouncer.settings else "pgbouncer.pool_mode"
    if mode == "session":
        pods, per_pod, clients = app_client_connections(profile, parts)
        servers = parts.pgbouncer.derived["server_connections"]
        if clients > servers:
            return [Finding(
                "pgbouncer_pool_mode_fits_app",
                f"pool_mode session holds one server connection per client for the whole session: the app's {pods} "
                f"pods (max_replicas + surge) x {per_pod} = {clients} client connections on {servers} server "
                f"connections: {clients - servers} clients would wait until query_wait_timeout and fail; use "
                "pool_mode transaction", "error", (key, "app.db_pool.size"))]
    if mode == "statement" and profile.app.multi_statement_transactions:
        return [Finding(
            "pgbouncer_pool_mode_fits_app",
            "pool_mode statement refuses every transaction of more than one statement (PgBouncer: 'transaction "
            "blocks not allowed in statement pooling mode') and the app runs them (app.multi_statement_transactions);"
            " use pool_mode transaction", "error", (key, "app.multi_statement_transactions"))]
    return []


def pgbouncer_server_host(profile: Profile, parts: Parts) -> list[Finding]:
    found = []
    if parts.pgbouncer.derived["server_host"] is None:
        found.append(Finding(
            "pgbouncer_server_host",
            "kubernetes.postgres external: nothing renders a database Service, so pgbouncer.server_host must name "
            "the database's host (e.g. the managed instance's endpoint)", "error",
            ("pgbouncer.server_host", "kubernetes.postgres")))
    mode = profile.pgbouncer.server_tls_sslmode
    if mode in ("verify-ca", "verify-full") and profile.secrets.postgres_ca is None:
        found.append(Finding(
            "pgbouncer_server_host",
            f"pgbouncer.server_tls_sslmode {mode} verifies PostgreSQL's certificate against a CA: reference it "
            "with secrets.postgres_ca (e.g. {secret: postgres-ca, key: ca.crt})", "error",
            ("secrets.postgres_ca", "pgbouncer.server_tls_sslmode")))
    return found


def query_timeout_covers_wait(profile: Profile, parts: Parts) -> list[Finding]:
    """PgBouncer's query_timeout counts from the query's arrival, its wait for a server connection included
    (janitor.c: age = now - query_start): a query that waited query_wait_timeout must still have
    statement_timeout left, or PgBouncer drops the connection before PostgreSQL cancels the statement cleanly."""
    query = parts.pgbouncer.value("query_timeout")
    wait = parts.pgbouncer.value("query_wait_timeout")
    statement = parts.postgres.value("statement_timeout")
    if query == 0 or statement == 0 or wait == 0 or query >= wait + statement:
        return []
    return [Finding(
        "query_timeout_covers_wait",
        f"pgbouncer.query_timeout {units.format_duration(query)} ({query} ms) is below pgbouncer.query_wait_timeout "
        f"{units.format_duration(wait)} + {pg_key(profile, 'statement_timeout')} {units.format_duration(statement)} "
        f"= {wait + statement} ms: PgBouncer's query_timeout includes the wait for a server connection, so a query "
        "that waited would be cut off by PgBouncer before PostgreSQL cancels it with a clean error",
        "error", ("pgbouncer.query_wait_timeout", "pgbouncer.query_timeout", pg_key(profile, "statement_timeout")))]


# PostgreSQL's memory: shared_buffers is allocated at start; each connection may use work_mem per sort
# or hash node, and maintenance_work_mem and one autovacuum_work_mem per autovacuum worker run beside them.
# WORK_MEM_FACTOR is the work_mem allocations counted per connection: 1, the steady state of short web and
# OLTP queries (one sort or hash at a time). pgtune's work_mem rule already divides what is left after
# shared_buffers by 3 x connections, so a query with three such nodes still fits the rule's own figure;
# the check refuses what does not fit even one per connection.
WORK_MEM_FACTOR = 1
PG_AUTOVACUUM_DEFAULT_WORKERS = 3  # PostgreSQL's autovacuum_max_workers default


@dataclass(frozen=True)
class PostgresMemory:
    """PostgreSQL's memory budget terms, in kB, as rendered."""

    shared: int
    work: int
    maint: int
    workers: int  # autovacuum workers
    av: int  # autovacuum_work_mem of each (maintenance_work_mem when -1 or not rendered)
    conns: int

    @property
    def fixed(self) -> int:
        """What does not grow with connections: shared_buffers, maintenance and the autovacuum workers."""
        return self.shared + self.maint + self.workers * self.av

    @property
    def used(self) -> int:
        return self.fixed + self.work * WORK_MEM_FACTOR * self.conns


def postgres_memory(pg: Part) -> PostgresMemory:
    maint = pg.value("maintenance_work_mem")
    workers = pg.get("autovacuum_max_workers")
    av = pg.get("autovacuum_work_mem")
    return PostgresMemory(shared=pg.value("shared_buffers"), work=pg.value("work_mem"), maint=maint,
                          workers=workers.value if workers else PG_AUTOVACUUM_DEFAULT_WORKERS,
                          av=av.value if av is not None and av.value != -1 else maint,
                          conns=pg.value("max_connections"))


def postgres_fits_memory(profile: Profile, parts: Parts) -> list[Finding]:
    pg = parts.postgres
    memory_kb = profile.hardware.postgres.memory // 1024
    budget = postgres_memory(pg)
    shared, work, maint, workers, av, conns = (budget.shared, budget.work, budget.maint, budget.workers, budget.av,
                                               budget.conns)
    used = budget.used
    if used <= memory_kb:
        return []
    counted = [pg.setting(k) for k in ("shared_buffers", "work_mem", "max_connections", "maintenance_work_mem")]
    # pgtune's own output on a small host (its 4MB work_mem floor x its default connections) is a warning;
    # a value the profile chose (a key or a postgres.settings override) that does not fit is refused.
    chosen = any(not s.rule.startswith("pgtune:") or "given by" in s.rule for s in counted)
    def kb(value: int) -> str:
        return units.format_size_human(value * 1024)

    return [Finding(
        "postgres_fits_memory",
        f"shared_buffers {kb(shared)} + work_mem {kb(work)} x max_connections {conns}"
        f"{f' x {WORK_MEM_FACTOR}' if WORK_MEM_FACTOR != 1 else ''} + maintenance_work_mem "
        f"{kb(maint)} + {workers} autovacuum workers x {kb(av)} = {kb(used)} ({used} kB) exceeds "
        f"hardware.postgres.memory {kb(memory_kb)} ({memory_kb} kB)"
        + ("" if chosen else ": pgtune's defaults overcommit this host; set postgres.max_connections lower"),
        "error" if chosen else "warning", (pg_key(profile, "shared_buffers"), pg_key(profile, "work_mem"), pg_key(profile, "max_connections"),
                  "hardware.postgres.memory"))]


PG_CHECKPOINT_WARNING_MS = 30_000  # PostgreSQL's checkpoint_warning: checkpoints closer than this are logged


def postgres_wal_keeps_up(profile: Profile, parts: Parts) -> list[Finding]:
    """At the write rate, max_wal_size (bounded by the WAL disk) must last at least checkpoint_warning."""
    rate = profile.hardware.postgres.write_rate
    if not rate:
        return []
    wal_kb = parts.postgres.value("max_wal_size")
    fill_ms = wal_kb * 1024 * 1000 // rate
    if fill_ms >= PG_CHECKPOINT_WARNING_MS:
        return []
    return [Finding(
        "postgres_wal_keeps_up",
        f"{pg_key(profile, 'max_wal_size')} {units.format_size_human(wal_kb * 1024)} fills in {fill_ms / 1000:g}s at "
        f"hardware.postgres.write_rate {units.format_size_human(rate)}/s, below PostgreSQL's checkpoint_warning "
        f"{PG_CHECKPOINT_WARNING_MS // 1000}s: back-to-back checkpoints rewrite every page in full; give a larger "
        "hardware.postgres.wal_disk",
        "error", ("hardware.postgres.wal_disk", "hardware.postgres.write_rate", pg_key(profile, "max_wal_size")))]


def postgres_io_method_allowed(profile: Profile, parts: Parts) -> list[Finding]:
    method = parts.postgres.get("io_method")
    if profile.kubernetes.postgres != "cloudnativepg" or method is None or method.text != "io_uring":
        return []
    return [Finding(
        "postgres_io_method_allowed",
        "io_method io_uring under kubernetes.postgres cloudnativepg: the operator runs PostgreSQL with the "
        "RuntimeDefault seccomp profile, which blocks the io_uring system calls, and PostgreSQL 18 would not start; "
        "use io_method worker (perfstack's rule there)",
        "error", (pg_key(profile, "io_method"), "kubernetes.postgres"))]


def postgres_managed_is_external(profile: Profile, parts: Parts) -> list[Finding]:
    if profile.postgres.managed == "self-managed" or profile.kubernetes.postgres == "external":
        return []
    return [Finding(
        "postgres_managed_is_external",
        f"postgres.managed {profile.postgres.managed} names a cloud service, but kubernetes.postgres is "
        f"{profile.kubernetes.postgres} (a database in the cluster); set kubernetes.postgres: external",
        "error", ("postgres.managed", "kubernetes.postgres"))]


def postgres_managed_allows(profile: Profile, parts: Parts) -> list[Finding]:
    """A postgres.settings override the managed service does not take is refused (a rule's is only reported)."""
    refused: dict[str, str] = parts.postgres.derived.get("managed_refused", {})
    written = {k.lower(): k for k in profile.postgres.settings}
    return [Finding(
        "postgres_managed_allows",
        f"postgres.managed {profile.postgres.managed} does not let a parameter group or flag set {name}: {why}",
        "error", (f"postgres.settings.{written[name]}", "postgres.managed"))
        for name, why in sorted(refused.items()) if name in written]


def postgres_list_values(profile: Profile, parts: Parts) -> list[Finding]:
    """A library list separated by spaces names one library with a space in its name: the server would not start."""
    found = []
    for key in pgversions.LIBRARY_LISTS:
        setting = parts.postgres.get(key)
        if setting is not None and (why := pgversions.library_list_problem(key, setting.text)) is not None:
            found.append(Finding("postgres_list_values", why, "error", (pg_key(profile, key),)))
    return found


human = units.format_size_human


def _limit(ms: int) -> float:
    """A timeout of 0 means no limit."""
    return math.inf if ms == 0 else ms


# ---------------------------------------------------------------- Redis
# maxmemory must leave headroom in the Redis host's memory. Without persistence a quarter covers
# client and replication buffers and allocator fragmentation. An RDB save or AOF rewrite forks, and
# copy-on-write can duplicate every page written meanwhile: Redis's docs say up to 2x, so half.
REDIS_MAXMEMORY_SHARE = {"none": (3, 4), "rdb": (1, 2), "aof": (1, 2)}


def redis_fits_memory(profile: Profile, parts: Parts) -> list[Finding]:
    memory = profile.hardware.redis.memory
    num, den = REDIS_MAXMEMORY_SHARE[profile.redis.persistence]
    allowed = memory * num // den
    used = parts.redis.value("maxmemory")
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


def redis_maxmemory_bounded(profile: Profile, parts: Parts) -> list[Finding]:
    if parts.redis.value("maxmemory") > 0:
        return []
    key = "redis.settings.maxmemory" if "maxmemory" in profile.redis.settings else "redis.maxmemory"
    return [Finding(
        "redis_maxmemory_bounded",
        f"{key} 0 means no limit: Redis never evicts and grows until the pod's memory limit "
        f"(hardware.redis.memory {human(profile.hardware.redis.memory)}) gets it OOM-killed, losing every key; "
        "give a size or a share (75%)", "error", (key, "hardware.redis.memory"))]


def redis_queue_keeps_jobs(profile: Profile, parts: Parts) -> list[Finding]:
    r = profile.redis
    policy = parts.redis.value("maxmemory-policy")
    aof = parts.redis.value("appendonly")
    fsync = parts.redis.value("appendfsync")
    if r.role != "queue" or (policy == "noeviction" and aof and fsync == "always"):
        return []
    wrong, keys = [], []
    if policy != "noeviction":
        wrong.append(f"maxmemory_policy noeviction (is {policy})")
        keys.append("redis.maxmemory_policy")
    if not aof:
        wrong.append(f"persistence aof (is {r.persistence})")
        keys.append("redis.persistence")
    if fsync != "always":
        wrong.append(f"appendfsync always (is {fsync}: a crash loses the last second of acknowledged jobs)")
        keys.append("redis.settings.appendfsync" if "appendfsync" in r.settings else "redis.appendfsync")
    return [Finding(
        "redis_queue_keeps_jobs",
        "redis.role queue must never evict or lose a job, so it needs " + " and ".join(wrong),
        "error", (*keys, "redis.role"))]


REDIS_DEFAULT_MAXCLIENTS = 10_000


def redis_clients_fit(profile: Profile, parts: Parts) -> list[Finding]:
    """The app's Redis pools at max_replicas plus surge within Redis's maxclients."""
    pods = parts.autoscaling.value("api.max_replicas") + app_surge(profile, parts)
    pool = parts.app.value("REDIS_MAX_CONNECTIONS")
    setting = parts.redis.get("maxclients")
    limit = setting.value if setting is not None else REDIS_DEFAULT_MAXCLIENTS
    if pods * pool <= limit:
        return []
    return [Finding(
        "redis_clients_fit",
        f"the app's {pods} pods (max_replicas + surge) x app.redis_client.max_connections {pool} = {pods * pool} "
        f"Redis connections exceed maxclients {limit}: Redis refuses the rest (ERR max number of clients reached)",
        "error", ("app.redis_client.max_connections", "redis.settings.maxclients"))]


# ---------------------------------------------------------------- LLM
VLLM_KV_CACHE_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")
OLLAMA_KV_CACHE_DTYPES = ("auto", "f16", "q8_0", "q4_0")


def llm_needs_gpu(profile: Profile, parts: Parts) -> list[Finding]:
    if profile.llm is None or profile.hardware.gpu is not None:
        return []
    return [Finding("llm_needs_gpu", f"llm.server {profile.llm.server} needs hardware.gpu (memory and count) "
                    "to size its memory budget", "error", ("hardware.gpu", "llm"))]


def llm_kv_cache_dtype_supported(profile: Profile, parts: Parts) -> list[Finding]:
    if profile.llm is None:
        return []
    allowed = VLLM_KV_CACHE_DTYPES if profile.llm.server == "vllm" else OLLAMA_KV_CACHE_DTYPES
    if profile.llm.kv_cache_dtype in allowed:
        return []
    return [Finding("llm_kv_cache_dtype_supported",
                    f"llm.kv_cache_dtype {profile.llm.kv_cache_dtype} is not a {profile.llm.server} KV-cache type; "
                    f"{profile.llm.server} takes {', '.join(allowed)}", "error", ("llm.kv_cache_dtype", "llm.server"))]


def llm_tensor_parallel_fits_heads(profile: Profile, parts: Parts) -> list[Finding]:
    if profile.llm is None or profile.hardware.gpu is None or profile.llm.server != "vllm":
        return []
    tp, heads = profile.hardware.gpu.count, parts.llm.derived["kv_heads"]
    if heads % tp == 0 or tp % heads == 0:
        return []
    return [Finding("llm_tensor_parallel_fits_heads",
                    f"vLLM splits the model's kv_heads {heads} ({profile.llm.model.name}) across tensor-parallel size "
                    f"{tp} (hardware.gpu.count): one must divide the other ({heads} % {tp} = {heads % tp}, "
                    f"{tp} % {heads} = {tp % heads})", "error", ("hardware.gpu.count", "llm.model.name"))]


def llm_fits_gpu(profile: Profile, parts: Parts) -> list[Finding]:
    """vLLM refuses to start when one sequence of max_model_len does not fit in the KV cache it can allocate."""
    if profile.llm is None or profile.hardware.gpu is None or profile.llm.server != "vllm":
        return []
    b = parts.llm.derived["gpu_budget"]
    left = (f"per GPU gpu_memory_utilization {b.utilization:g} x torch-visible {human(b.gpu_memory)} = "
            f"{human(b.requested)} - weights {human(b.weights)} - activation peak {human(b.torch_peak)} - non-torch "
            f"{human(b.non_torch)} leaves {human(b.kv_cache_bytes)} ({b.kv_cache_tokens} tokens)")
    found = []
    if b.outside_share < b.outside_needed:
        found.append(Finding(
            "llm_fits_gpu",
            f"llm.gpu_memory_utilization {b.utilization:g} leaves {human(b.outside_share)} of each GPU outside vLLM's "
            f"share, below the {human(b.outside_needed)} the CUDA context and CUDA graphs take there: vLLM would run out "
            "of memory capturing CUDA graphs", "error", ("llm.gpu_memory_utilization",)))
    if b.kv_cache_bytes < b.bytes_per_sequence:
        found.append(Finding(
            "llm_fits_gpu",
            f"one sequence of llm.max_model_len {b.max_model_len} tokens needs {human(b.bytes_per_sequence)} of KV "
            f"cache per GPU but {left}: vLLM would refuse to start", "error",
            ("llm.max_model_len", "llm.gpu_memory_utilization")))
    elif b.concurrency < b.max_num_seqs:
        found.append(Finding(
            "llm_fits_gpu",
            f"llm.max_num_seqs {b.max_num_seqs} sequences of max_model_len {b.max_model_len} need "
            f"{human(b.max_num_seqs * b.bytes_per_sequence)} of KV cache per GPU but {left}: {b.concurrency} "
            "sequences of full length fit at once, longer batches wait or are preempted",
            "warning", ("llm.max_num_seqs",)))
    return found


def llm_ollama_fits_gpu(profile: Profile, parts: Parts) -> list[Finding]:
    """Ollama reserves NUM_PARALLEL x CONTEXT of KV up front; what does not fit runs on the CPU, layer by layer."""
    if profile.llm is None or profile.hardware.gpu is None or profile.llm.server != "ollama":
        return []
    o = parts.llm.derived["ollama_budget"]
    if o.layers_on_cpu == 0:
        return []
    return [Finding(
        "llm_ollama_fits_gpu",
        f"Ollama reserves OLLAMA_NUM_PARALLEL {profile.llm.max_num_seqs} x OLLAMA_CONTEXT_LENGTH "
        f"{profile.llm.max_model_len} tokens of KV cache ({human(o.kv_reserved)}) up front: with the weights "
        f"({human(o.weights)}) only {o.layers_on_gpu} of {o.layers} layers fit in {human(o.available)} of GPU memory, "
        f"{o.layers_on_cpu} run on the CPU (many times slower); lower llm.max_num_seqs or llm.max_model_len",
        "error" if o.layers_on_gpu == 0 else "warning", ("llm.max_num_seqs", "llm.max_model_len"))]


def llm_quantized_kv_needs_flash_attention(profile: Profile, parts: Parts) -> list[Finding]:
    if (profile.llm is None or profile.llm.server != "ollama" or profile.llm.flash_attention
            or profile.llm.kv_cache_dtype not in ("q8_0", "q4_0")):
        return []
    return [Finding(
        "llm_quantized_kv_needs_flash_attention",
        f"llm.kv_cache_dtype {profile.llm.kv_cache_dtype} needs llm.flash_attention: without it Ollama silently "
        "keeps an f16 KV cache (twice or four times the memory sized here)",
        "error", ("llm.flash_attention", "llm.kv_cache_dtype"))]


def llm_gated_model_has_token(profile: Profile, parts: Parts) -> list[Finding]:
    if profile.llm is None or profile.llm.server != "vllm" or not parts.llm.derived.get("gated"):
        return []
    if profile.secrets.hf_token is not None:
        return []
    return [Finding(
        "llm_gated_model_has_token",
        f"{profile.llm.model.name} is gated on Hugging Face: vLLM cannot download it without a token; reference the "
        "Secret that holds one: `secrets: {hf_token: {secret: hf-token, key: HF_TOKEN}}`",
        "error", ("secrets.hf_token", "llm.model.name"))]


def llm_scale_down_covers_load_time(profile: Profile, parts: Parts) -> list[Finding]:
    """A pod removed in a dip costs a cold start to bring back: the scale-down window must outlast one."""
    if not profile.llm_autoscaled() or profile.autoscaling.llm.max_replicas <= profile.autoscaling.llm.min_replicas:
        return []
    stabilization = profile.autoscaling.llm.scale_down_stabilization
    load_time = parts.llm.derived["load_time"]
    if stabilization >= load_time:
        return []
    return [Finding(
        "llm_scale_down_covers_load_time",
        f"autoscaling.llm.scale_down_stabilization {units.format_duration_or_unbounded(stabilization)} "
        f"({stabilization} ms) is shorter than llm.load_time {units.format_duration(load_time)} ({load_time} ms): a "
        "pod removed in a dip takes a whole cold start to come back, and the fleet flaps",
        "error", ("autoscaling.llm.scale_down_stabilization", "llm.load_time"))]


def llm_scale_to_zero(profile: Profile, parts: Parts) -> list[Finding]:
    if profile.llm is None or profile.autoscaling.llm.min_replicas != 0:
        return []
    if not profile.llm_autoscaled() or profile.autoscaling.llm.scaler != "keda":
        return [Finding("llm_scale_to_zero", "autoscaling.llm.min_replicas 0 (scale to zero) needs "
                        "autoscaling.llm.scaler keda and a vLLM server: an HPA never scales to zero",
                        "error", ("autoscaling.llm.min_replicas", "autoscaling.llm.scaler"))]
    load_time = parts.llm.derived["load_time"]
    if profile.llm.request_timeout >= load_time + profile.slo.llm_latency_p95:
        return []
    return [Finding(
        "llm_scale_to_zero",
        f"at zero replicas the first LLM call waits for a cold start (llm.load_time {units.format_duration(load_time)})"
        f" but llm.request_timeout is {units.format_duration(profile.llm.request_timeout)}: those calls fail",
        "warning", ("autoscaling.llm.min_replicas", "llm.request_timeout"))]


def llm_startup_covers_load_time(profile: Profile, parts: Parts) -> list[Finding]:
    if profile.llm is None or profile.hardware.gpu is None:
        return []
    probe = parts.llm.derived["startup_probe"]
    budget = probe["failureThreshold"] * probe["periodSeconds"] * 1000
    load_time = parts.llm.derived["load_time"]
    found = []
    if budget < load_time:
        found.append(Finding(
            "llm_startup_covers_load_time",
            f"the LLM startup probe allows failureThreshold {probe['failureThreshold']} x periodSeconds "
            f"{probe['periodSeconds']} = {budget // 1000}s but llm.load_time is {units.format_duration(load_time)} "
            f"({load_time / 1000:g}s): Kubernetes would restart the pod before the model loads",
            "error", ("llm.startup_timeout", "llm.load_time")))
    cold = parts.llm.derived["cold_start"]
    if profile.llm.load_time is not None and load_time < cold:
        found.append(Finding(
            "llm_startup_covers_load_time",
            f"llm.load_time {units.format_duration(load_time)} is below a cold start of {units.format_duration(cold)} "
            f"(image pull and weight download at llm.download_bandwidth, load, engine start): on a new node the "
            "startup probe and the autoscaler's timing would be short",
            "warning", ("llm.load_time", "llm.download_bandwidth")))
    return found


def llm_autoscaling_has_metric(profile: Profile, parts: Parts) -> list[Finding]:
    if profile.llm is None or profile.llm.server != "ollama" or profile.autoscaling.llm.max_replicas <= 1:
        return []
    scaling = profile.autoscaling.llm
    return [Finding(
        "llm_autoscaling_has_metric",
        f"Ollama exports no Prometheus metrics, so autoscaling.llm (min {scaling.min_replicas}, max "
        f"{scaling.max_replicas}) cannot scale on {scaling.signal}: no autoscaler is rendered and the server "
        f"runs {max(1, scaling.min_replicas)} replica(s)",
        "warning", ("autoscaling.llm.max_replicas", "llm.server"))]


HPA_MAX_STABILIZATION_MS = 3_600_000  # the API server refuses a stabilizationWindowSeconds above 3600


def hpa_stabilization_within_limit(profile: Profile, parts: Parts) -> list[Finding]:
    found = []
    for name in ("api", "llm"):
        window = getattr(profile.autoscaling, name).scale_down_stabilization
        if window > HPA_MAX_STABILIZATION_MS:
            found.append(Finding(
                "hpa_stabilization_within_limit",
                f"autoscaling.{name}.scale_down_stabilization {units.format_duration_or_unbounded(window)} ({window // 1000}s) exceeds the "
                f"HorizontalPodAutoscaler's limit of {HPA_MAX_STABILIZATION_MS // 1000}s",
                "error", (f"autoscaling.{name}.scale_down_stabilization",)))
    return found


# ---------------------------------------------------------------- timeouts nest
@dataclass(frozen=True)
class Timeout:
    """One side of a timeout ordering: the profile key that sets it and how to read its rendered value (ms)."""

    key: str
    read: Callable[[Profile, Parts], int | None]  # None: the component is not rendered
    zero_is_unbounded: bool = True  # 0 disables the timeout (an SLO or a backoff step is never 0-means-off)


@dataclass(frozen=True)
class Ordering:
    """`outer` must be above (strict) or at least (not strict) `inner`, for `why`."""

    check: str
    outer: Timeout
    inner: Timeout
    strict: bool
    why: str


def _pg_ms(name: str) -> Timeout:
    return Timeout(f"postgres.{name}", lambda profile, parts: parts.postgres.value(name))


def _llm(profile: Profile, parts: Parts) -> int | None:
    return profile.llm.request_timeout if profile.llm is not None else None


HTTP_TIMEOUT = Timeout("app.http.timeout", lambda profile, parts: parts.app.value("HTTP_TIMEOUT_SECONDS"))
QUERY_TIMEOUT = Timeout("pgbouncer.query_timeout", lambda profile, parts: parts.pgbouncer.value("query_timeout"))
STATEMENT_TIMEOUT = _pg_ms("statement_timeout")
# lock_timeout 0 (off) leaves lock waits to statement_timeout: not an ordering problem, so 0 is read as 0.
LOCK_TIMEOUT = Timeout("postgres.lock_timeout", lambda profile, parts: parts.postgres.value("lock_timeout"), False)
LLM_REQUEST_TIMEOUT = Timeout("llm.request_timeout", _llm)
LLM_SLO = Timeout("slo.llm_latency_p95", lambda profile, parts: profile.slo.llm_latency_p95, False)
DB_QUERY_SLO = Timeout("slo.db_query_p95", lambda profile, parts: profile.slo.db_query_p95, False)
QUERY_WAIT_TIMEOUT = Timeout("pgbouncer.query_wait_timeout",
                             lambda profile, parts: parts.pgbouncer.value("query_wait_timeout"))
RESERVE_POOL_TIMEOUT = Timeout("pgbouncer.reserve_pool_timeout",
                               lambda profile, parts: parts.pgbouncer.value("reserve_pool_timeout"), False)
DB_POOL_TIMEOUT = Timeout("app.db_pool.timeout", lambda profile, parts: parts.app.value("DB_POOL_TIMEOUT_SECONDS"))
REDIS_IDLE_TIMEOUT = Timeout("redis.timeout", lambda profile, parts: parts.redis.value("timeout") * 1000)
REDIS_HEALTH_CHECK = Timeout("app.redis_client.health_check_interval",
                             lambda profile, parts: parts.app.value("REDIS_HEALTH_CHECK_INTERVAL_SECONDS"), False)
BACKOFF_MAX = Timeout("app.retry.backoff_max", lambda profile, parts: parts.app.value("RETRY_BACKOFF_MAX_SECONDS"), False)
BACKOFF_BASE = Timeout("app.retry.backoff_base", lambda profile, parts: parts.app.value("RETRY_BACKOFF_BASE_SECONDS"),
                       False)

# Every timeout that must nest inside another, outermost first: one table, one check function.
TIMEOUT_ORDER: list[Ordering] = [
    Ordering("http_timeout_above_query_timeout", HTTP_TIMEOUT, QUERY_TIMEOUT, True,
             "the database side gives up first and the client gets its error, not a hang"),
    Ordering("query_timeout_covers_statement_timeout", QUERY_TIMEOUT, STATEMENT_TIMEOUT, False,
             "PgBouncer would drop the connection before PostgreSQL cancels the statement with a clean error"),
    Ordering("llm_timeout_covers_slo", LLM_REQUEST_TIMEOUT, LLM_SLO, False,
             "requests the SLO allows would time out"),
    Ordering("db_query_slo_within_statement_timeout", STATEMENT_TIMEOUT, DB_QUERY_SLO, False,
             "queries the SLO allows would be cancelled"),
    Ordering("lock_timeout_below_statement_timeout", STATEMENT_TIMEOUT, LOCK_TIMEOUT, True,
             "the statement timeout would always fire first and a lock wait would never be reported as one"),
    Ordering("db_pool_timeout_above_query_wait_timeout", DB_POOL_TIMEOUT, QUERY_WAIT_TIMEOUT, True,
             "a client queued in PgBouncer fails with PgBouncer's error before the app's pool gives up on it"),
    Ordering("http_timeout_above_query_wait_timeout", HTTP_TIMEOUT, QUERY_WAIT_TIMEOUT, True,
             "a request queued in PgBouncer gets PgBouncer's error, not the client's timeout"),
    Ordering("reserve_pool_within_query_slo", DB_QUERY_SLO, RESERVE_POOL_TIMEOUT, False,
             "the reserve pool opens only after a query has waited reserve_pool_timeout: a longer wait has "
             "already missed the query SLO before the burst room helps"),
    Ordering("redis_health_check_within_idle_timeout", REDIS_IDLE_TIMEOUT, REDIS_HEALTH_CHECK, True,
             "Redis closes a connection idle for redis.timeout; the client must ping it sooner or its next "
             "command meets a closed socket"),
    Ordering("retry_backoff_ordered", BACKOFF_MAX, BACKOFF_BASE, False,
             "the exponential backoff would be capped below its first step"),
]


def _key(profile: Profile, side: Timeout) -> str:
    return pg_key(profile, side.key.removeprefix("postgres.")) if side.key.startswith("postgres.") else side.key


def timeouts_nest(profile: Profile, parts: Parts) -> list[Finding]:
    found = []
    for order in TIMEOUT_ORDER:
        outer, inner = order.outer.read(profile, parts), order.inner.read(profile, parts)
        if outer is None or inner is None:
            continue
        o = _limit(outer) if order.outer.zero_is_unbounded else outer
        i = _limit(inner) if order.inner.zero_is_unbounded else inner
        if (o > i if order.strict else o >= i) or (order.strict and outer == 0 and inner == 0):
            continue
        relation = "must be above" if order.strict else "is below"
        outer_key, inner_key = _key(profile, order.outer), _key(profile, order.inner)
        found.append(Finding(
            order.check,
            f"{outer_key} {units.format_duration_or_unbounded(outer)} ({outer} ms) {relation} {inner_key} {units.format_duration_or_unbounded(inner)} ({inner} ms): "
            f"{order.why}",
            "error", (outer_key, inner_key)))
    return found


# Each latency SLO the alerts compute from one of the app's histograms, and the buckets of that histogram.
LATENCY_SLOS = (("slo.api_latency_p95", "http", "http_request_duration_seconds"),
                ("slo.workflow_p95", "workflow", "app_workflow_duration_seconds"),
                ("slo.db_query_p95", "db_query", "app_db_query_duration_seconds"))


def latency_slos_within_buckets(profile: Profile, parts: Parts) -> list[Finding]:
    """A p95 above the largest finite bucket can never be computed (histogram_quantile stops there), and one
    between two bounds is only interpolated: each latency SLO must be a bucket bound below the largest, so
    its alert can fire and the share of slow requests (the latency burn rate) is one bucket's count."""
    found = []
    for key, name, metric in LATENCY_SLOS:
        slo_ms = getattr(profile.slo, key.split(".")[1])
        buckets = getattr(profile.app.latency_buckets, name)
        if slo_ms in buckets[:-1]:
            continue
        listed = ", ".join(units.format_duration(b) for b in buckets)
        why = ("is not below the largest bucket: the computed p95 never exceeds "
               f"{units.format_duration(buckets[-1])}, so the alert could never fire"
               if slo_ms >= buckets[-1] else "is not one of the bucket bounds")
        found.append(Finding(
            "latency_slo_within_buckets",
            f"{key} {units.format_duration(slo_ms)} {why}; {metric} has buckets {listed} "
            f"(app.latency_buckets.{name}): add {units.format_duration(slo_ms)} and a larger bound to them",
            "error", (key, f"app.latency_buckets.{name}")))
    return found


CHECKS: list[Check] = [
    pgbouncer_fits_postgres, app_fits_pgbouncer, pgbouncer_pool_mode_fits_app, pgbouncer_server_host,
    query_timeout_covers_wait, postgres_fits_memory,
    postgres_wal_keeps_up, postgres_io_method_allowed, postgres_managed_is_external, postgres_managed_allows,
    postgres_list_values,
    redis_fits_memory, redis_maxmemory_bounded, redis_queue_keeps_jobs, redis_clients_fit,
    llm_needs_gpu, llm_kv_cache_dtype_supported, llm_tensor_parallel_fits_heads, llm_fits_gpu,
    llm_ollama_fits_gpu, llm_quantized_kv_needs_flash_attention, llm_gated_model_has_token,
    llm_scale_down_covers_load_time, llm_scale_to_zero, llm_startup_covers_load_time, llm_autoscaling_has_metric,
    hpa_stabilization_within_limit, timeouts_nest, latency_slos_within_buckets,
    *WORKER_CHECKS,
]


def run(profile: Profile, parts: Parts) -> list[Finding]:
    found: list[Finding] = []
    for check in CHECKS:
        found.extend(check(profile, parts))
    return found


def margins(profile: Profile, parts: Parts) -> list[margins_.Margin]:
    """The (used, limit) numbers behind the capacity and timeout checks above (generators/margins.py)."""
    return margins_.margins(profile, parts)
