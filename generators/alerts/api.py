"""API and application alerts (metrics.APP)."""

from __future__ import annotations

from .. import units
from ..bundle import Parts
from ..profile import Profile
from .base import (
    Alert,
    count_proof,
    cpu_proof,
    duration_text,
    eq,
    fireable,
    gauge_proof,
    histogram_proof,
    near,
    num,
    p95,
    pct,
    ratio_over_total_proof,
    ratio_proof,
    seconds,
    selector,
    window,
)


def api_alerts(profile: Profile, parts: Parts) -> list[Alert]:
    app, slo = profile.app, profile.slo
    job = app.deployment
    sel = {"namespace": profile.namespace, "job": job}
    series = {**sel, "instance": f"{job}:8000"}
    buckets = profile.app.latency_buckets

    def secs(values: list[int]) -> tuple[float, ...]:
        return tuple(seconds(v) for v in values)
    latency_s = seconds(slo.api_latency_p95)
    workflow_s = seconds(slo.workflow_p95)
    pool_max = parts.app.value("DB_POOL_SIZE") + parts.app.value("DB_MAX_OVERFLOW")
    pool_limit = slo.pool_utilization_max * pool_max
    w = window()
    http = {**series, "handler": "/v1/query", "method": "POST"}

    def rate_sum(metric: str, *extra: str) -> str:
        return f"sum by (namespace, job) (rate({selector(metric, sel, *extra)}[{w}]))"

    def cache_alert(name: str, cache: str, ratio: float, key: str) -> Alert:
        return Alert(
            name, f"{rate_sum('app_cache_requests_total', eq('cache', cache), eq('result', 'hit'))} / "
                  f"{rate_sum('app_cache_requests_total', eq('cache', cache))} < {num(ratio)}",
            15 * 60_000, "warning", f"The {cache} cache hit ratio is below its SLO",
            f"Fewer than {pct(ratio)} ({key}) of {{{{ $labels.job }}}}'s {cache} cache lookups hit, for 15m.",
            ratio, f"given by {key}", {key.split(".")[-1]: ratio},
            ratio_proof(("app_cache_requests_total", {**series, "cache": cache, "result": "hit"}),
                        ("app_cache_requests_total", {**series, "cache": cache, "result": "miss"}),
                        ratio, False, sel, 15 * 60_000), possible=fireable(ratio, False))

    alerts: list[Alert] = [
        Alert("ApiLatencyHigh", f"{p95('http_request_duration_seconds', sel, 'namespace, job')} > {num(latency_s)}",
              10 * 60_000, "warning", "API p95 latency above its SLO",
              f"p95 latency of {{{{ $labels.job }}}} is above {duration_text(slo.api_latency_p95)} "
              "(slo.api_latency_p95) for 10m.",
              latency_s, "slo.api_latency_p95, in seconds", {"api_latency_p95": duration_text(slo.api_latency_p95)},
              histogram_proof("http_request_duration_seconds", http, latency_s, secs(buckets.http), sel, 10 * 60_000),
              possible=latency_s > 0),
        Alert("ApiErrorRateHigh",
              f"{rate_sum('http_requests_total', eq('status', '5xx'))} / {rate_sum('http_requests_total')} > "
              f"{num(slo.error_rate)}", 5 * 60_000, "critical", "API error ratio above its SLO",
              f"More than {pct(slo.error_rate)} (slo.error_rate) of {{{{ $labels.job }}}}'s requests fail "
              "with 5xx, for 5m.",
              slo.error_rate, "given by slo.error_rate", {"error_rate": slo.error_rate},
              ratio_proof(("http_requests_total", {**http, "status": "5xx"}),
                          ("http_requests_total", {**http, "status": "2xx"}), slo.error_rate, True, sel, 5 * 60_000),
              possible=fireable(slo.error_rate, True)),
        cache_alert("QueryCacheHitRatioLow", "query", slo.cache_hit_ratio.query, "slo.cache_hit_ratio.query"),
        cache_alert("LlmCacheHitRatioLow", "llm", slo.cache_hit_ratio.llm, "slo.cache_hit_ratio.llm"),
        Alert("ApiDbPoolSaturated", f"{selector('app_db_pool_connections_in_use', sel)} > {num(pool_limit)}",
              5 * 60_000, "warning", "API database pool near its size",
              f"{{{{ $labels.instance }}}} holds more than {num(pool_limit)} database connections for 5m: "
              f"{pct(slo.pool_utilization_max)} (slo.pool_utilization_max) of db_pool size {app.db_pool.size} + "
              f"max_overflow {app.db_pool.max_overflow}.",
              pool_limit, "slo.pool_utilization_max x (app.db_pool.size + app.db_pool.max_overflow)",
              {"pool_utilization_max": slo.pool_utilization_max, "size": app.db_pool.size,
               "max_overflow": app.db_pool.max_overflow},
              count_proof("app_db_pool_connections_in_use", series, pool_limit, series, 5 * 60_000)),
        Alert("WorkflowLatencyHigh",
              f"{p95('app_workflow_duration_seconds', sel, 'namespace, job')} > {num(workflow_s)}",
              15 * 60_000, "warning", "Workflow p95 duration above its SLO",
              f"p95 workflow duration of {{{{ $labels.job }}}} is above {duration_text(slo.workflow_p95)} "
              "(slo.workflow_p95) for 15m.",
              workflow_s, "slo.workflow_p95, in seconds", {"workflow_p95": duration_text(slo.workflow_p95)},
              histogram_proof("app_workflow_duration_seconds", series, workflow_s, secs(buckets.workflow), sel,
                              15 * 60_000),
              possible=workflow_s > 0),
    ]
    db_s = seconds(slo.db_query_p95)
    error_max = profile.alerts.db_error_ratio_max
    queries = {**series, "operation": "select"}
    pod = {"namespace": profile.namespace, "pod": f"{job}-7d9f8b6c5d-x2k4q", "container": job}
    pods = {**{"namespace": profile.namespace}}
    pod_re = f'pod=~"{job}-[a-z0-9]+-[a-z0-9]+"'
    containers = (pod_re, 'container!=""', 'container!="POD"')
    cadvisor = {**pod, "job": "kubelet", "instance": "10.0.0.1:10250"}
    ksm = {**pod, "job": "kube-state-metrics", "instance": "kube-state-metrics:8080", "resource": "cpu",
           "unit": "core"}
    by_pod = {"namespace": profile.namespace, "pod": pod["pod"]}
    cpu_limit = 1.0  # cores, in the proof only
    alerts += [
        Alert("ApiDbQueryLatencyHigh",
              f"{p95('app_db_query_duration_seconds', sel, 'namespace, job')} > {num(db_s)}",
              10 * 60_000, "warning", "Database query p95 above its SLO",
              f"p95 of {{{{ $labels.job }}}}'s database round trips is above {duration_text(slo.db_query_p95)} "
              "(slo.db_query_p95) for 10m.",
              db_s, "slo.db_query_p95, in seconds", {"db_query_p95": duration_text(slo.db_query_p95)},
              histogram_proof("app_db_query_duration_seconds", queries, db_s, secs(buckets.db_query), sel,
                              10 * 60_000), possible=db_s > 0),
        Alert("ApiDbErrorRatioHigh",
              f"{rate_sum('app_db_query_errors_total')} / {rate_sum('app_db_query_duration_seconds_count')} > "
              f"{num(error_max)}", 10 * 60_000, "warning", "The app's database queries fail",
              f"More than {pct(error_max)} (alerts.db_error_ratio_max) of {{{{ $labels.job }}}}'s database round "
              "trips raise an error, for 10m. (Rollbacks are not counted: SQLAlchemy's pool rolls back every "
              "connection it takes back, so xact_rollback grows on a healthy app.)",
              error_max, "given by alerts.db_error_ratio_max", {"db_error_ratio_max": error_max},
              ratio_over_total_proof(("app_db_query_errors_total", queries),
                                     ("app_db_query_duration_seconds_count", queries), error_max, sel, 10 * 60_000),
              possible=fireable(error_max, True)),
        Alert("ApiMemoryHigh",
              f"sum by (namespace, pod) ({selector('container_memory_working_set_bytes', pods, *containers)}) > "
              f"{num(slo.memory_max)}", 10 * 60_000, "warning", "An API pod uses more memory than its SLO",
              f"Pod {{{{ $labels.pod }}}} has a working set above {units.format_size_human(slo.memory_max)} "
              f"({num(slo.memory_max)} bytes, slo.memory_max) for 10m.",
              slo.memory_max, "given by slo.memory_max, in bytes",
              {"memory_max": units.format_size_human(slo.memory_max)},
              gauge_proof("container_memory_working_set_bytes", cadvisor, *near(slo.memory_max), by_pod,
                          10 * 60_000)),
        Alert("ApiCpuHigh",
              f"sum by (namespace, pod) (rate({selector('container_cpu_usage_seconds_total', pods, *containers)}"
              f"[{w}])) / sum by (namespace, pod) ("
              f"{selector('kube_pod_container_resource_limits', pods, pod_re, eq('resource', 'cpu'))}) > "
              f"{num(slo.cpu_max)}", 15 * 60_000, "warning", "An API pod runs near its CPU limit",
              f"Pod {{{{ $labels.pod }}}} uses more than {pct(slo.cpu_max)} (slo.cpu_max) of its CPU limit for 15m.",
              slo.cpu_max, "given by slo.cpu_max", {"cpu_max": slo.cpu_max},
              cpu_proof(("container_cpu_usage_seconds_total", cadvisor), ("kube_pod_container_resource_limits", ksm),
                        cpu_limit, slo.cpu_max, by_pod, 15 * 60_000), possible=fireable(slo.cpu_max, True)),
    ]
    scaling = profile.autoscaling.api
    if scaling.max_replicas > scaling.min_replicas:  # a fixed-size HPA is always "at max"
        hpa = {"namespace": profile.namespace, "horizontalpodautoscaler": job}
        ksm = {**hpa, "job": "kube-state-metrics", "instance": "kube-state-metrics:8080"}
        alerts.append(Alert(
            "ApiHpaAtMaxReplicas",
            f"{selector('kube_horizontalpodautoscaler_status_current_replicas', hpa)} >= {scaling.max_replicas}",
            15 * 60_000, "warning", "The API autoscaler is at max replicas",
            f"HorizontalPodAutoscaler {{{{ $labels.horizontalpodautoscaler }}}} has run at "
            f"{scaling.max_replicas} replicas (autoscaling.api.max_replicas) for 15m: it cannot scale further.",
            scaling.max_replicas, "autoscaling.api.max_replicas", {"max_replicas": scaling.max_replicas},
            gauge_proof("kube_horizontalpodautoscaler_status_current_replicas", ksm, scaling.max_replicas,
                        scaling.max_replicas - 1, for_ms=15 * 60_000)))
    return alerts
