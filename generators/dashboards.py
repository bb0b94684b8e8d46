"""Grafana dashboards built with grafana-foundation-sdk: an overview with the SLOs as threshold lines,
and one per component (PostgreSQL, PgBouncer, Redis, LLM server, API) whose lines are the very thresholds
the alerts use (generators.alerts computes them from the profile; nothing is recomputed here).

Every dashboard has a stable UID derived from its name (perfstack-ENV-COMPONENT), a templated Prometheus
datasource ($datasource), the environment it was rendered for ($environment) and the namespace its
series carry ($namespace). Files: grafana/<uid>.json. Kubernetes: a ConfigMap per dashboard labelled for
kube-prometheus-stack's Grafana sidecar (kubernetes.dashboard_labels), or, with
kubernetes.dashboards: grafana-operator, a GrafanaDashboard selecting kubernetes.grafana_instance_labels.
Metric names: generators/metrics.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import prometheus as prometheus_builder
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as dashboard_model

from . import formats, units
from .alerts import Rules
from .alerts.llm import ollama_probe_job
from .alerts.workers import camel
from .bundle import Part
from .k8s import LLM_SERVER
from .profile import Profile

TARGET = "dashboards"
UID_MAX = 40  # Grafana's limit on dashboard UIDs
DATASOURCE = dashboard_model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every query is scoped to the namespace and the instances picked in $instance (all by default).
NS = 'namespace="$namespace", instance=~"$instance"'
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    unit: str
    queries: tuple[Query, ...]
    line: float | None = None  # threshold line (an SLO or an alert threshold)
    line_name: str = ""  # what the line is, for the description
    description: str = ""


def uid(profile: Profile, component: str) -> str:
    """perfstack-ENV-COMPONENT; a name too long for Grafana becomes a hash of it (still stable)."""
    name = f"perfstack-{profile.environment}-{component}"
    if len(name) <= UID_MAX:
        return name
    return f"perfstack-{hashlib.sha256(name.encode()).hexdigest()[:UID_MAX - 10]}"


def q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


def p95(metric: str, matchers: str, by: str = "") -> str:
    group = f"{by}, le" if by else "le"
    return f"histogram_quantile(0.95, sum by ({group}) (rate({metric}_bucket{{{matchers}}}[{RATE}])))"


def _ratio(hit: str, total: str) -> str:
    return f"{hit} / {total}"


# ---------------------------------------------------------------- panels per dashboard
def overview(profile: Profile, limits: dict[str, float]) -> list[PanelSpec]:
    slo, app = profile.slo, profile.app
    api = f'{NS}, {formats.matcher("job", app.deployment)}'
    pods = formats.matcher("pod", formats.regex_alternatives([app.deployment]) + "-.*", "=~")
    pool_max = app.db_pool.size + app.db_pool.max_overflow

    def cache(name: str, ratio: float) -> PanelSpec:
        sel = f'{api}, {formats.matcher("cache", name)}'
        return PanelSpec(f"{name.capitalize()} cache hit ratio", "percentunit", (q(_ratio(
            f'sum(rate(app_cache_requests_total{{{sel}, result="hit"}}[{RATE}]))',
            f"sum(rate(app_cache_requests_total{{{sel}}}[{RATE}]))"), "hit ratio"),), ratio,
            f"slo.cache_hit_ratio.{name}")

    return [
        PanelSpec("API p95 latency", "s", (q(p95("http_request_duration_seconds", api), "p95"),),
                  slo.api_latency_p95 / 1000, "slo.api_latency_p95"),
        PanelSpec("API error ratio (5xx)", "percentunit", (q(_ratio(
            f'sum(rate(http_requests_total{{{api}, status="5xx"}}[{RATE}]))',
            f"sum(rate(http_requests_total{{{api}}}[{RATE}]))"), "5xx share"),), slo.error_rate, "slo.error_rate"),
        PanelSpec("LLM p95 latency (as the API sees it)", "s",
                  (q(p95("app_llm_request_duration_seconds", api), "p95"),),
                  slo.llm_latency_p95 / 1000, "slo.llm_latency_p95"),
        PanelSpec("Workflow p95 duration", "s", (q(p95("app_workflow_duration_seconds", api), "p95"),),
                  slo.workflow_p95 / 1000, "slo.workflow_p95"),
        PanelSpec("Database query p95", "s", (q(p95("app_db_query_duration_seconds", api), "p95"),),
                  slo.db_query_p95 / 1000, "slo.db_query_p95"),
        cache("query", slo.cache_hit_ratio.query),
        cache("llm", slo.cache_hit_ratio.llm),
        PanelSpec("API database pool utilization", "percentunit",
                  (q(f"max by (instance) (app_db_pool_connections_in_use{{{api}}}) / {pool_max}", "{{instance}}"),),
                  slo.pool_utilization_max, "slo.pool_utilization_max",
                  f"checked-out connections / (db_pool.size {app.db_pool.size} + max_overflow {app.db_pool.max_overflow})"),
        PanelSpec("API memory per pod", "bytes", (q(
            f'sum by (pod) (container_memory_working_set_bytes{{{NS}, {pods}, container!=""}})',
            "{{pod}}"),), slo.memory_max, "slo.memory_max"),
        PanelSpec("API CPU per pod (share of its limit)", "percentunit", (q(
            f'sum by (pod) (rate(container_cpu_usage_seconds_total{{{NS}, {pods}, container!=""}}'
            f'[{RATE}])) / sum by (pod) (kube_pod_container_resource_limits{{{NS}, {pods}, '
            'resource="cpu"})', "{{pod}}"),), slo.cpu_max, "slo.cpu_max"),
        PanelSpec("Traffic", "reqps", (q(f"sum(rate(http_requests_total{{{api}}}[{RATE}]))", "requests/s"),
                                       q(f'sum(rate(http_requests_total{{{api}, status="5xx"}}[{RATE}]))', "5xx/s"))),
        PanelSpec(f"Availability error budget remaining ({units.format_duration(slo.window)})", "percentunit", (q(
            f'1 - (sum(increase(http_requests_total{{{api}, status="5xx"}}[{units.format_duration(slo.window)}])) / '
            f"sum(increase(http_requests_total{{{api}}}[{units.format_duration(slo.window)}]))) / {slo.error_rate:g}",
            "budget left"),), 0, "budget spent", f"1 - failed share over slo.window / slo.error_rate {slo.error_rate:g}"),
        PanelSpec("Availability burn rate", "short", tuple(
            q(f'perfstack:api_errors:ratio_rate{w}{{namespace="$namespace", {formats.matcher("job", app.deployment)}}} / '
              f'{slo.error_rate:g}',
              f"burn rate {w}") for w in ("5m", "1h", "6h", "1d")),
            limits.get("ApiAvailabilityBurnRate1h", 0) / slo.error_rate if slo.error_rate else None,
            "ApiAvailabilityBurnRate1h's burn rate (page with the 5m window)",
            "error ratio / slo.error_rate, from the recording rules the burn-rate alerts read"),
        PanelSpec("Latency burn rate", "short", tuple(
            q(f'perfstack:api_slow_requests:ratio_rate{w}{{namespace="$namespace", {formats.matcher("job", app.deployment)}}}'
              ' / 0.05',
              f"burn rate {w}") for w in ("5m", "1h", "6h", "1d")),
            limits.get("ApiLatencyBurnRate1h", 0) / 0.05, "ApiLatencyBurnRate1h's burn rate",
            f"share of requests slower than {units.format_duration(slo.api_latency_p95)} / 5%"),
        PanelSpec("Firing alerts", "short", (q(
            'sum by (component) (ALERTS{alertstate="firing", environment="$environment"})',
            "{{component}}"),)),
    ]


def postgres_panels(profile: Profile, limits: dict[str, float]) -> list[PanelSpec]:
    db = f'{NS}, datname!~"template.*"'
    return [
        PanelSpec("PostgreSQL up", "short", (q(f"pg_up{{{NS}}}", "{{instance}}"),)),
        PanelSpec("Connections by state", "short", (
            q(f"sum by (state) (pg_stat_activity_count{{{NS}}})", "{{state}}"),
            q(f"sum by (instance) (pg_stat_activity_count{{{NS}}})", "all {{instance}} (the alert's sum)")),
                  limits.get("PostgresConnectionsHigh"), "alert PostgresConnectionsHigh"),
        PanelSpec("Cache hit ratio", "percentunit", (q(_ratio(
            f"sum by (datname) (rate(pg_stat_database_blks_hit{{{db}}}[{RATE}]))",
            f"(sum by (datname) (rate(pg_stat_database_blks_hit{{{db}}}[{RATE}])) + "
            f"sum by (datname) (rate(pg_stat_database_blks_read{{{db}}}[{RATE}])))"), "{{datname}}"),),
            limits.get("PostgresCacheHitRatioLow"), "alert PostgresCacheHitRatioLow"),
        PanelSpec("Transactions per second", "ops", (
            q(f"sum by (datname) (rate(pg_stat_database_xact_commit{{{db}}}[{RATE}]))", "commit {{datname}}"),
            q(f"sum by (datname) (rate(pg_stat_database_xact_rollback{{{db}}}[{RATE}]))", "rollback {{datname}}"))),
        PanelSpec("Deadlocks", "short", (q(f"sum by (datname) (increase(pg_stat_database_deadlocks{{{db}}}[{RATE}]))",
                                           "{{datname}}"),)),
        PanelSpec("Longest open transaction", "s", (
            q(f"max by (datname) (pg_stat_activity_max_tx_duration{{{NS}}})", "{{datname}}"),),
            limits.get("PostgresLongTransaction"), "alert PostgresLongTransaction"),
        PanelSpec("Database size", "bytes", (q(f"pg_database_size_bytes{{{db}}}", "{{datname}}"),)),
        PanelSpec("Exporter scrape errors", "short", (q(f"pg_exporter_last_scrape_error{{{NS}}}", "{{instance}}"),)),
    ]


def pgbouncer_panels(profile: Profile, limits: dict[str, float]) -> list[PanelSpec]:
    return [
        PanelSpec("PgBouncer up", "short", (q(f"pgbouncer_up{{{NS}}}", "{{instance}}"),)),
        PanelSpec("Client connections", "short", (
            q(f"sum by (instance) (pgbouncer_pools_client_active_connections{{{NS}}}) + "
              f"sum by (instance) (pgbouncer_pools_client_waiting_connections{{{NS}}})",
              "active + waiting {{instance}} (the alert's sum)"),
            q(f"sum(pgbouncer_pools_client_waiting_connections{{{NS}}})", "waiting")),
            limits.get("PgBouncerClientConnectionsHigh"), "alert PgBouncerClientConnectionsHigh (per instance)"),
        PanelSpec("Server connections", "short", (
            q(f"sum(pgbouncer_pools_server_active_connections{{{NS}}})", "active"),
            q(f"sum(pgbouncer_pools_server_idle_connections{{{NS}}})", "idle"),
            q(f"sum(pgbouncer_pools_server_used_connections{{{NS}}})", "used")),
            limits.get("PgBouncerServerConnectionsHigh"), "alert PgBouncerServerConnectionsHigh"),
        PanelSpec("Longest client wait", "s", (
            q(f"max by (database) (pgbouncer_pools_client_maxwait_seconds{{{NS}}})", "{{database}}"),),
            limits.get("PgBouncerMaxWaitHigh"), "alert PgBouncerMaxWaitHigh (pgbouncer.reserve_pool_timeout)"),
        PanelSpec("Queries per second", "ops", (
            q(f"sum by (database) (rate(pgbouncer_stats_totals_queries_pooled_total{{{NS}}}[{RATE}]))", "{{database}}"),)),
    ]


def redis_panels(profile: Profile, limits: dict[str, float]) -> list[PanelSpec]:
    panels = [
        PanelSpec("Redis up", "short", (q(f"redis_up{{{NS}}}", "{{instance}}"),)),
        PanelSpec("Memory used", "bytes", (q(f"redis_memory_used_bytes{{{NS}}}", "used {{instance}}"),
                                           q(f"redis_memory_max_bytes{{{NS}}}", "maxmemory {{instance}}")),
                  limits.get("RedisMemoryHigh"), "alert RedisMemoryHigh"),
        PanelSpec("Keyspace hit ratio", "percentunit", (q(_ratio(
            f"sum(rate(redis_keyspace_hits_total{{{NS}}}[{RATE}]))",
            f"(sum(rate(redis_keyspace_hits_total{{{NS}}}[{RATE}])) + "
            f"sum(rate(redis_keyspace_misses_total{{{NS}}}[{RATE}])))"), "hit ratio"),)),
        PanelSpec("Connected clients", "short", (q(f"sum(redis_connected_clients{{{NS}}})", "clients"),)),
        PanelSpec("Rejected connections", "short", (
            q(f"sum(increase(redis_rejected_connections_total{{{NS}}}[{RATE}]))", "rejected"),)),
    ]
    if "RedisEvictionsHigh" in limits:
        panels.append(PanelSpec("Evictions per second", "ops", (
            q(f"sum(rate(redis_evicted_keys_total{{{NS}}}[{RATE}]))", "evicted"),),
            limits["RedisEvictionsHigh"], "alert RedisEvictionsHigh"))
    else:
        panels.append(PanelSpec("Writes refused (OOM)", "short", (
            q(f'sum(increase(redis_errors_total{{{NS}, err="OOM"}}[{RATE}]))', "OOM"),)))
    return panels


def llm_panels(profile: Profile, limits: dict[str, float]) -> list[PanelSpec]:
    llm, slo = profile.llm, profile.slo
    api = f'{NS}, {formats.matcher("job", profile.app.deployment)}'
    client = PanelSpec("LLM p95 latency (as the API sees it)", "s",
                       (q(p95("app_llm_request_duration_seconds", api), "p95"),),
                       slo.llm_latency_p95 / 1000, "slo.llm_latency_p95")
    if llm is None:
        return [client]
    if llm.server == "ollama":
        job = formats.matcher("job", ollama_probe_job(profile))
        return [
            PanelSpec("Ollama reachable (blackbox probe)", "short", (q(f"probe_success{{{job}}}", "{{instance}}"),)),
            PanelSpec("Probe duration", "s", (q(f"probe_duration_seconds{{{job}}}", "{{instance}}"),)),
            client,
        ]
    metric = "vllm:num_requests_waiting"
    return [
        PanelSpec("Requests waiting and running", "short", (
            q(f"sum by (model_name) ({metric}{{{NS}}})", f"{metric} {{{{model_name}}}}"),
            q(f"sum by (model_name) (vllm:num_requests_running{{{NS}}})", "running {{model_name}}")),
            limits.get("LlmQueueSaturated"), "alert LlmQueueSaturated (max_num_seqs x max replicas)"),
        PanelSpec("KV cache usage", "percentunit", (
            q(f"max by (instance) (vllm:kv_cache_usage_perc{{{NS}}})", "{{instance}}"),),
            limits.get("LlmKvCacheHigh"), "alert LlmKvCacheHigh"),
        PanelSpec("End-to-end p95 latency", "s", (q(p95("vllm:e2e_request_latency_seconds", NS, "model_name"),
                                                    "{{model_name}}"),),
                  slo.llm_latency_p95 / 1000, "slo.llm_latency_p95"),
        PanelSpec("Time to first token p95", "s", (q(p95("vllm:time_to_first_token_seconds", NS, "model_name"),
                                                     "{{model_name}}"),),
                  slo.llm_time_to_first_token_p95 / 1000, "slo.llm_time_to_first_token_p95"),
        PanelSpec("Inter-token latency p95", "s", (q(p95("vllm:inter_token_latency_seconds", NS, "model_name"),
                                                     "{{model_name}}"),)),
        PanelSpec("Replicas", "short", (
            q(f'kube_horizontalpodautoscaler_status_current_replicas{{{NS}, {formats.matcher("horizontalpodautoscaler", LLM_SERVER)}}}',
              "current"),
            q(f'kube_horizontalpodautoscaler_spec_max_replicas{{{NS}, {formats.matcher("horizontalpodautoscaler", LLM_SERVER)}}}', "max"))),
        client,
    ]


def api_panels(profile: Profile, limits: dict[str, float]) -> list[PanelSpec]:
    slo, app = profile.slo, profile.app
    api = f'{NS}, {formats.matcher("job", app.deployment)}'
    hpa = f'{NS}, {formats.matcher("horizontalpodautoscaler", app.deployment)}'
    return [
        PanelSpec("Requests per second by status", "reqps", (
            q(f"sum by (status) (rate(http_requests_total{{{api}}}[{RATE}]))", "{{status}}"),)),
        PanelSpec("p95 latency by handler", "s", (q(p95("http_request_duration_seconds", api, "handler"),
                                                    "{{handler}}"),),
                  slo.api_latency_p95 / 1000, "slo.api_latency_p95"),
        PanelSpec("Error ratio (5xx)", "percentunit", (q(_ratio(
            f'sum(rate(http_requests_total{{{api}, status="5xx"}}[{RATE}]))',
            f"sum(rate(http_requests_total{{{api}}}[{RATE}]))"), "5xx share"),), slo.error_rate, "slo.error_rate"),
        PanelSpec("Cache hit ratio", "percentunit", (q(_ratio(
            f'sum by (cache) (rate(app_cache_requests_total{{{api}, result="hit"}}[{RATE}]))',
            f"sum by (cache) (rate(app_cache_requests_total{{{api}}}[{RATE}]))"), "{{cache}}"),),
            min(slo.cache_hit_ratio.query, slo.cache_hit_ratio.llm), "the lower of slo.cache_hit_ratio.*"),
        PanelSpec("Database pool connections in use", "short", (
            q(f"app_db_pool_connections_in_use{{{api}}}", "{{instance}}"),),
            limits.get("ApiDbPoolSaturated"), "alert ApiDbPoolSaturated"),
        PanelSpec("Workflow p95 duration", "s", (q(p95("app_workflow_duration_seconds", api), "p95"),),
                  slo.workflow_p95 / 1000, "slo.workflow_p95"),
        PanelSpec("Replicas", "short", (
            q(f"kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}}", "current"),
            q(f"kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}}", "max")),
            profile.autoscaling.api.max_replicas, "autoscaling.api.max_replicas"),
    ]


def worker_panels(profile: Profile, limits: dict[str, float]) -> list[PanelSpec]:
    if profile.workers is None:
        return []
    panels = []
    for name, pool in profile.workers.pools.items():
        p = camel(name)
        sel = f'{NS}, {formats.matcher("queue_name", formats.regex_alternatives(pool.queues), "=~")}'
        panels += [
            PanelSpec(f"{name}: jobs waiting", "short",
                      (q(f"sum by (queue_name) (celery_queue_length{{{sel}}})", "{{queue_name}}"),),
                      limits.get(f"Worker{p}QueueBacklog"), f"alert Worker{p}QueueBacklog"),
            PanelSpec(f"{name}: time to drain the queue", "s", (q(
                f"sum by (queue_name) (celery_queue_length{{{sel}}}) / "
                f"sum by (queue_name) (rate(celery_task_received_total{{{sel}}}[{RATE}]))", "{{queue_name}}"),),
                limits.get(f"Worker{p}QueueWaitHigh"), f"alert Worker{p}QueueWaitHigh (max_queue_wait)"),
            PanelSpec(f"{name}: workers consuming", "short",
                      (q(f"sum by (queue_name) (celery_active_worker_count{{{sel}}})", "{{queue_name}}"),)),
            PanelSpec(f"{name}: tasks per second", "ops", tuple(
                q(f"sum(rate(celery_task_{state}_total{{{sel}}}[{RATE}]))", state)
                for state in ("received", "succeeded", "retried", "failed"))),
            PanelSpec(f"{name}: p95 task runtime", "s", (q(p95("celery_task_runtime", sel), "p95"),),
                      pool.time_limit / 1000, f"workers.pools.{name}.time_limit"),
        ]
    return panels


DASHBOARDS: dict[str, tuple[str, Callable[[Profile, dict[str, float]], list[PanelSpec]]]] = {
    "overview": ("Overview (SLOs)", overview),
    "postgres": ("PostgreSQL", postgres_panels),
    "pgbouncer": ("PgBouncer", pgbouncer_panels),
    "redis": ("Redis", redis_panels),
    "llm": ("LLM server", llm_panels),
    "api": ("API", api_panels),
    "workers": ("Workers", worker_panels),
}


def components(profile: Profile) -> list[str]:
    """The dashboards this profile has: the workers' only with workers."""
    return [c for c in DASHBOARDS if c != "workers" or profile.workers is not None]


# ---------------------------------------------------------------- building with grafana-foundation-sdk
def _panel(spec: PanelSpec, panel_id: int) -> timeseries.Panel:
    panel = (timeseries.Panel().id(panel_id).title(spec.title).unit(spec.unit).min(0).datasource(DATASOURCE)
             .height(8).span(12).line_width(1).fill_opacity(10))
    description = spec.description
    if spec.line is not None:
        panel = panel.thresholds(dashboard_builder.ThresholdsConfig().mode(dashboard_model.ThresholdsMode.ABSOLUTE)
                                 .steps([dashboard_model.Threshold(value=None, color="green"),
                                         dashboard_model.Threshold(value=round(spec.line, 6), color="red")]))
        panel = panel.thresholds_style(common_builder.GraphThresholdsStyleConfig()
                                       .mode(common_model.GraphThresholdsStyleMode.DASHED))
        description = (description + "; " if description else "") + f"red line: {spec.line_name} = {spec.line:g}"
    if description:
        panel = panel.description(description)
    for index, query in enumerate(spec.queries):
        panel = panel.with_target(prometheus_builder.Dataquery().expr(query.expr).legend_format(query.legend or "__auto")
                                  .ref_id(chr(ord("A") + index)).datasource(DATASOURCE))
    return panel


def _variables(profile: Profile) -> list[Any]:
    return [
        dashboard_builder.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        dashboard_builder.CustomVariable("environment").label("Environment").values(profile.environment)
        .current(dashboard_model.VariableOption(selected=True, text=profile.environment, value=profile.environment)),
        dashboard_builder.QueryVariable("namespace").label("Namespace").datasource(DATASOURCE)
        .query("label_values(up, namespace)")
        .current(dashboard_model.VariableOption(selected=True, text=profile.namespace, value=profile.namespace)),
        dashboard_builder.QueryVariable("instance").label("Instance").datasource(DATASOURCE)
        .query('label_values(up{namespace="$namespace"}, instance)').multi(True).include_all(True).all_value(".*")
        .current(dashboard_model.VariableOption(selected=True, text="All", value="$__all")),
    ]


def build(profile: Profile, component: str, rules: Rules) -> dict[str, Any]:
    """One dashboard as Grafana's JSON model (a dict)."""
    title, panels = DASHBOARDS[component]
    limits = {alert.name: alert.threshold for found in rules.values() for alert in found}
    board = (dashboard_builder.Dashboard(f"perfstack {profile.environment} / {title}")
             .uid(uid(profile, component)).tags(["perfstack", profile.environment, component])
             .refresh("30s").time("now-6h", "now").timezone("browser").editable()
             .link(dashboard_builder.DashboardLink("perfstack").type(dashboard_model.DashboardLinkType.DASHBOARDS)
                   .tags(["perfstack", profile.environment]).as_dropdown(True).include_vars(True).keep_time(True)))
    for variable in _variables(profile):
        board = board.with_variable(variable)
    for index, spec in enumerate(panels(profile, limits)):
        board = board.with_panel(_panel(spec, index + 1))
    return json.loads(JSONEncoder(sort_keys=True).encode(board.build()))  # compact: C encoder; to_json indents


def dashboards(profile: Profile, rules: Rules) -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON model, for every dashboard; threshold lines are the alerts' rendered thresholds."""
    return {uid(profile, component): build(profile, component, rules) for component in components(profile)}


def expressions(board: dict[str, Any]) -> list[str]:
    """Every PromQL expression in a dashboard's panels (what the tests parse with Prometheus)."""
    return [target["expr"] for panel in board.get("panels", []) for target in panel.get("targets", [])
            if target.get("expr")]


def to_json(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render(profile: Profile, rules: Rules) -> Part:
    """One grafana/<uid>.json per dashboard (the objects stage wraps each in a ConfigMap or GrafanaDashboard)."""
    files = {f"grafana/{uid(profile, component)}.json": to_json(build(profile, component, rules))
             for component in components(profile)}
    return Part(files=files)


def boards(profile: Profile, part: Part) -> dict[str, tuple[str, str]]:
    """component -> (uid, the rendered JSON text), for the objects stage."""
    return {component: (uid(profile, component), part.files[f"grafana/{uid(profile, component)}.json"])
            for component in components(profile)}
