"""What each profile key means, with its unit, for the JSON Schema (`perfstack schema`) editors show.

Keys are `Model.field` (a model used in two places, such as SecretRef, is described once). A field whose
pydantic `description` already says what it means keeps it; one that only says its type ("a duration:
150ms, 30s, ...") gets the meaning below in front. `schema_docs.apply` also rewrites every default into
the profile's own syntax (`30s`, not 30000 ms) so that an editor's suggested default is a valid input.
tests/test_schema.py holds both: every property described, every default valid.
"""

from __future__ import annotations

from typing import Any

from . import units

DOCS: dict[str, str] = {
    # workers and vector search
    "Profile.workers": "background worker pools (Celery on Redis) and the Redis their queues live in; leave out "
                       "for a stack without workers",
    "Profile.vector": "the vector index for knowledge retrieval (Chroma or pgvector); leave out for none",
    "QueueRedis.cpus": "CPU cores of the queue Redis's pod (requests and limits)",
    "QueueRedis.maxmemory_policy": "what the queue Redis does at maxmemory; a queue must use noeviction",
    "QueueRedis.persistence": "how the queue Redis keeps jobs across a restart; a queue needs aof",
    "QueueRedis.port": "TCP port of the queue Redis",
    "Vector.cache": "the app's cache of frequent query vectors",
    "Vector.dimensions": "length of each embedding vector (the embedding model's output size)",
    "Vector.ef_construction": "HNSW build breadth: higher builds slower and recalls better",
    "Vector.engine": "chroma (a Chroma server) or pgvector (an HNSW index in PostgreSQL)",
    "Vector.metric": "distance the index ranks by: cosine, l2 (Euclidean) or ip (inner product)",
    "WorkerDbPool.max_overflow": "connections a worker process may open above its pool size (counted against "
                                 "PgBouncer with the app's)",
    "WorkerPool.cpu_per_process": "CPU cores each worker process requests (x concurrency per pod)",
    "WorkerPool.db_pool": "each worker process's database pool",
    "WorkerPool.max_replicas": "the most worker pods KEDA scales to on queue length",
    "WorkerPool.max_retries": "retries of a failed task before it is given up",
    "WorkerPool.min_replicas": "the fewest worker pods (0: KEDA scales to zero on an empty queue)",
    "WorkerPool.retry_jitter": "randomize each retry's backoff so failed tasks do not retry in step",
    # profile
    "Profile.environment": "environment name (lower-case letters, digits, '-'); labels every object and must "
                           "match the file name unless environment_matches_file_name is false",
    "Profile.namespace": "Kubernetes namespace of every object (a profile that extends another sets its own)",
    "Profile.hardware": "the machines each component runs on",
    "Profile.postgres": "PostgreSQL settings pgtune's rules start from",
    "Profile.pgbouncer": "PgBouncer pooling in front of PostgreSQL",
    "Profile.redis": "Redis as a cache or a queue",
    "Profile.llm": "the LLM server (vLLM or Ollama); leave out for a stack without one",
    "Profile.app": "the application's own pools, caches, timeouts and retries (app/performance.env)",
    "Profile.autoscaling": "HorizontalPodAutoscaler / KEDA settings of the API and the LLM server",
    "Profile.slo": "the service-level objectives alerts and checks are derived from",
    "Profile.alerts": "alert tunables no other key sets",
    "Profile.kubernetes": "labels and wiring for kube-prometheus-stack, Grafana and the database",
    "Profile.monitoring": "how Prometheus finds the exporters perfstack deploys (ServiceMonitors, PodMonitors)",
    "Profile.secrets": "Kubernetes Secrets passwords are read from (never a password itself)",
    "Profile.review": "how perfstack diff judges a change",
    "Profile.pricing": "prices for the monthly cost (explain, diff); base.yaml's are examples",
    # hardware
    "Hardware.postgres": "the PostgreSQL host",
    "Hardware.redis": "the Redis pod's memory and CPUs (requests and limits)",
    "Hardware.gpu": "GPUs of each LLM server pod; needed when llm is set",
    "PostgresHardware.storage": "disk kind (pgtune's hdType: hdd, ssd, san or nvme)",
    "PostgresHardware.os": "operating system of the database host (pgtune's osType)",
    "RedisHardware.memory": "memory of the Redis pod; maxmemory is a share of it",
    "RedisHardware.cpus": "CPU cores of the Redis pod",
    "GpuHardware.model": "GPU model name, e.g. H100, L4 (prices in pricing.gpu_hour are looked up by it)",
    "GpuHardware.memory": "memory of one GPU",
    "GpuHardware.count": "GPUs per LLM pod (vLLM's tensor-parallel size)",
    # postgres
    "Postgres.version": "PostgreSQL major version, 10 to 18",
    "Postgres.workload": "pgtune's dbType: web, oltp, dw, desktop or mixed",
    "Postgres.max_connections": "connections; default: pgtune's for the workload",
    "Postgres.superuser_reserved_connections": "connections kept for superusers",
    "Postgres.statement_timeout": "longest statement PostgreSQL runs before cancelling it (0: no limit)",
    "Postgres.lock_timeout": "longest wait for a lock (0: no limit)",
    "Postgres.idle_in_transaction_session_timeout": "idle-in-transaction sessions are closed after this (0: never)",
    "Postgres.log_min_duration_statement": "statements slower than this are logged",
    # pgbouncer
    "PgBouncer.pool_mode": "session, transaction or statement pooling",
    "PgBouncer.max_client_conn": "client connections per PgBouncer replica",
    "PgBouncer.default_pool_size": "server connections per pool (database) and replica",
    "PgBouncer.min_pool_size": "server connections kept open per pool and replica",
    "PgBouncer.reserve_pool_size": "extra server connections per pool after reserve_pool_timeout",
    "PgBouncer.reserve_pool_timeout": "how long a client waits before the reserve pool is used",
    "PgBouncer.server_idle_timeout": "idle server connections are closed after this",
    "PgBouncer.query_timeout": "queries running longer are cancelled by PgBouncer (0: no limit); above "
                               "postgres.statement_timeout",
    "PgBouncer.replicas": "PgBouncer pods",
    "PgBouncer.auth_type": "client authentication (scram-sha-256, md5, plain, trust)",
    "PgBouncer.listen_addr": "address PgBouncer listens on",
    "PgBouncer.listen_port": "TCP port PgBouncer listens on",
    "PgBouncer.server_port": "TCP port of PostgreSQL",
    "PgBouncer.admin_users": "roles allowed on the admin console (refused when exposed in prod)",
    "PgBouncer.stats_users": "roles allowed read-only SHOW commands (the exporter)",
    # redis
    "Redis.role": "cache (may evict) or queue (never evicts, persists with AOF)",
    "Redis.maxmemory": "memory Redis may use for data",
    "Redis.maxmemory_policy": "what Redis does at maxmemory (evict which keys, or refuse writes)",
    "Redis.persistence": "none, rdb snapshots or aof log",
    "Redis.timeout": "idle client connections are closed after this (0: never)",
    "Redis.tcp_keepalive": "TCP keepalive interval towards clients",
    "Redis.port": "TCP port Redis listens on",
    # llm
    "Llm.server": "vllm or ollama",
    "Llm.model": "the model served; an overlay replaces this block whole",
    "Llm.kv_cache_dtype": "KV-cache element type (vLLM: auto, fp8...; Ollama: f16, q8_0, q4_0)",
    "Llm.gpu_memory_utilization": "share of GPU memory vLLM may use",
    "Llm.max_model_len": "tokens of context per sequence",
    "Llm.max_num_seqs": "sequences batched at once (Ollama: OLLAMA_NUM_PARALLEL)",
    "Llm.warmup": "send one real request before the pod reports Ready",
    "Llm.load_time": "a cold start (image pull, download, load, engine start); sizes the startup probe and the "
                     "autoscaler's windows; default: computed from image_size, download_bandwidth and the weights",
    "Llm.request_timeout": "how long the app waits for one model request (0: no limit)",
    "Llm.prefix_caching": "reuse the KV cache of shared prompt prefixes (vLLM)",
    "Llm.max_loaded_models": "models Ollama keeps loaded at once",
    "Llm.max_queue": "requests Ollama queues before refusing",
    "Llm.flash_attention": "use flash attention (Ollama)",
    "Llm.port": "TCP port of the LLM server",
    "Model.name": "model name as the server loads it (a Hugging Face id for vLLM, a tag for Ollama); its shape "
                  "comes from the catalog (generators/data/models.json) unless config is given",
    "Model.dtype": "weight type: fp32, bf16, fp16, fp8, int8 or int4",
    "Llm.model_cache": "where the weights are kept between restarts (a PVC by default)",
    "Llm.resources": "CPU and memory the LLM pod requests",
    "ModelCache.kind": "pvc (rendered), host_path (a node directory) or empty_dir (re-downloads each start)",
    # app
    "App.deployment": "name of the app's own Deployment (its HPA and ConfigMap are named after it)",
    "App.db_pool": "the app's database pool (SQLAlchemy-style)",
    "App.query_cache": "in-process cache of query results",
    "App.llm_cache": "cache of LLM answers",
    "App.http": "the app's HTTP server",
    "App.retry": "retries of failed calls, with exponential backoff",
    "App.rate_limit": "requests per client",
    "App.compression": "response compression",
    "App.pagination": "list endpoints' page sizes",
    "App.llm_client": "the app's client of the LLM server",
    "App.workflow": "the app's multi-step workflow engine",
    "DbPool.size": "connections per app pod",
    "DbPool.max_overflow": "connections per app pod above size, under load",
    "DbPool.pre_ping": "test a connection before use",
    "DbPool.recycle": "connections older than this are replaced",
    "DbPool.timeout": "how long a request waits for a pool connection",
    "Cache.size": "entries",
    "Cache.ttl": "how long an entry lives",
    "Http.max_connections": "concurrent connections per app pod",
    "Http.timeout": "how long the app serves one request; above pgbouncer.query_timeout",
    "Retry.attempts": "tries, the first included",
    "Retry.backoff_base": "wait before the first retry (doubles each time)",
    "Retry.backoff_max": "longest wait between retries",
    "RateLimit.requests_per_second": "requests per second per client",
    "RateLimit.burst": "requests a client may send at once above the rate",
    "Compression.enabled": "compress responses",
    "Compression.min_size": "smallest response body compressed",
    "Pagination.default_page_size": "items per page when the client asks for none",
    "Pagination.max_page_size": "most items per page a client may ask for",
    "LlmClient.max_connections": "concurrent connections to the LLM server per app pod",
    "LlmClient.batch_size": "requests sent as one batch",
    "LlmClient.batch_timeout": "longest wait to fill a batch",
    "Workflow.max_iterations": "steps before a workflow stops",
    "Workflow.beam_width": "candidates kept per step",
    "Workflow.early_termination_threshold": "score at which a workflow stops early",
    "Workflow.convergence_threshold": "score change under which a workflow has converged",
    "Workflow.checkpoint_every": "steps between checkpoints",
    # autoscaling
    "Autoscaling.api": "the app's HorizontalPodAutoscaler",
    "Autoscaling.llm": "the LLM server's autoscaler (vLLM only: Ollama exports no metrics)",
    "ApiScaling.min_replicas": "fewest app pods",
    "ApiScaling.max_replicas": "most app pods",
    "ApiScaling.target_cpu": "average CPU use to keep, as a percentage of app.requests.cpu",
    "ApiScaling.target_memory": "average memory use to keep, as a percentage of app.requests.memory; "
                                "leave out to scale on CPU only",
    "ApiScaling.scale_down_stabilization": "how long load must stay low before pods are removed",
    "LlmScaling.min_replicas": "fewest LLM server pods (0: scale to zero, KEDA only)",
    "LlmScaling.max_replicas": "most LLM server pods",
    "LlmScaling.target": "average value of the signal per pod to keep (requests in flight, or a KV-cache usage ratio)",
    "LlmScaling.scale_down_stabilization": "how long load must stay low before LLM pods are removed; "
                                           ">= llm.load_time (a removed pod costs a cold start)",
    # slo
    "Slo.api_latency_p95": "95th-percentile API request latency",
    "Slo.db_query_p95": "95th-percentile database query latency",
    "Slo.llm_latency_p95": "95th-percentile LLM request latency",
    "Slo.workflow_p95": "95th-percentile workflow duration",
    "Slo.error_rate": "share of API requests that may fail (5xx)",
    "Slo.cache_hit_ratio": "least share of cache lookups that hit",
    "Slo.pool_utilization_max": "share of a pool in use above which alerts fire",
    "Slo.memory_max": "memory an app pod may use",
    "Slo.cpu_max": "share of its CPU request an app pod may use",
    "CacheHitRatio.query": "least hit share of the query cache",
    "CacheHitRatio.llm": "least hit share of the LLM cache",
    # kubernetes, secrets, review
    "Kubernetes.dashboards": "configmap (Grafana sidecar) or grafana-operator objects",
    "Kubernetes.grafana_instance_labels": "labels GrafanaDashboard objects select their Grafana by",
    "Kubernetes.postgres": "cloudnativepg (a Cluster in the namespace) or external (a managed database)",
    "Kubernetes.runbook_url": "base URL of the runbooks every alert links to (#alertname)",
    "Secrets.postgres_password": "Secret holding PgBouncer's auth_user password",
    "Secrets.redis_password": "Secret holding the Redis password",
}

_GENERIC = ("a duration", "a size", "a ratio", "a whole percentage", "a count")


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any] | None:
    """The model definition a property refers to, directly or as the non-null member of anyOf."""
    for candidate in [node, *node.get("anyOf", [])]:
        if "$ref" in candidate:
            return defs[candidate["$ref"].split("/")[-1]]  # type: ignore[no-any-return]
    return None


def _kind(node: dict[str, Any]) -> str | None:
    """duration or size, recognised by the string pattern the unit types put in the schema."""
    for member in [node, *node.get("anyOf", [])]:
        pattern = member.get("pattern", "")
        if "(ms|s|min|m|h|d)" in pattern:
            return "duration"
        if "GiB" in pattern:
            return "size"
        if member is not node and "anyOf" in member and (inner := _kind(member)):
            return inner
    return None


def profile_syntax(value: Any, node: dict[str, Any], defs: dict[str, Any]) -> Any:
    """A default as the profile writes it: 30000 ms -> '30s', 536870912 bytes -> '512MiB', recursively."""
    model = _resolve(node, defs)
    if isinstance(value, dict) and model is not None:
        props = model.get("properties", {})
        return {k: profile_syntax(v, props.get(k, {}), defs) for k, v in value.items()}
    if isinstance(value, list) and model is None and isinstance(node.get("items"), dict):
        return [profile_syntax(v, node["items"], defs) for v in value]
    kind = _kind(node)
    if isinstance(value, int) and not isinstance(value, bool):
        if kind == "duration":
            return units.format_duration(value) if value else 0
        if kind == "size":
            for unit, factor in (("TiB", units.TIB), ("GiB", units.GIB), ("MiB", units.MIB), ("KiB", units.KIB)):
                if value and value % factor == 0:
                    return f"{value // factor}{unit}"
    return value


def apply(schema: dict[str, Any]) -> dict[str, Any]:
    """Describe every property (meaning and unit) and write every default in the profile's syntax."""
    defs = schema.get("$defs", {})
    for name, definition in [("Profile", schema), *defs.items()]:
        for field, prop in (definition.get("properties") or {}).items():
            meaning = DOCS.get(f"{name}.{field}")
            current = prop.get("description") or next(
                (a["description"] for a in prop.get("anyOf", []) if "description" in a), "")
            if meaning and (not current or current.startswith(_GENERIC)):
                prop["description"] = f"{meaning}; {current}" if current else meaning
            elif current and "description" not in prop:
                prop["description"] = current
            if "default" in prop:
                prop["default"] = profile_syntax(prop["default"], prop, defs)
    return schema
