"""The performance profile: a typed model of every key in DESIGN.md, validated once, at the boundary.

Sizes are bytes, durations milliseconds, ratios floats in [0, 1] (see `units`). Generators trust
this model and never raise on user input.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from . import pgversions, serverversions, units
from .types import (
    HF_MODEL_ID,
    AbsolutePath,
    CurrencyCode,
    DNS1123Label,
    DNS1123Subdomain,
    Hostname,
    HostPort,
    HttpUrl,
    ImageRef,
    JsonPath,
    LabelKey,
    LabelValue,
    ListenAddr,
    ModelName,
    Namespace,
    OneLine,
    PgIdentifier,
    PgParameterName,
    PortName,
    PromLabelValue,
    PythonRef,
    QueueName,
    SecretKey,
    SecretName,
    ShortText,
    SqlRole,
    SqlTable,
    UrlPath,
    Word,
)


def _unit(parser: Any, schema: dict[str, Any]) -> tuple[BeforeValidator, WithJsonSchema]:
    def validate(value: object) -> object:
        try:
            return parser(value)
        except units.UnitError as exc:
            raise ValueError(str(exc)) from None

    return BeforeValidator(validate), WithJsonSchema(schema)


Size = Annotated[int, *_unit(units.parse_size, {
    "anyOf": [{"type": "string", "pattern": r"^\d+(\.\d+)?\s*(B|kB|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?$"},
              {"type": "integer", "minimum": 0}],
    "description": "a size: 512MB, 8GiB (kB/MB/GB are 1024-based, as in PostgreSQL); a bare integer is bytes"})]
Duration = Annotated[int, *_unit(units.parse_duration, {
    "anyOf": [{"type": "string", "pattern": r"^(0|\d+(\.\d+)?\s*(ms|s|min|m|h|d))$"}, {"const": 0}],
    "description": "a duration: 150ms, 30s, 5m, 1h, 1d"})]
Ratio = Annotated[float, *_unit(units.parse_ratio, {
    "anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "string", "pattern": r"^\d+(\.\d+)?%$"}],
    "description": "a ratio: 0.7 or 70%"})]
Percent = Annotated[int, *_unit(units.parse_percent, {
    "anyOf": [{"type": "integer", "minimum": 1, "maximum": 100}, {"type": "string", "pattern": r"^\d+%$"}],
    "description": "a whole percentage: 70 or 70%"})]
Count = Annotated[int, *_unit(units.parse_count, {
    "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": r"^\d+(\.\d+)?[KMBT]?$"}],
    "description": "a count such as 8B (8 billion) or 70B"})]


def _size_or_share(value: object) -> int | float:
    # A share is written with % or as a fraction (a float); anything else is a size.
    if isinstance(value, float) or isinstance(value, str) and value.strip().endswith("%"):
        return units.parse_ratio(value)
    return units.parse_size(value)


SizeOrShare = Annotated[int | float, *_unit(_size_or_share, {
    "anyOf": [{"anyOf": [{"type": "string", "pattern": r"^\d+(\.\d+)?\s*(B|kB|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?$"},
                         {"type": "integer", "minimum": 0}],
               "description": "a size: 512MB, 8GiB (kB/MB/GB are 1024-based, as in PostgreSQL); a bare integer is bytes"},
              {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "string", "pattern": r"^\d+(\.\d+)?%$"}],
               "description": "a ratio: 0.7 or 70%"}]})]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


def _rate(value: object) -> int:
    # A rate is a size per second: 50MB/s (the "/s" may be left out).
    text = value.strip().removesuffix("/s") if isinstance(value, str) else value
    return units.parse_size(text)


WriteRate = Annotated[int, *_unit(_rate, {
    "anyOf": [{"type": "string", "pattern": r"^\d+(\.\d+)?\s*(B|kB|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?(/s)?$"},
              {"type": "integer", "minimum": 0}],
    "description": "a rate in bytes per second: 50MB/s (1024-based); a bare integer is bytes per second"})]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


# ---------------------------------------------------------------- hardware
class PostgresHardware(Strict):
    memory: Size = Field(description="RAM of the PostgreSQL host (pgtune's totalMemory)")
    cpus: PositiveInt | None = Field(None, le=1024, description="CPU count (pgtune's cpuNum); parallel settings need >= 4")
    storage: Literal["hdd", "ssd", "san", "nvme"] = "ssd"
    os: Literal["linux", "windows", "mac"] = "linux"
    data_size: Size | None = Field(None, description="size of the data; compared with memory it picks pgtune's dbSize")
    wal_disk: Size | None = Field(None, description="size of the volume that holds pg_wal; max_wal_size stays "
                                  "within postgres.WAL_DISK_SHARE of it (under CloudNativePG: its walStorage)")
    write_rate: WriteRate | None = Field(None, description="WAL written per second at peak, e.g. 50MB/s; sizes "
                                         "max_wal_size, checkpoint_timeout and the autovacuum cost limit")


class RedisHardware(Strict):
    memory: Size
    cpus: PositiveInt = 1


class GpuHardware(Strict):
    model: Word = Field("H100", description="GPU model (H100, A100, L4): picks vLLM's memory tables")
    memory: Size
    count: PositiveInt = 1
    visible_memory: Size | None = Field(
        None, description="memory PyTorch sees on each GPU (torch.cuda.mem_get_info's total); default: the table "
        "in llm.TORCH_VISIBLE_GIB by model and memory")
    node_label: LabelKey = Field("nvidia.com/gpu.product",
                            description="node label that names the GPU model (NVIDIA GPU feature discovery's)")
    product: LabelValue | None = Field(None, description="that label's value on the nodes with this "
                                "GPU; default: GPU feature discovery's name for model and memory (llm.GFD_PRODUCT)")


class Hardware(Strict):
    postgres: PostgresHardware
    redis: RedisHardware
    gpu: GpuHardware | None = None


# ---------------------------------------------------------------- postgres
SettingValue = OneLine | int | float | bool


class Postgres(Strict):
    version: int = Field(16, ge=pgversions.OLDEST, le=pgversions.NEWEST)
    workload: Literal["web", "oltp", "dw", "desktop", "mixed"] = "web"
    max_connections: PositiveInt | None = Field(None, le=262143)
    superuser_reserved_connections: NonNegativeInt = Field(3, le=100)
    statement_timeout: Duration = "30s"
    lock_timeout: Duration = "10s"
    idle_in_transaction_session_timeout: Duration = "1m"
    log_min_duration_statement: Duration = "200ms"
    app_roles: list[SqlRole] = Field(
        default_factory=lambda: ["app"], min_length=1,
        description="roles the application logs in as: statement_timeout, lock_timeout and "
                    "idle_in_transaction_session_timeout are set on them (postgres/roles.sql, ALTER ROLE ... SET), "
                    "not server-wide")
    logical_replication: bool = Field(False, description="this server publishes or subscribes with logical "
                                      "replication: wal_level logical and worker slots for its workers")
    managed: Literal["self-managed", "rds", "cloudsql", "azure"] = Field(
        "self-managed", description="who runs an external database (kubernetes.postgres external): self-managed "
        "(alter_system.sql), rds (a parameter group's parameters), cloudsql (database flags) or azure (server "
        "parameters)")
    settings: dict[PgParameterName, SettingValue] = Field(default_factory=dict,
                                              description="postgresql.conf overrides; they win over rules")


# ---------------------------------------------------------------- pgbouncer
PgBouncerVersion = Literal[serverversions.PGBOUNCER_VERSIONS]  # type: ignore[valid-type]
RedisVersion = Literal[serverversions.REDIS_VERSIONS]  # type: ignore[valid-type]
TlsMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class PgBouncer(Strict):
    version: PgBouncerVersion = Field(serverversions.PGBOUNCER_DEFAULT, description=(
        "PgBouncer minor version; selects the image (its patched release) and the settings it knows "
        "(generators/serverversions.py)"))
    pool_mode: Literal["session", "transaction", "statement"] = "transaction"
    max_client_conn: PositiveInt = 2000
    default_pool_size: PositiveInt = 20
    min_pool_size: NonNegativeInt = 5
    reserve_pool_size: NonNegativeInt = 5
    reserve_pool_timeout: Duration = "100ms"
    server_idle_timeout: Duration = "1m"
    query_timeout: Duration = "35s"
    query_wait_timeout: Duration = Field("5s", description=(
        "how long a client waits for a server connection before PgBouncer fails it; below app.db_pool.timeout, "
        "and with postgres.statement_timeout within pgbouncer.query_timeout"))
    idle_transaction_timeout: Duration | None = Field(None, description=(
        "a client idle in a transaction is disconnected after this; default: postgres."
        "idle_in_transaction_session_timeout"))
    server_lifetime: Duration = Field("1h", description="a server connection is closed after this long (when idle)")
    max_prepared_statements: NonNegativeInt = Field(200, le=100_000, description=(
        "prepared statements PgBouncer tracks per server connection in transaction mode (1.21+); 0: none, and the "
        "app is told to prepare none (DB_PREPARE_THRESHOLD empty)"))
    users: list[PgIdentifier] = Field(default_factory=lambda: ["app"], min_length=1, description=(
        "roles that connect through PgBouncer: PgBouncer keeps one pool per (database, user), each counted in "
        "the connection budget"))
    settings: dict[Word, SettingValue] = Field(default_factory=dict, description=(
        "pgbouncer.ini [pgbouncer] overrides, checked against pgbouncer.version's settings; they win over rules"))
    replicas: PositiveInt = 2
    auth_type: Literal["scram-sha-256", "md5", "cert", "hba", "plain", "trust"] = "scram-sha-256"
    listen_addr: ListenAddr = Field("0.0.0.0", description="addresses PgBouncer listens on (* or IPv4/host names)")
    listen_port: int = Field(6432, ge=1, le=65535)
    databases: list[PgIdentifier] = Field(
        default_factory=lambda: ["app"], min_length=1, description="databases pooled, one pool each")
    server_host: Hostname | None = Field(None, description=(
        "host PgBouncer connects to; default: the CloudNativePG Service `postgres` (required for "
        "kubernetes.postgres: external)"))
    server_port: int = Field(5432, ge=1, le=65535)
    server_tls_sslmode: TlsMode | None = Field(None, description=(
        "TLS to PostgreSQL (server_tls_sslmode); verify-full needs secrets.postgres_ca; production with an external "
        "database requires verify-full"))
    admin_users: list[PgIdentifier] = Field(default_factory=lambda: ["pgbouncer_admin"])
    stats_users: list[PgIdentifier] = Field(default_factory=lambda: ["pgbouncer_stats"])
    auth_user: PgIdentifier = Field("pgbouncer_auth", description="role whose auth_query looks up passwords")
    client_tls: bool = Field(False, description="require TLS from clients (client_tls_sslmode)")

    @field_validator("auth_type")
    @classmethod
    def _auth_type_rendered(cls, value: str) -> str:
        # PgBouncer refuses to start (cert) or to log anyone in (hba) without files perfstack does not render.
        if value == "cert":
            raise ValueError("auth_type cert needs client TLS with client_tls_sslmode verify-full and its key, "
                             "certificate and CA files, which perfstack does not render; use scram-sha-256")
        if value == "hba":
            raise ValueError("auth_type hba needs an auth_hba_file, which perfstack does not render; use scram-sha-256")
        return value

    @field_validator("min_pool_size")
    @classmethod
    def _pools_ordered(cls, value: int, info: ValidationInfo) -> int:
        # A field validator (not a model one) so the error sits on pgbouncer.min_pool_size, with its line.
        default = info.data.get("default_pool_size")
        if default is not None and value > default:
            raise ValueError(f"min_pool_size {value} exceeds default_pool_size {default}")
        return value


# ---------------------------------------------------------------- redis
EvictionPolicy = Literal["noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru",
                         "volatile-lfu", "volatile-random", "volatile-ttl"]


class Redis(Strict):
    version: RedisVersion = Field(serverversions.REDIS_DEFAULT, description=(
        "Redis minor version; selects the image (its patched release) and the settings it knows "
        "(generators/serverversions.py)"))
    role: Literal["cache", "queue"] = "cache"
    maxmemory: SizeOrShare = Field(0.75, description="a size (6GiB) or a share of hardware.redis.memory (75%); "
                                   "0 (no limit) is refused")
    maxmemory_policy: EvictionPolicy | None = Field(None, description=(
        "default: allkeys-lfu for a cache that holds LLM answers (llm is set), allkeys-lru for other caches, "
        "noeviction for a queue"))
    persistence: Literal["none", "rdb", "aof"] = "none"
    appendfsync: Literal["always", "everysec", "no"] | None = Field(None, description=(
        "AOF fsync policy; default: always for a queue (no acknowledged job is lost), everysec otherwise"))
    acl_user: Word = Field("app", description=(
        "Redis ACL user the app connects as, with dangerous commands (FLUSHALL, FLUSHDB, CONFIG, DEBUG, KEYS, ...) "
        "denied; its password is secrets.redis_app_password"))
    settings: dict[Word, SettingValue] = Field(default_factory=dict, description=(
        "redis.conf overrides, checked against redis.version's settings; they win over rules"))
    timeout: Duration = "5m"
    tcp_keepalive: Duration = "1m"
    port: int = Field(6379, ge=1, le=65535)


# ---------------------------------------------------------------- llm
class Model(Strict):
    name: ModelName = Field(description="Hugging Face model id org/name (vLLM), or an Ollama name[:tag]")
    dtype: Literal["fp32", "bf16", "fp16", "fp8", "int8", "int4"] = "bf16"
    config: JsonPath | None = Field(None, description="the model's Hugging Face "
                               "config.json (relative to the profile that names it); default: the catalog entry "
                               "for name (generators/data/models.json)")
    gated: bool | None = Field(None, description="the model needs a Hugging Face token; default: the catalog's")


class SecretRef(Strict):
    secret: SecretName = Field(description="Kubernetes Secret name")
    key: SecretKey = Field("password", description="key inside the Secret")


class ModelCache(Strict):
    kind: Literal["pvc", "host_path", "empty_dir"] = "pvc"
    claim: DNS1123Label = Field("llm-model-cache",
                       description="PersistentVolumeClaim perfstack renders (kind pvc)")
    storage_class: DNS1123Subdomain | None = Field(None, description="its storage class (ReadWriteMany when "
                                      "autoscaling.llm.max_replicas > 1)")
    size: Size | None = Field(None, description="its size; default: twice the weights, rounded up to GiB")
    path: AbsolutePath = Field("/var/lib/perfstack/models",
                      description="node directory (kind host_path)")


class LlmResources(Strict):
    cpu: float | None = Field(None, gt=0, le=1024, description="CPU cores requested; default: 2 + 4 per GPU")
    memory: Size | None = Field(None, description="memory requested and limited; default: 16GiB + 8GiB per GPU")


class Llm(Strict):
    server: Literal["vllm", "ollama"] = "vllm"
    model: Model
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2", "f16", "q8_0", "q4_0"] = "auto"
    gpu_memory_utilization: Ratio = Field(0.80, lt=1, description="share of each GPU vLLM may use (below 1: "
                                          "vLLM refuses 1)")
    max_model_len: PositiveInt = 8192
    max_num_seqs: PositiveInt = 32
    warmup: bool = True
    load_time: Duration | None = Field(None, description="a cold start: image pull, weight download, load and "
                                       "compile; default: rule in llm (from image_size, download_bandwidth)")
    image_size: Size = Field("10GiB", description="the server image's compressed size (vllm-openai is about 10GiB)")
    download_bandwidth: Size = Field("100MiB", description="bytes per second a node pulls images and weights at")
    model_cache: ModelCache = ModelCache()
    resources: LlmResources = LlmResources()
    request_timeout: Duration = "3m"
    startup_timeout: Duration | None = Field(
        None, description="how long the startup probe waits for load and warm-up; default: rule in llm (2 x load_time)")
    prefix_caching: bool = True
    max_loaded_models: PositiveInt = 1
    max_queue: PositiveInt = 512
    flash_attention: bool = True
    image: ImageRef | None = Field(None, description="container image; default per server")
    port: int = Field(8000, ge=1, le=65535)

    @field_validator("model")
    @classmethod
    def _model_id_for_server(cls, value: Model, info: ValidationInfo) -> Model:
        # vLLM downloads from the Hugging Face Hub: only org/name is a model id there.
        if info.data.get("server", "vllm") == "vllm" and not HF_MODEL_ID.fullmatch(value.name):
            raise ValueError(f"llm.model.name {value.name!r} is not a Hugging Face model id (org/name, letters, "
                             "digits, '-', '_', '.'): vLLM downloads it from the Hub")
        return value


# ---------------------------------------------------------------- app
class DbPool(Strict):
    size: PositiveInt = 20
    max_overflow: NonNegativeInt = 40
    pre_ping: bool = True
    recycle: Duration = "1h"
    timeout: Duration = "30s"


class Cache(Strict):
    size: PositiveInt
    ttl: Duration


class Http(Strict):
    max_connections: PositiveInt = 100
    timeout: Duration = "1m"


class Retry(Strict):
    attempts: PositiveInt = 3
    backoff_base: Duration = "100ms"
    backoff_max: Duration = "5s"


class RateLimit(Strict):
    requests_per_second: PositiveInt = 50
    burst: PositiveInt = 100


class Compression(Strict):
    enabled: bool = True
    min_size: Size = "1KiB"


class Pagination(Strict):
    default_page_size: PositiveInt = 50
    max_page_size: PositiveInt = 500


class LlmClient(Strict):
    max_connections: PositiveInt = 10
    batch_size: PositiveInt = 10
    batch_timeout: Duration = "100ms"


class Workflow(Strict):
    max_iterations: PositiveInt = 15
    beam_width: PositiveInt = 3
    early_termination_threshold: Ratio = 0.9
    convergence_threshold: Ratio = 0.05
    checkpoint_every: PositiveInt = 3


# prometheus-fastapi-instrumentator's default buckets of http_request_duration_seconds (its "lowr" buckets:
# handler/method/status labels), and prometheus_client's defaults for every other Histogram.
INSTRUMENTATOR_BUCKETS = ["100ms", "500ms", "1s"]
PROMETHEUS_CLIENT_BUCKETS = ["5ms", "10ms", "25ms", "50ms", "75ms", "100ms", "250ms", "500ms", "750ms", "1s", "2500ms",
                             "5s", "7500ms", "10s"]


def _increasing(value: list[int]) -> list[int]:
    if any(b <= a for a, b in zip(value, value[1:], strict=False)):
        raise ValueError("histogram buckets must be strictly increasing")
    if any(v <= 0 for v in value):
        raise ValueError("histogram buckets must be above 0")
    return value


Buckets = Annotated[list[Duration], Field(min_length=1, max_length=64), AfterValidator(_increasing)]


class LatencyBuckets(Strict):
    """The finite upper bounds (`le`) of the app's latency histograms, as the app exports them: a p95 SLO
    can only be alerted on at one of these bounds, below the largest (histogram_quantile never reports
    more than the largest finite bound). The app reads them from app/performance.env."""

    http: Buckets = Field(default_factory=lambda: list(INSTRUMENTATOR_BUCKETS),  # type: ignore[arg-type]
                          description="buckets of http_request_duration_seconds (slo.api_latency_p95); default: "
                          "prometheus-fastapi-instrumentator's 100ms, 500ms, 1s")
    workflow: Buckets = Field(default_factory=lambda: list(PROMETHEUS_CLIENT_BUCKETS),  # type: ignore[arg-type]
                              description="buckets of app_workflow_duration_seconds (slo.workflow_p95); default: "
                              "prometheus_client's 5ms ... 10s")
    db_query: Buckets = Field(default_factory=lambda: list(PROMETHEUS_CLIENT_BUCKETS),  # type: ignore[arg-type]
                              description="buckets of app_db_query_duration_seconds (slo.db_query_p95); default: "
                              "prometheus_client's 5ms ... 10s")
    llm: Buckets = Field(default_factory=lambda: list(PROMETHEUS_CLIENT_BUCKETS),  # type: ignore[arg-type]
                         description="buckets of app_llm_request_duration_seconds (slo.llm_latency_p95 as the app "
                         "sees it); default: prometheus_client's 5ms ... 10s")


class Requests(Strict):
    cpu: float = Field(0.5, gt=0, le=1024, description="CPU cores each pod of the app requests (0.5 = 500m); "
                       "autoscaling.api.target_cpu is a share of it")
    memory: Size = Field("512MiB", description="memory each pod of the app requests (bytes, or 512MiB); "
                         "autoscaling.api.target_memory is a share of it")


class AppMetrics(Strict):
    port: PortName = Field("http", description="the name of the app container's port that serves its metrics "
                           "(prometheus-fastapi-instrumentator serves /metrics on the app's own port)")
    path: UrlPath = Field("/metrics", description="the HTTP path of the app's metrics")
    pod_labels: dict[LabelKey, LabelValue] | None = Field(None, min_length=1, description=(
        "labels the app's pods carry that the rendered PodMonitor selects them by; default: "
        "app.kubernetes.io/name=<app.deployment>"))


class RedisClient(Strict):
    max_connections: PositiveInt = Field(20, le=10_000, description="the app's Redis connection pool per pod")
    socket_timeout: Duration = Field("2s", description="a Redis command that takes longer fails (socket_timeout)")
    connect_timeout: Duration = Field("1s", description="connecting to Redis (socket_connect_timeout)")
    health_check_interval: Duration = Field("30s", description=(
        "an idle pooled connection is pinged before use after this; below redis.timeout, or Redis has closed it"))


class App(Strict):
    deployment: DNS1123Label = Field("api", description="the app's Deployment (and its Prometheus job); it must not "
                                     "be a name perfstack renders (llm, pgbouncer, redis, postgres, worker-*)")
    max_surge: NonNegativeInt | None = Field(None, le=1000, description=(
        "extra pods the app's rolling update starts (its Deployment's maxSurge); default: Kubernetes' 25% of "
        "autoscaling.api.max_replicas, rounded up; counted in the connection budget"))
    multi_statement_transactions: bool = Field(True, description=(
        "the app runs transactions of more than one statement (refuses pgbouncer.pool_mode statement)"))
    redis_client: RedisClient = Field(RedisClient(), description="the app's Redis client settings")
    requests: Requests = Field(Requests(), description="resource requests the app's own Deployment must carry: "
                               "the HPA's CPU and memory targets are relative to them, and cost prices them")
    db_pool: DbPool = DbPool()
    query_cache: Cache = Cache(size=2000, ttl="5m")
    llm_cache: Cache = Cache(size=3000, ttl="30m")
    http: Http = Http()
    retry: Retry = Retry()
    rate_limit: RateLimit = RateLimit()
    compression: Compression = Compression()
    pagination: Pagination = Pagination()
    llm_client: LlmClient = LlmClient()
    workflow: Workflow = Workflow()
    metrics: AppMetrics = Field(AppMetrics(), description="where Prometheus finds the app's own metrics (a "
                                "PodMonitor scrapes them as job <app.deployment>)")
    latency_buckets: LatencyBuckets = Field(LatencyBuckets(), description="histogram buckets of the app's latency "
                                            "metrics; every latency SLO must be one of them, below the largest")


# ---------------------------------------------------------------- autoscaling
def _replicas_ordered(cls: type, value: int, info: ValidationInfo) -> int:
    minimum = info.data.get("min_replicas")
    if minimum is not None and minimum > value:
        raise ValueError(f"min_replicas {minimum} exceeds max_replicas {value}")
    return value


class ApiScaling(Strict):
    min_replicas: PositiveInt = 2
    max_replicas: PositiveInt = 20
    target_cpu: Percent = 70
    target_memory: Percent | None = None
    scale_down_stabilization: Duration = "5m"

    _bounds: Any = field_validator("max_replicas")(classmethod(_replicas_ordered))


class LlmScaling(Strict):
    min_replicas: NonNegativeInt = Field(1, description="0 scales to zero when idle (scaler keda only: it wakes on "
                                         "the app's LLM calls)")
    max_replicas: PositiveInt = 4
    signal: Literal["requests", "kv_cache"] = Field(
        "requests", description="requests: running + waiting requests per pod; kv_cache: KV-cache usage ratio")
    target: float | None = Field(None, gt=0, description="per-pod target of the signal; default: 0.7 x max_num_seqs "
                                 "requests, or 0.8 KV-cache usage")

    scale_down_stabilization: Duration = "10m"
    scaler: Literal["hpa", "keda"] = Field("hpa", description="HPA through prometheus-adapter, or a KEDA ScaledObject")
    prometheus_url: HttpUrl = Field("http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
                                description="Prometheus that the KEDA trigger queries (scaler: keda)")

    _bounds: Any = field_validator("max_replicas")(classmethod(_replicas_ordered))


class Autoscaling(Strict):
    api: ApiScaling = ApiScaling()
    llm: LlmScaling = LlmScaling()


# ---------------------------------------------------------------- slo
class CacheHitRatio(Strict):
    query: Ratio = 0.70
    llm: Ratio = 0.60


class Slo(Strict):
    api_latency_p95: Duration = "2s"
    db_query_p95: Duration = "200ms"
    llm_latency_p95: Duration = "5s"
    workflow_p95: Duration = "2m"
    error_rate: Ratio = 0.01
    cache_hit_ratio: CacheHitRatio = CacheHitRatio()
    pool_utilization_max: Ratio = 0.80
    memory_max: Size = "4GiB"
    cpu_max: Ratio = 0.80
    llm_time_to_first_token_p95: Duration = Field("1s", description="p95 time to the first streamed token (vLLM)")
    window: Duration = Field("30d", description="the SLO period the error budgets cover (error_rate of requests may "
                             "fail, 5% may be slower than api_latency_p95); burn-rate alerts scale with it")

    @field_validator("window")
    @classmethod
    def _window_bounds(cls, value: int) -> int:
        # The slowest burn-rate alert looks back 3 days: the period must hold it.
        if not 3 * 86_400_000 <= value <= 365 * 86_400_000:
            raise ValueError("slo.window must lie between 3d and 365d")
        return value


# ---------------------------------------------------------------- alerts (tunables no other key sets)
class Alerts(Strict):
    for_scale: float = Field(1.0, gt=0, le=1, description="multiplies every alert's `for` window "
                             "(a test profile shortens them; 1 in real environments)")
    evaluation_interval: Duration | None = Field(
        None, description="rule groups' evaluation interval; default: Prometheus's global one (0 means the same)")
    postgres_cache_hit_ratio_min: Ratio = Field(0.95, description="below this share of blocks read from "
                                                "shared_buffers the working set no longer fits")
    db_error_ratio_max: Ratio = Field(0.01, description="above this share of the app's database round trips "
                                      "failing (app_db_query_errors_total) the database or the queries are broken; "
                                      "replaces a rollback ratio, which counts every connection the pool returns")
    blackbox_exporter: HostPort = Field("prometheus-blackbox-exporter.monitoring.svc:9115",
                                   description="blackbox exporter that probes servers without /metrics (Ollama)")

    @field_validator("evaluation_interval")
    @classmethod
    def _evaluation_interval_bounds(cls, value: int | None) -> int | None:
        # Faster than 1 s is no real Prometheus setup; slower than 2 m leaves the alerts' 5 m rate()
        # windows with fewer than two samples.
        if value and not 1000 <= value <= 120_000:
            raise ValueError("evaluation_interval must lie between 1s and 2m (or be 0: Prometheus's global one)")
        return value


# ---------------------------------------------------------------- workers (background jobs on a Redis queue)
# A queue name is a Redis list name and part of a PromQL regex (queue_name=~"a|b"): letters, digits, _ and -.
KubeName = Annotated[DNS1123Label, Field(max_length=40)]


class QueueRedis(Redis):
    """A second Redis, only for the job queue: never evicts, writes every job to the AOF."""

    role: Literal["queue"] = Field("queue", description="always queue: the queue checks apply to it")
    maxmemory_policy: EvictionPolicy | None = "noeviction"
    persistence: Literal["none", "rdb", "aof"] = "aof"
    port: int = Field(6380, ge=1, le=65535)
    memory: Size = Field(description="memory of the queue Redis's pod (requests = limits)")
    cpus: PositiveInt = 1
    name: KubeName = Field("redis-queue", description="its StatefulSet and Service")


class WorkerDbPool(Strict):
    size: NonNegativeInt = Field(2, description="connections per worker process (0: tasks use no database)")
    max_overflow: NonNegativeInt = 0


class WorkerPool(Strict):
    framework: Literal["celery"] = Field("celery", description="Celery with the Redis broker (kombu's redis transport)")
    image: ImageRef = Field(description="container image with the tasks' code")
    app: PythonRef = Field(
        "app.worker", description="the Celery app `celery -A` loads")
    queues: list[QueueName] = Field(default_factory=lambda: ["celery"], min_length=1,
                                    description="Redis lists the pool consumes (BRPOP), first is the default")
    concurrency: PositiveInt = Field(4, le=1000, description="worker processes per replica")
    prefetch_multiplier: PositiveInt = Field(1, le=1000, description="jobs reserved per process; 1 for long tasks")
    acks_late: bool = Field(True, description="acknowledge after the task ran (a lost worker's job is redelivered)")
    visibility_timeout: Duration = Field("1h", description="an unacknowledged job is redelivered after this")
    time_limit: Duration = Field("5m", description="hard limit: the longest task; the process is killed past it")
    soft_time_limit: Duration | None = Field(None, description="SoftTimeLimitExceeded is raised; default 90% of time_limit")
    max_retries: NonNegativeInt = Field(3, le=100)
    retry_backoff: Duration = Field("1s", description="first retry delay; doubles each retry")
    retry_backoff_max: Duration = "10m"
    retry_jitter: bool = True
    max_tasks_per_child: PositiveInt | None = Field(1000, description="recycle a process after this many tasks")
    max_queue_wait: Duration = Field("5m", description="how long a job may wait in the queue (alert threshold)")
    min_replicas: NonNegativeInt = 1
    max_replicas: PositiveInt = 10
    target_queue_length: PositiveInt = Field(20, description="jobs waiting per replica KEDA scales to")
    db_pool: WorkerDbPool = WorkerDbPool()
    calls_llm: bool = Field(False, description="its tasks call the LLM server (sized against llm.max_num_seqs)")
    cpu_per_process: float = Field(0.5, gt=0, le=64)
    memory_per_process: Size = "256MiB"

    _bounds: Any = field_validator("max_replicas")(classmethod(_replicas_ordered))


class Workers(Strict):
    redis: QueueRedis | None = Field(
        None, description="a separate Redis for the queue; not given: the profile's redis (which must be role: queue)")
    exporter_job: PromLabelValue = Field("celery-exporter", description="job label of danihodovic/celery-exporter")
    pools: dict[KubeName, WorkerPool] = Field(min_length=1, description="named worker pools")


# ---------------------------------------------------------------- vector search
# A PostgreSQL identifier that needs no quoting and a valid Chroma collection name (3+ characters).
Identifier = SqlTable


class VectorCache(Strict):
    size: NonNegativeInt = Field(1000, description="frequent query vectors kept in the app's cache (0: none)")
    ttl: Duration = "10m"


class Vector(Strict):
    engine: Literal["chroma", "pgvector"] = "chroma"
    collection: Identifier = Field("documents", description="Chroma collection or PostgreSQL table")
    dimensions: PositiveInt = Field(384, le=16000)
    metric: Literal["cosine", "l2", "ip"] = "cosine"
    expected_vectors: Count = Field(100_000, description="vectors the index will hold")
    k: PositiveInt = Field(10, le=1000, description="results per query (recall is measured at k)")
    recall_target: Ratio = Field(0.95, description="recall@k against exact search the index must reach")
    latency_p95: Duration = Field("50ms", description="p95 latency of one query (the SLO)")
    m: PositiveInt = Field(16, ge=2, le=100, description="HNSW neighbours per node (pgvector m, Chroma max_neighbors)")
    ef_construction: PositiveInt = Field(100, ge=4, le=1000)
    ef_search: PositiveInt | None = Field(None, le=1000, description="search breadth; set by `perfstack bench vector`")
    batch_size: PositiveInt = Field(100, le=100_000, description="vectors per insert (Chroma hnsw batch_size)")
    sync_threshold: PositiveInt = Field(1000, description="Chroma: vectors between index syncs to disk")
    page_size: PositiveInt = Field(20, le=1000, description="results per page the API returns")
    cache: VectorCache = VectorCache()
    roles: list[PgIdentifier] = Field(default_factory=lambda: ["app"], description="pgvector: roles hnsw.ef_search is set for")


# ---------------------------------------------------------------- kubernetes and observability wiring
class Kubernetes(Strict):
    prometheus_rule_labels: dict[LabelKey, LabelValue] = Field(
        default_factory=lambda: {"release": "kube-prometheus-stack"},
        description="labels kube-prometheus-stack selects PrometheusRule objects by")
    dashboard_labels: dict[LabelKey, LabelValue] = Field(
        default_factory=lambda: {"grafana_dashboard": "1"},
        description="labels the Grafana sidecar selects dashboard ConfigMaps by")
    dashboards: Literal["configmap", "grafana-operator"] = "configmap"
    grafana_instance_labels: dict[LabelKey, LabelValue] = Field(
        default_factory=lambda: {"dashboards": "grafana"}, description="labels the GrafanaDashboard's instanceSelector matches")
    postgres: Literal["cloudnativepg", "external"] = "external"
    runbook_url: HttpUrl = Field("https://runbooks.example.com/perfstack",
                                 description="base URL of the alerts' runbook_url annotations")
    manage_namespace: bool = Field(
        False, description="the Pulumi stack owns the Namespace: creates it, adopts it when it exists, never deletes "
                           "it; off: the namespace must exist and is left alone")


class Monitoring(Strict):
    release: Annotated[DNS1123Label, Field(max_length=53)] = Field(
        "kube-prometheus-stack", description="the kube-prometheus-stack Helm release whose Prometheus selects the "
        "ServiceMonitors and PodMonitors (their label `release`)")


# ---------------------------------------------------------------- review and cost
class Review(Strict):
    min_headroom: Ratio = Field(0.10, description="perfstack diff flags a margin (used / limit of a capacity or "
                                "timeout check) whose headroom shrinks below this share of its limit, e.g. 10%")


NonNegativePrice = Annotated[float, Field(ge=0, le=1_000_000)]


class ManagedSize(Strict):
    name: Word = Field(description="the provider's instance class, e.g. db.m6g.xlarge")
    cpus: PositiveInt = Field(description="vCPUs of the instance class")
    memory: Size = Field(description="memory of the instance class, e.g. 16GiB")
    hour: NonNegativePrice = Field(description="price per hour, in pricing.currency")


class Pricing(Strict):
    currency: CurrencyCode = Field("USD", description="ISO 4217 code every price is in")
    source: ShortText = Field("", description="where the prices come from (shown with every cost)")
    gpu_hour: dict[Word, NonNegativePrice] = Field(
        default_factory=dict, description="price per GPU-hour by hardware.gpu.model, e.g. {H100: 12.29}")
    cpu_hour: NonNegativePrice = Field(0, description="price per requested CPU core-hour")
    memory_gib_hour: NonNegativePrice = Field(0, description="price per requested GiB-hour of memory")
    storage_gib_month: NonNegativePrice = Field(0, description="price per GiB-month of persistent volume")
    managed_postgres: list[ManagedSize] = Field(
        default_factory=list, description="managed database sizes; an external PostgreSQL is priced as the cheapest "
        "one with hardware.postgres's memory and CPUs")


# ---------------------------------------------------------------- secrets
class Secrets(Strict):
    postgres_password: SecretRef = SecretRef(secret="postgres-credentials")
    redis_password: SecretRef = SecretRef(secret="redis-credentials")
    redis_app_password: SecretRef = Field(SecretRef(secret="redis-credentials", key="app-password"), description=(
        "Secret holding the password of the app's Redis ACL user (redis.acl_user)"))
    postgres_ca: SecretRef | None = Field(None, description=(
        "Secret holding the CA certificate PgBouncer verifies PostgreSQL's certificate with "
        "(pgbouncer.server_tls_sslmode verify-ca/verify-full), e.g. {secret: postgres-ca, key: ca.crt}"))
    hf_token: SecretRef | None = Field(None, description="Secret holding the Hugging Face token vLLM downloads a "
                                       "gated model with (HF_TOKEN)")
    pgbouncer_tls: SecretName = Field("pgbouncer-tls",
                               description="kubernetes.io/tls Secret (tls.crt, tls.key) PgBouncer serves client TLS "
                                           "with when pgbouncer.client_tls is on (cert-manager can issue it)")


class Profile(Strict):
    environment: DNS1123Label = Field(description="the environment (dev, prod): names the rendered folder")
    namespace: Namespace = Field("default", description="Kubernetes namespace every object goes to")
    exposed: bool = Field(False, description="reachable from outside the cluster (requires client TLS in prod)")
    production: bool = Field(False, description="apply the production lint (also implied by environment prod, production, prod-*)")
    hardware: Hardware
    postgres: Postgres = Postgres()
    pgbouncer: PgBouncer = PgBouncer()
    redis: Redis = Redis()
    llm: Llm | None = None
    app: App = App()
    autoscaling: Autoscaling = Autoscaling()
    slo: Slo = Slo()
    alerts: Alerts = Alerts()
    kubernetes: Kubernetes = Kubernetes()
    monitoring: Monitoring = Monitoring()
    secrets: Secrets = Secrets()
    workers: Workers | None = None
    vector: Vector | None = None

    def api_surge(self) -> int:
        """Pods the app's rolling update adds above autoscaling.api.max_replicas: app.max_surge, or Kubernetes'
        default maxSurge of 25%, rounded up."""
        if self.app.max_surge is not None:
            return self.app.max_surge
        return -(-self.autoscaling.api.max_replicas * 25 // 100)

    def llm_autoscaled(self) -> bool:
        """vLLM exports the queue metric an autoscaler reads; Ollama has no /metrics, so it is not scaled."""
        return self.llm is not None and self.llm.server == "vllm" and self.hardware.gpu is not None
    review: Review = Review()
    pricing: Pricing | None = Field(None, description="prices for the monthly cost (explain, diff); base.yaml's are "
                                    "examples")


def json_schema() -> str:
    from .schema_docs import apply

    schema = apply(Profile.model_json_schema())
    schema["properties"]["extends"] = {"type": "string", "description": "another profile in the same folder"}
    schema["properties"]["abstract"] = {"type": "boolean", "default": False, "description": (
        "true: this file only holds values other profiles extend (like base.yaml); it is never rendered and "
        "is not inherited")}
    schema["properties"]["environment_matches_file_name"] = {"type": "boolean", "default": True, "description": (
        "false: allow `environment` to differ from the file name (not inherited)")}
    # Any file may be an overlay (`extends:`) that sets a few keys of a section, so the editor schema
    # requires nothing; required keys are checked on the merged profile by `perfstack validate`.
    for definition in [schema, *schema.get("$defs", {}).values()]:
        definition.pop("required", None)
    schema["description"] = ("A perfstack profile. Required keys are checked after `extends:` is merged, "
                             "by `perfstack validate`.")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "perfstack profile"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
