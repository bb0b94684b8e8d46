"""Every metric name perfstack's alerts and dashboards may use, in one place, by the program that exports it.

Exporter names are the ones checked in ../shared/reference/observability.md (published rule sets carry
wrong ones). The application's own metrics are defined here: the API exports them (see README.md,
"Alerts and dashboards"). Tests parse every expression perfstack renders and fail on a name not listed.
"""

from __future__ import annotations

import re

# prometheus-community/postgres_exporter (Debian ships 0.11.1).
POSTGRES_EXPORTER = frozenset({
    "pg_up", "pg_exporter_last_scrape_error",
    "pg_stat_activity_count",  # {datname, state}
    "pg_stat_activity_max_tx_duration",  # {datname, state}, seconds
    "pg_settings_max_connections", "pg_settings_superuser_reserved_connections",
    "pg_stat_database_blks_hit", "pg_stat_database_blks_read", "pg_stat_database_xact_commit",
    "pg_stat_database_xact_rollback", "pg_stat_database_deadlocks",
    "pg_locks_count", "pg_replication_lag_seconds",
    "pg_stat_user_tables_n_dead_tup", "pg_stat_user_tables_n_live_tup", "pg_database_size_bytes",
})

# prometheus-community/pgbouncer_exporter (port 9127), not Debian's prometheus-pgbouncer-exporter.
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
    "pgbouncer_stats_queries_pooled_total", "pgbouncer_stats_queries_duration_seconds_total",
    "pgbouncer_stats_client_wait_seconds_total",
})

# oliver006/redis_exporter (Debian ships 1.45).
REDIS_EXPORTER = frozenset({
    "redis_up", "redis_memory_used_bytes", "redis_memory_max_bytes", "redis_evicted_keys_total",
    "redis_rejected_connections_total", "redis_connected_clients", "redis_keyspace_hits_total",
    "redis_keyspace_misses_total",
    "redis_errors_total",  # {err="OOM"}: writes refused at maxmemory under noeviction
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
# (worker_send_task_events, task_send_sent_event). Task counters carry {name, hostname, queue_name}.
CELERY_EXPORTER = frozenset({
    "celery_queue_length", "celery_active_worker_count", "celery_active_process_count", "celery_worker_up",
    "celery_task_sent_total", "celery_task_received_total", "celery_task_started_total",
    "celery_task_succeeded_total", "celery_task_failed_total", "celery_task_retried_total",
    "celery_task_rejected_total", *_histogram("celery_task_runtime"),
})

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
