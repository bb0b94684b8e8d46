"""Hypothesis strategies: valid perfstack profiles drawn across the whole schema.

`profile_documents()` draws a profile as the YAML mapping a person would write (sizes and durations as
unit strings, sometimes in odd units), spanning hardware from 1 GiB / 1 CPU to 1 TiB / 128 CPUs, every
PostgreSQL version (10-18), workload, storage and OS, every PgBouncer pool mode and auth type that
perfstack renders, every Redis role and persistence, both LLM servers (or none), both autoscalers,
both PostgreSQL and dashboard modes.

Values are drawn so that the cross-component checks pass by construction (pools sized inside
max_connections, clients inside max_client_conn, timeouts nested, Redis headroom, a queue with
noeviction + aof, the LLM's weights and one full sequence inside its GPU budget, ...). The one
`assume` left guards the LLM's KV-cache budget, computed with generators/llm.py's own arithmetic.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from generators import llm as llm_rules
from generators import models, serverversions
from generators import postgres as pg_rules
from generators.profile import Profile

MIB, GIB = 1024**2, 1024**3

# Catalog models (Hugging Face id, Ollama tag); kv_heads are powers of two so that every power-of-two GPU
# count divides them or is divided by them (vLLM's tensor parallelism).
MODELS = [
    ("meta-llama/Llama-3.2-1B-Instruct", "llama3.2:1b"),
    ("meta-llama/Llama-3.2-3B-Instruct", "llama3.2:3b"),
    ("mistralai/Mistral-7B-Instruct-v0.3", "mistral:7b"),
    ("meta-llama/Llama-3.1-8B-Instruct", "llama3.1:8b"),
    ("Qwen/Qwen2.5-14B-Instruct", "qwen2.5:14b"),
    ("Qwen/Qwen2.5-32B-Instruct", "qwen2.5:32b"),
    ("meta-llama/Llama-3.1-70B-Instruct", "llama3.1:70b"),
]
GPUS = [("T4", 16), ("L4", 24), ("A100", 40), ("L40S", 48), ("A100", 80), ("H100", 80), ("H100", 94),
        ("H200", 141), ("B200", 192)]
VLLM_KV = ["auto", "fp8", "fp8_e4m3", "fp8_e5m2"]
OLLAMA_KV = ["auto", "f16", "q8_0", "q4_0"]
# auth types PgBouncer starts with from the rendered ini alone (hba and cert are refused by the model:
# perfstack renders no auth_hba_file and no client TLS files).
AUTH_TYPES = ["scram-sha-256", "md5", "plain", "trust"]
# postgres.settings overrides valid in every supported version (10-18), with values as people write them.
OVERRIDES: dict[str, st.SearchStrategy[Any]] = {
    "random_page_cost": st.sampled_from([1.0, 1.1, 1.5, 2, 4]),
    "checkpoint_timeout": st.sampled_from(["5min", "15min", "30min", "1h", "900s"]),
    "log_lock_waits": st.booleans(),
    "track_io_timing": st.sampled_from([True, False, "on", "off"]),
    "work_mem": st.sampled_from(["4MB", "64MB", "256MB", "1GB", 65536]),
    "log_min_messages": st.sampled_from(["warning", "error", "notice", "info"]),
    "default_statistics_target": st.integers(1, 10_000),
    "max_wal_size": st.sampled_from(["1GB", "4GB", "16GB", "64GB"]),
    "autovacuum_vacuum_scale_factor": st.sampled_from([0.01, 0.05, 0.1, 0.2]),
    "log_checkpoints": st.booleans(),
    "application_name": st.sampled_from(["perfstack", "api server", "it's"]),
    "search_path": st.sampled_from(["\"$user\", public", "app, public"]),
}
IDENT = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
DNS = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


def size_text(num_bytes: int, draw: Any) -> str | int:
    """A size as a person might write it: in the largest exact unit, sometimes a smaller one or bare bytes."""
    exact = [(unit, factor) for unit, factor in (("TiB", 1024**4), ("GiB", GIB), ("MiB", MIB), ("KiB", 1024))
             if num_bytes % factor == 0]
    choice = draw(st.integers(0, len(exact)))
    if choice == len(exact):
        return num_bytes
    unit, factor = exact[choice]
    return f"{num_bytes // factor}{unit}"


def duration_text(ms: int, draw: Any) -> str:
    options = [f"{ms}ms"]
    for unit, factor in (("s", 1000), ("min", 60_000), ("h", 3_600_000)):
        if ms % factor == 0:
            options.append(f"{ms // factor}{unit}")
    return draw(st.sampled_from(options))


@st.composite
def memory_bytes(draw: Any) -> int:
    """1 GiB .. 1 TiB: whole GiB, or a GiB and a few hundred MiB."""
    gib = draw(st.one_of(st.integers(1, 16), st.integers(1, 1024)))
    extra = draw(st.sampled_from([0, 0, 0, 256, 512])) if gib < 1024 else 0
    return gib * GIB + extra * MIB


@st.composite
def profile_documents(draw: Any) -> dict[str, Any]:
    environment = draw(st.sampled_from(["dev", "prod", "staging", "qa-1", "perf"]))
    doc: dict[str, Any] = {"environment": environment, "namespace": draw(DNS)}

    # ---- hardware
    pg_memory = draw(memory_bytes())
    pg_hw: dict[str, Any] = {
        "memory": size_text(pg_memory, draw),
        "storage": draw(st.sampled_from(["hdd", "ssd", "san", "nvme"])),
        "os": draw(st.sampled_from(["linux", "windows", "mac"])),
    }
    if draw(st.booleans()):
        pg_hw["cpus"] = draw(st.integers(1, 128))
    if draw(st.booleans()):
        pg_hw["data_size"] = size_text(draw(st.sampled_from([pg_memory // 2, pg_memory * 2, pg_memory * 5])), draw)
    redis_memory = draw(memory_bytes())
    doc["hardware"] = {"postgres": pg_hw,
                       "redis": {"memory": size_text(redis_memory, draw), "cpus": draw(st.integers(1, 128))}}

    # ---- PgBouncer, then PostgreSQL sized to hold its pools
    databases = draw(st.lists(IDENT, min_size=1, max_size=3, unique=True))
    users = draw(st.lists(IDENT, min_size=1, max_size=2, unique=True))  # one pool per (database, user)
    replicas = draw(st.integers(1, 4))
    pool = draw(st.integers(1, 60))
    reserve = draw(st.integers(0, 10))
    server_conns = replicas * len(databases) * len(users) * (pool + reserve)
    surge_conns = len(databases) * len(users) * (pool + reserve)  # PgBouncer's own rolling update: one more pod
    workload = draw(st.sampled_from(["web", "oltp", "dw", "desktop", "mixed"]))
    reserved = draw(st.integers(0, 10))
    postgres: dict[str, Any] = {"version": draw(st.integers(10, 18)), "workload": workload,
                                "superuser_reserved_connections": reserved}
    if pg_rules.DEFAULT_CONNECTIONS[workload] - reserved < server_conns + surge_conns or draw(st.booleans()):
        postgres["max_connections"] = server_conns + surge_conns + reserved + draw(st.integers(0, 500))

    # ---- timeouts nest: statement <= query < http; SLOs inside them
    # PgBouncer's query_timeout counts the queue wait too: query >= query_wait + statement; the app's pool timeout
    # is above the queue wait; the reserve pool opens within the query SLO.
    statement = draw(st.integers(1, 600)) * 1000 + draw(st.sampled_from([0, 0, 250]))
    query = statement + draw(st.integers(1, 60)) * 1000
    query_wait = draw(st.integers(1, query - statement))
    http = query + draw(st.integers(1, 120)) * 1000
    db_slo = draw(st.integers(1, statement))
    postgres.update({
        "statement_timeout": duration_text(statement, draw),
        "lock_timeout": duration_text(draw(st.integers(0, min(60, (statement - 1) // 1000))) * 1000, draw),  # < statement
        "idle_in_transaction_session_timeout": duration_text(draw(st.integers(1, 3600)) * 1000, draw),
        "log_min_duration_statement": duration_text(draw(st.integers(0, 10_000)), draw),
    })
    overrides = draw(st.dictionaries(st.sampled_from(sorted(OVERRIDES)), st.just(None), max_size=4))
    if overrides:
        postgres["settings"] = {name: draw(OVERRIDES[name]) for name in sorted(overrides)}
    doc["postgres"] = postgres
    min_pool = draw(st.integers(0, pool))
    kubernetes_postgres = draw(st.sampled_from(["external", "cloudnativepg"]))
    pgbouncer: dict[str, Any] = {
        "pool_mode": draw(st.sampled_from(["session", "transaction", "statement"])),
        "default_pool_size": pool, "min_pool_size": min_pool, "reserve_pool_size": reserve,
        "reserve_pool_timeout": duration_text(draw(st.integers(1, min(db_slo, 30_000))), draw),
        "server_idle_timeout": duration_text(draw(st.integers(1, 3600)) * 1000, draw),
        "query_timeout": duration_text(query, draw), "query_wait_timeout": duration_text(query_wait, draw),
        "replicas": replicas, "databases": databases, "users": users,
        "auth_type": draw(st.sampled_from(AUTH_TYPES)),
        "version": draw(st.sampled_from(list(serverversions.PGBOUNCER_VERSIONS))),
    }
    if kubernetes_postgres == "external" or draw(st.booleans()):
        pgbouncer["server_host"] = "db.example.internal"  # an external database is dialled by name

    # ---- the app's connections (with its rolling-update surge) fit PgBouncer's clients
    db_size, overflow = draw(st.integers(1, 50)), draw(st.integers(0, 50))
    api_max = draw(st.integers(1, 50))
    clients = (api_max + math.ceil(api_max / 4)) * (db_size + overflow)
    pgbouncer["max_client_conn"] = math.ceil(clients / replicas) + draw(st.integers(0, 2000))
    if pgbouncer["pool_mode"] == "session" and clients > server_conns:
        pgbouncer["pool_mode"] = "transaction"  # session mode holds a server connection per client
    doc["pgbouncer"] = pgbouncer
    backoff_base = draw(st.integers(10, 2000))
    doc["app"] = {
        # statement pooling refuses multi-statement transactions: an app in it runs none
        "multi_statement_transactions": pgbouncer["pool_mode"] != "statement",
        "db_pool": {"size": db_size, "max_overflow": overflow, "pre_ping": draw(st.booleans()),
                    "recycle": duration_text(draw(st.integers(1, 24)) * 3_600_000, draw),
                    "timeout": duration_text(draw(st.integers(query_wait // 1000 + 1, 61)) * 1000, draw)},
        "http": {"max_connections": draw(st.integers(1, 1000)), "timeout": duration_text(http, draw)},
        "retry": {"attempts": draw(st.integers(1, 10)), "backoff_base": duration_text(backoff_base, draw),
                  "backoff_max": duration_text(backoff_base * draw(st.integers(1, 100)), draw)},
        "query_cache": {"size": draw(st.integers(1, 100_000)), "ttl": duration_text(draw(st.integers(1, 3600)) * 1000, draw)},
        "llm_cache": {"size": draw(st.integers(1, 100_000)), "ttl": duration_text(draw(st.integers(1, 86400)) * 1000, draw)},
    }

    # ---- Redis: a queue never evicts and keeps an AOF; maxmemory leaves headroom
    role = draw(st.sampled_from(["cache", "queue"]))
    if role == "queue":
        policy, persistence = "noeviction", "aof"
    else:
        policy = draw(st.sampled_from(["noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru",
                                       "volatile-lfu", "volatile-random", "volatile-ttl"]))
        persistence = draw(st.sampled_from(["none", "rdb", "aof"]))
    share_max = 0.75 if persistence == "none" else 0.5
    if draw(st.booleans()):
        maxmemory: Any = f"{draw(st.integers(5, int(share_max * 100)))}%"
    else:
        maxmemory = size_text(draw(st.integers(64, int(redis_memory * share_max) // MIB)) * MIB, draw)
    doc["redis"] = {"role": role, "maxmemory": maxmemory, "maxmemory_policy": policy, "persistence": persistence,
                    # 0 (never) or above the app's 30 s health-check interval
                    "timeout": duration_text(draw(st.sampled_from([0, draw(st.integers(31, 3600))])) * 1000, draw),
                    "tcp_keepalive": duration_text(draw(st.integers(0, 600)) * 1000, draw)}

    # ---- autoscaling, SLOs
    api_min = draw(st.integers(1, api_max))
    slo: dict[str, Any] = {"db_query_p95": duration_text(db_slo, draw),
                           "api_latency_p95": duration_text(draw(st.integers(50, 10_000)), draw),
                           "error_rate": draw(st.sampled_from(["0.1%", "1%", "5%", 0.02]))}
    autoscaling: dict[str, Any] = {
        "api": {"min_replicas": api_min, "max_replicas": api_max, "target_cpu": draw(st.integers(10, 95)),
                "scale_down_stabilization": duration_text(draw(st.integers(0, 60)) * 60_000, draw)},
    }
    doc["kubernetes"] = {"postgres": kubernetes_postgres,
                         "dashboards": draw(st.sampled_from(["configmap", "grafana-operator"]))}

    # ---- the LLM server (or none)
    if draw(st.integers(0, 4)) > 0:
        server = draw(st.sampled_from(["vllm", "ollama"]))
        gpu_model, gpu_gib = draw(st.sampled_from(GPUS))
        count = draw(st.sampled_from([1, 1, 2, 4, 8]))
        utilization = draw(st.sampled_from([0.5, 0.7, 0.8, 0.9, 0.95]))
        budget = int(gpu_gib * GIB * count * utilization)
        dtype = draw(st.sampled_from(["bf16", "fp16", "fp8", "int8", "int4"] if server == "vllm"
                                     else ["int4", "int8", "fp16"]))
        fitting = [m for m in MODELS
                   if models.lookup(m[0]).parameters * llm_rules.WEIGHT_BITS[dtype] // 8 <= budget // 2]  # type: ignore[union-attr]
        assume(fitting)
        assume(gpu_gib * GIB * (1 - utilization) >= llm_rules.OUTSIDE_SHARE)  # CUDA graphs outside the share
        name, ollama_name = draw(st.sampled_from(fitting))
        load_time = draw(st.integers(5, 900)) * 1000
        llm_latency = draw(st.integers(100, 60_000))
        llm: dict[str, Any] = {
            "server": server,
            "model": {"name": name if server == "vllm" else ollama_name, "dtype": dtype},
            "kv_cache_dtype": draw(st.sampled_from(VLLM_KV if server == "vllm" else OLLAMA_KV)),
            "gpu_memory_utilization": utilization,
            "max_num_seqs": draw(st.integers(1, 256)),
            "warmup": draw(st.booleans()),
            "load_time": duration_text(load_time, draw),
            "request_timeout": duration_text(llm_latency + draw(st.integers(0, 600)) * 1000, draw),
            "prefix_caching": draw(st.booleans()),
        }
        if draw(st.booleans()):
            llm["startup_timeout"] = duration_text(load_time + draw(st.integers(0, 600)) * 1000, draw)
        doc["hardware"]["gpu"] = {"model": gpu_model, "memory": f"{gpu_gib}GiB", "count": count}
        slo["llm_latency_p95"] = duration_text(llm_latency, draw)
        autoscaling["llm"] = {
            "min_replicas": 1, "max_replicas": draw(st.integers(1, 8)) if server == "vllm" else 1,
            "target": draw(st.integers(1, 500)) / 10,
            # at least a cold start (load_time), within the HPA's one hour
            "scale_down_stabilization": duration_text(draw(st.integers(-(-load_time // 60_000), 60)) * 60_000, draw),
            "scaler": draw(st.sampled_from(["hpa", "keda"])),
        }
        # The longest sequence: what the GPU budget leaves for the KV cache, by llm.py's own arithmetic.
        doc["secrets"] = {"hf_token": {"secret": "hf-token", "key": "HF_TOKEN"}}  # gated models download with it
        draft = Profile.model_validate({**doc, "llm": {**llm, "max_model_len": 256}, "slo": slo,
                                        "autoscaling": autoscaling})
        if server == "vllm":
            tokens = llm_rules.gpu_budget(draft).kv_cache_tokens
        else:
            assume(llm_rules.ollama_budget(draft).layers_on_gpu > 0)
            tokens = 131_072
        assume(tokens >= 256)
        llm["max_model_len"] = draw(st.integers(256, min(tokens, 131_072)))
        if server == "ollama":  # NUM_PARALLEL x CONTEXT is reserved up front: at least one layer on the GPU
            final = Profile.model_validate({**doc, "llm": llm, "slo": slo, "autoscaling": autoscaling})
            assume(llm_rules.ollama_budget(final).layers_on_gpu > 0)
        doc["llm"] = llm
    doc["slo"] = slo
    doc["autoscaling"] = autoscaling
    # Every latency SLO is a bucket bound of its histogram, below the largest (checks.latency_slos_within_buckets).
    slo_ms = Profile.model_validate({**doc, "slo": slo}).slo

    def buckets(value_ms: int) -> list[str]:
        return [f"{b}ms" for b in sorted({100, 1000, value_ms, 2 * value_ms})]
    doc.setdefault("app", {})["latency_buckets"] = {
        "http": buckets(slo_ms.api_latency_p95), "workflow": buckets(slo_ms.workflow_p95),
        "db_query": buckets(slo_ms.db_query_p95)}
    return doc

