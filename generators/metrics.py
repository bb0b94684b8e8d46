"""Every metric name perfstack's alerts and dashboards may use, in one place, by the program that exports it,
with the exporter version each name was verified on and how (VERIFIED).

The three database exporters were scraped live here, against real servers started from the rendered dev
configs: tests/test_alerts_live.py::test_every_listed_name_is_exported repeats that scrape on every run and
fails when a name listed below is missing from the pinned exporter's /metrics. The other programs cannot run
here (no GPU, no cluster): their names come from ../shared/reference/observability.md (checked against
their sources) and say so in VERIFIED. Tests parse every expression perfstack renders and fail on a name
not listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Exporter:
    """A program whose /metrics the alerts read: the version its names were verified on, and how."""

    name: str
    version: str  # the version the names were verified on (the image tag perfstack deploys is the same release)
    image: str | None  # the container image perfstack deploys (None: not deployed by perfstack)
    how: str


LIVE = ("live scrape here (tests/test_alerts_live.py::test_every_listed_name_is_exported) of {binary} against "
        "{server} started from the rendered dev config")
POSTGRES = Exporter("postgres_exporter", "0.11.1", "quay.io/prometheuscommunity/postgres-exporter:v0.11.1",
                    LIVE.format(binary="Debian's prometheus-postgres-exporter 0.11.1", server="PostgreSQL 15"))
PGBOUNCER = Exporter("pgbouncer_exporter", "0.12.1", "quay.io/prometheuscommunity/pgbouncer-exporter:v0.12.1",
                     LIVE.format(binary="prometheus-community pgbouncer_exporter v0.12.1 "
                                 "(scripts/build-pgbouncer-exporter)", server="PgBouncer 1.18"))
REDIS = Exporter("redis_exporter", "1.45.0", "docker.io/oliver006/redis_exporter:v1.45.0",
                 LIVE.format(binary="Debian's prometheus-redis-exporter 1.45.0", server="Redis 7.0")
                 + "; redis_errors_total{err=\"OOM\"} after a write refused at maxmemory (noeviction)")

# prometheus-community/postgres_exporter. Not exported by 0.11.1's default collectors (so not listed):
# pg_replication_lag_seconds, pg_stat_user_tables_n_{dead,live}_tup.
POSTGRES_EXPORTER = frozenset({
    "pg_up", "pg_exporter_last_scrape_error",
    "pg_stat_activity_count",  # {datname, state}
    "pg_stat_activity_max_tx_duration",  # {datname, state}, seconds
    "pg_settings_max_connections", "pg_settings_superuser_reserved_connections",
    "pg_stat_database_blks_hit", "pg_stat_database_blks_read", "pg_stat_database_xact_commit",
    "pg_stat_database_xact_rollback", "pg_stat_database_deadlocks",
    "pg_locks_count", "pg_database_size_bytes",
})

# prometheus-community/pgbouncer_exporter (port 9127), not Debian's prometheus-pgbouncer-exporter. Since
# v0.11.0 the SHOW STATS totals are pgbouncer_stats_totals_* (the README still shows pgbouncer_stats_*).
PGBOUNCER_EXPORTER = frozenset({
    "pgbouncer_up",
    "pgbouncer_pools_client_active_connections", "pgbouncer_pools_client_waiting_connections",
    "pgbouncer_pools_server_active_connections", "pgbouncer_pools_server_idle_connections",
    "pgbouncer_pools_server_used_connections", "pgbouncer_pools_server_testing_connections",
    "pgbouncer_pools_server_login_connections", "pgbouncer_pools_client_maxwait_seconds",
    "pgbouncer_databases_pool_size", "pgbouncer_databases_max_connections",
    "pgbouncer_databases_current_connections",  # the database alias is the label `name`
    "pgbouncer_config_max_client_connections",
    "pgbouncer_config_max_user_connections",  # 0 = unlimited: never divide by it
    "pgbouncer_used_clients",
    "pgbouncer_stats_totals_queries_pooled_total", "pgbouncer_stats_totals_queries_duration_seconds_total",
    "pgbouncer_stats_totals_client_wait_seconds_total",
})

# oliver006/redis_exporter.
REDIS_EXPORTER = frozenset({
    "redis_up", "redis_memory_used_bytes", "redis_memory_max_bytes", "redis_evicted_keys_total",
    "redis_rejected_connections_total", "redis_connected_clients", "redis_keyspace_hits_total",
    "redis_keyspace_misses_total",
    "redis_errors_total",  # {err="OOM"}: exists only after the first such error (treat absence as 0)
})


def _histogram(name: str) -> set[str]:
    return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}


# vLLM's /metrics (current names: kv_cache_usage_perc, inter_token_latency_seconds).
VLLM = frozenset({
    "vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc",
    *_histogram("vllm:e2e_request_latency_seconds"), *_histogram("vllm:time_to_first_token_seconds"),
    *_histogram("vllm:inter_token_latency_seconds"),
})

# prometheus blackbox_exporter: Ollama has no /metrics, so it is probed at /api/version.
BLACKBOX_EXPORTER = frozenset({"probe_success", "probe_duration_seconds", "probe_http_status_code"})

# kube-state-metrics and the kubelet's cAdvisor (both part of kube-prometheus-stack).
KUBERNETES = frozenset({
    "kube_horizontalpodautoscaler_status_current_replicas", "kube_horizontalpodautoscaler_spec_max_replicas",
    "kube_horizontalpodautoscaler_spec_min_replicas", "kube_pod_container_resource_limits",
    "container_memory_working_set_bytes", "container_cpu_usage_seconds_total",
})

# danihodovic/celery-exporter (port 9808): queue lengths from the broker, task events from the workers
# (worker_send_task_events, task_send_sent_event). Task counters carry {name, hostname, queue_name}; the queue
# gauges {queue_name}; the worker gauges {hostname}.
CELERY_EXPORTER = frozenset({
    "celery_queue_length", "celery_active_consumer_count", "celery_active_worker_count",
    "celery_active_process_count", "celery_worker_up", "celery_worker_tasks_active",
    "celery_task_sent_total", "celery_task_received_total", "celery_task_started_total",
    "celery_task_succeeded_total", "celery_task_failed_total", "celery_task_retried_total",
    "celery_task_rejected_total", "celery_task_revoked_total", *_histogram("celery_task_runtime"),
})
CELERY = Exporter("celery_exporter", "0.12.2", "ghcr.io/danihodovic/celery-exporter:0.12.2",
                  "source: the metric definitions (names and labels) in src/exporter.py at tag v0.12.2 of "
                  "github.com/danihodovic/celery-exporter, read here; the exporter does not run on this machine. The image is "
                  "the one that tag's own workflow (push-image-ghcr.yml, semver {{version}}) publishes")

# Names an exporter creates only once the event has happened: absent() of them is no sign of blindness. celery-exporter makes a
# task counter (and the runtime histogram) when the first event of that task arrives.
APPEAR_ON_EVENT = frozenset({"redis_errors_total", *(
    f"celery_task_{event}_total" for event in
    ("sent", "received", "started", "succeeded", "failed", "retried", "rejected", "revoked")),
    *_histogram("celery_task_runtime"),
    # The app's labelled series (prometheus_client makes a child at its first labels() call): the HTTP metrics
    # at the first request of each handler, the cache lookups at the first lookup, database errors at the first one.
    *_histogram("http_request_duration_seconds"), "http_requests_total", "app_cache_requests_total",
    "app_db_query_errors_total"})

# Prometheus itself: every scrape's `up`, and the ALERTS series of its own rules.
PROMETHEUS = frozenset({"up", "ALERTS"})

# The application (the Deployment `app.deployment`, scraped as job=<app.deployment>). HTTP metrics follow
# prometheus-fastapi-instrumentator (status grouped as 2xx/4xx/5xx); the rest are perfstack's own:
#   app_cache_requests_total{cache="query"|"llm", result="hit"|"miss"}  counter: cache lookups
#   app_db_pool_connections_in_use        gauge: checked-out SQLAlchemy connections (size + overflow at most)
#   app_db_query_duration_seconds         histogram: one database round trip
#   app_db_query_errors_total             counter: database round trips that raised (SQLAlchemy DBAPIError)
#   app_llm_request_duration_seconds      histogram: one LLM call as the client sees it (vLLM or Ollama)
#   app_workflow_duration_seconds         histogram: one whole workflow run
APP = frozenset({
    *_histogram("http_request_duration_seconds"),  # {handler, method, le}
    "http_requests_total",  # {handler, method, status}
    "app_cache_requests_total", "app_db_pool_connections_in_use",
    *_histogram("app_db_query_duration_seconds"), "app_db_query_errors_total",
    *_histogram("app_llm_request_duration_seconds"),
    *_histogram("app_workflow_duration_seconds"),
})

KNOWN = {
    "postgres_exporter": POSTGRES_EXPORTER, "pgbouncer_exporter": PGBOUNCER_EXPORTER,
    "redis_exporter": REDIS_EXPORTER, "vllm": VLLM, "blackbox_exporter": BLACKBOX_EXPORTER,
    "kubernetes": KUBERNETES, "prometheus": PROMETHEUS, "app": APP,
    "celery_exporter": CELERY_EXPORTER,
}
ALL = frozenset().union(*KNOWN.values())

_REFERENCE = "not run here: names from ../shared/reference/observability.md, checked against {what}"
EXPORTERS: dict[str, Exporter] = {
    "postgres_exporter": POSTGRES, "pgbouncer_exporter": PGBOUNCER, "redis_exporter": REDIS,
    "vllm": Exporter("vllm", "not pinned: current names (kv_cache_usage_perc, inter_token_latency_seconds)", None,
                     _REFERENCE.format(what="vLLM's V1 metrics logger (no GPU here)")),
    "blackbox_exporter": Exporter("blackbox_exporter", "not pinned", None,
                                  _REFERENCE.format(what="the blackbox exporter's prober")),
    "kubernetes": Exporter("kube-state-metrics / cAdvisor", "kube-prometheus-stack's, not pinned", None,
                           _REFERENCE.format(what="kube-state-metrics' documented metrics")),
    "prometheus": Exporter("prometheus", "2.42.0", None,
                           "live: the Prometheus 2.42 of tests/test_alerts_live.py writes up and ALERTS"),
    "app": Exporter("app", "perfstack's own contract", None,
                    "defined here: the API exports them (README.md, Alerts and dashboards)"),
    "celery_exporter": CELERY,
}


@dataclass(frozen=True)
class Verification:
    metric: str
    exporter: str
    version: str
    how: str


# The table: every name perfstack may use -> the exporter and version it was verified on, and how.
VERIFIED: dict[str, Verification] = {
    metric: Verification(metric, EXPORTERS[key].name, EXPORTERS[key].version, EXPORTERS[key].how)
    for key, names in KNOWN.items() for metric in sorted(names)
}


def exporter_of(metric: str) -> str | None:
    """The program that exports `metric`, or None when perfstack does not know it."""
    for exporter, names in KNOWN.items():
        if metric in names:
            return exporter
    return None


# ---------------------------------------------------------------- metric names in a PromQL expression
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
                       "and", "or", "unless", "atan2", "inf", "nan", "start", "end"})
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions, keywords, label
    names (inside {...} or grouping clauses), durations (inside [...]) or after `offset`."""
    text = _STRINGS.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)
    text = re.sub(r"\[[^\]]*\]", "[]", text)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names

# The app's LLM calls (a counter that exists while the LLM fleet is at zero: KEDA wakes it on this).
APP_LLM_CALLS = "app_llm_request_duration_seconds_count"
