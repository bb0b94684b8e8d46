"""The application's own settings: app/performance.env (KEY=value) and the ConfigMap the app loads with envFrom.

Names are what an application reads directly (DB_POOL_SIZE=20); each name that carries a unit says
it (_SECONDS, _BYTES), and values are plain numbers in that unit: seconds may have a fraction
(RETRY_BACKOFF_BASE_SECONDS=0.1), booleans are `true`/`false`.

perfstack does not own the app's Deployment (`app.deployment`); the ConfigMap carries the checksum
of its data in the CHECKSUM_ANNOTATION annotation, for the Deployment's pod template to copy so that
a settings change rolls the pods.
"""

from __future__ import annotations

from . import formats, paths, serverversions, units
from .bundle import Part, Setting
from .profile import Profile

TARGET = "app"
ENV_FILE = paths.APP_ENV


def config_map_name(profile: Profile) -> str:
    return f"{profile.app.deployment}-performance"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _count(key: str, value: int, source: str) -> Setting:
    return Setting(TARGET, key, value, str(value), f"given by {source}")


def _duration_setting(key: str, ms: int, source: str) -> Setting:
    return Setting(TARGET, key, ms, units.seconds_text(ms), f"given by {source}, in seconds",
                   {source.rsplit(".", 1)[-1]: units.format_duration(ms)})


def _flag(key: str, value: bool, source: str) -> Setting:
    return Setting(TARGET, key, value, _bool(value), f"given by {source}")


def settings(profile: Profile) -> list[Setting]:
    app = profile.app
    items: list[Setting] = [
        _count("DB_POOL_SIZE", app.db_pool.size, "app.db_pool.size"),
        _count("DB_MAX_OVERFLOW", app.db_pool.max_overflow, "app.db_pool.max_overflow"),
        _flag("DB_POOL_PRE_PING", app.db_pool.pre_ping, "app.db_pool.pre_ping"),
        _duration_setting("DB_POOL_RECYCLE_SECONDS", app.db_pool.recycle, "app.db_pool.recycle"),
        _duration_setting("DB_POOL_TIMEOUT_SECONDS", app.db_pool.timeout, "app.db_pool.timeout"),
        _count("QUERY_CACHE_SIZE", app.query_cache.size, "app.query_cache.size"),
        _duration_setting("QUERY_CACHE_TTL_SECONDS", app.query_cache.ttl, "app.query_cache.ttl"),
        _count("LLM_CACHE_SIZE", app.llm_cache.size, "app.llm_cache.size"),
        _duration_setting("LLM_CACHE_TTL_SECONDS", app.llm_cache.ttl, "app.llm_cache.ttl"),
        _count("HTTP_MAX_CONNECTIONS", app.http.max_connections, "app.http.max_connections"),
        _duration_setting("HTTP_TIMEOUT_SECONDS", app.http.timeout, "app.http.timeout"),
        _count("RETRY_ATTEMPTS", app.retry.attempts, "app.retry.attempts"),
        _duration_setting("RETRY_BACKOFF_BASE_SECONDS", app.retry.backoff_base, "app.retry.backoff_base"),
        _duration_setting("RETRY_BACKOFF_MAX_SECONDS", app.retry.backoff_max, "app.retry.backoff_max"),
        _count("RATE_LIMIT_REQUESTS_PER_SECOND", app.rate_limit.requests_per_second,
               "app.rate_limit.requests_per_second"),
        _count("RATE_LIMIT_BURST", app.rate_limit.burst, "app.rate_limit.burst"),
        _flag("COMPRESSION_ENABLED", app.compression.enabled, "app.compression.enabled"),
        Setting(TARGET, "COMPRESSION_MIN_SIZE_BYTES", app.compression.min_size, str(app.compression.min_size),
                "given by app.compression.min_size, in bytes",
                {"min_size": units.format_size_human(app.compression.min_size)}),
        _count("PAGINATION_DEFAULT_PAGE_SIZE", app.pagination.default_page_size, "app.pagination.default_page_size"),
        _count("PAGINATION_MAX_PAGE_SIZE", app.pagination.max_page_size, "app.pagination.max_page_size"),
        _count("LLM_CLIENT_MAX_CONNECTIONS", app.llm_client.max_connections, "app.llm_client.max_connections"),
        _count("LLM_BATCH_SIZE", app.llm_client.batch_size, "app.llm_client.batch_size"),
        _duration_setting("LLM_BATCH_TIMEOUT_SECONDS", app.llm_client.batch_timeout, "app.llm_client.batch_timeout"),
        _count("WORKFLOW_MAX_ITERATIONS", app.workflow.max_iterations, "app.workflow.max_iterations"),
        _count("WORKFLOW_BEAM_WIDTH", app.workflow.beam_width, "app.workflow.beam_width"),
        Setting(TARGET, "WORKFLOW_EARLY_TERMINATION_THRESHOLD", app.workflow.early_termination_threshold,
                f"{app.workflow.early_termination_threshold:g}", "given by app.workflow.early_termination_threshold"),
        Setting(TARGET, "WORKFLOW_CONVERGENCE_THRESHOLD", app.workflow.convergence_threshold,
                f"{app.workflow.convergence_threshold:g}", "given by app.workflow.convergence_threshold"),
        _count("WORKFLOW_CHECKPOINT_EVERY", app.workflow.checkpoint_every, "app.workflow.checkpoint_every"),
    ]
    for name, metric in (("http", "http_request_duration_seconds"), ("workflow", "app_workflow_duration_seconds"),
                         ("db_query", "app_db_query_duration_seconds"), ("llm", "app_llm_request_duration_seconds")):
        bounds = getattr(app.latency_buckets, name)
        text = ",".join(units.seconds_text(b) for b in bounds)
        items.append(Setting(TARGET, f"METRICS_{name.upper()}_BUCKETS_SECONDS", [b / 1000 for b in bounds], text,
                             f"given by app.latency_buckets.{name}: the `buckets` of the {metric} histogram "
                             "(the latency SLOs' alerts read these bounds)"))
    items += [prepare_threshold(profile), *redis_client(profile)]
    if profile.llm is not None:
        items.append(_duration_setting("LLM_REQUEST_TIMEOUT_SECONDS", profile.llm.request_timeout, "llm.request_timeout"))
        items.append(Setting(TARGET, "LLM_MODEL", profile.llm.model.name, profile.llm.model.name,
                             "given by llm.model.name: the name the LLM server serves it under"))
    return sorted(items, key=lambda s: s.key)


# psycopg prepares a query server-side after it ran this many times on a connection (its own default).
PSYCOPG_PREPARE_THRESHOLD = 5


def prepare_threshold(profile: Profile) -> Setting:
    """DB_PREPARE_THRESHOLD: the driver's server-side prepare threshold, empty (never prepare) where PgBouncer
    cannot keep prepared statements: transaction or statement pooling on a version before 1.21, or with
    max_prepared_statements 0. A statement prepared on one server connection would be missing on the next
    (`prepared statement "_pg3_0" does not exist`)."""
    pb = profile.pgbouncer
    raw = pb.settings.get("max_prepared_statements", pb.max_prepared_statements)
    tracked = int(raw) if isinstance(raw, (int, str)) and str(raw).isdigit() else pb.max_prepared_statements
    mode = str(pb.settings.get("pool_mode", pb.pool_mode))
    if mode == "session":
        return Setting(TARGET, "DB_PREPARE_THRESHOLD", PSYCOPG_PREPARE_THRESHOLD, str(PSYCOPG_PREPARE_THRESHOLD),
                       "pgbouncer.pool_mode session: each client keeps its server connection, prepared statements "
                       "stay valid (psycopg's default threshold)")
    if serverversions.pgbouncer_has("max_prepared_statements", pb.version) and tracked > 0:
        return Setting(TARGET, "DB_PREPARE_THRESHOLD", PSYCOPG_PREPARE_THRESHOLD, str(PSYCOPG_PREPARE_THRESHOLD),
                       f"PgBouncer {pb.version} tracks max_prepared_statements {tracked} per server connection in "
                       f"{mode} mode: server-side prepares are kept (psycopg's default threshold)")
    why = (f"PgBouncer {pb.version} cannot keep prepared statements in {mode} mode (max_prepared_statements "
           "came in 1.21)" if not serverversions.pgbouncer_has("max_prepared_statements", pb.version)
           else f"pgbouncer max_prepared_statements is 0 in {mode} mode")
    return Setting(TARGET, "DB_PREPARE_THRESHOLD", None, "",
                   f"{why}: empty = never prepare server-side (psycopg prepare_threshold=None); a statement "
                   "prepared on one server connection would be missing on the next", {"version": pb.version})


def redis_client(profile: Profile) -> list[Setting]:
    rc = profile.app.redis_client
    return [
        _count("REDIS_MAX_CONNECTIONS", rc.max_connections, "app.redis_client.max_connections"),
        _duration_setting("REDIS_SOCKET_TIMEOUT_SECONDS", rc.socket_timeout, "app.redis_client.socket_timeout"),
        _duration_setting("REDIS_SOCKET_CONNECT_TIMEOUT_SECONDS", rc.connect_timeout,
                          "app.redis_client.connect_timeout"),
        _duration_setting("REDIS_HEALTH_CHECK_INTERVAL_SECONDS", rc.health_check_interval,
                          "app.redis_client.health_check_interval"),
        Setting(TARGET, "REDIS_USERNAME", profile.redis.acl_user, profile.redis.acl_user,
                "given by redis.acl_user: the app's Redis ACL user"),
    ]


def env_file(profile: Profile, items: list[Setting]) -> str:
    lines = [f"# Application performance settings for {profile.environment}, rendered by perfstack: do not edit."]
    for s in items:
        lines.append(f"# {formats.comment(s.rule)}")
        lines.append(formats.env_line(s.key, s.text))
    return "\n".join(lines) + "\n"


def render(profile: Profile) -> Part:
    items = settings(profile)
    return Part(settings=items, files={ENV_FILE: env_file(profile, items)})
