"""Prometheus: how the application, vLLM and the API autoscaler ran over the --since window.

Instant queries (`GET /api/v1/query`) over the window, with the metric names perfstack's own alerts use
(generators/metrics.py), selected by the profile's namespace and the app's job (app.deployment):

- query and LLM cache hit ratios (app_cache_requests_total) against slo.cache_hit_ratio -> a larger
  app.query_cache.size / app.llm_cache.size;
- DB pool use (median of app_db_pool_connections_in_use) against slo.pool_utilization_max x
  (db_pool.size + max_overflow) -> a larger app.db_pool.size (with pgbouncer.max_client_conn if the
  checks need it);
- p95 of the API, DB round trips and LLM calls against their SLOs (findings: no single key fixes them);
- vLLM's queue and KV-cache usage;
- the share of the window the API HPA sat at max replicas -> a higher autoscaling.api.max_replicas.
"""

from __future__ import annotations

import math
from typing import Any

from .. import formats
from ..drift.prometheus import Client, redact
from ..profile import Profile
from ..units import format_duration
from .model import Edit, Finding, TargetResult

TARGET = "prometheus"
HPA_AT_MAX_SHARE = 0.25
VLLM_QUEUE_MAX = 1.0
VLLM_KV_CACHE_MAX = 0.9


def _scalar(client: Client, query: str) -> float | None:
    body = client.get("/api/v1/query", query=query)
    if body.get("status") != "success":
        raise ValueError(f"{query}: {body.get('error')}")
    result = body["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) or math.isinf(value) else value


def queries(profile: Profile, window: str) -> dict[str, str]:
    ns = formats.matcher("namespace", profile.namespace)
    sel = f'{ns}, {formats.matcher("job", profile.app.deployment)}'
    hpa = f'{ns}, {formats.matcher("horizontalpodautoscaler", profile.app.deployment)}'

    def ratio(cache: str) -> str:
        return (f'sum(increase(app_cache_requests_total{{{sel}, {formats.matcher("cache", cache)}, result="hit"}}[{window}])) / '
                f'sum(increase(app_cache_requests_total{{{sel}, {formats.matcher("cache", cache)}}}[{window}]))')

    def p95(metric: str) -> str:
        return f"histogram_quantile(0.95, sum by (le) (rate({metric}_bucket{{{sel}}}[{window}])))"

    return {
        "query_cache_hit_ratio": ratio("query"),
        "llm_cache_hit_ratio": ratio("llm"),
        "pool_in_use_median": f"quantile_over_time(0.5, max(app_db_pool_connections_in_use{{{sel}}})[{window}:])",
        "api_p95_s": p95("http_request_duration_seconds"),
        "db_query_p95_s": p95("app_db_query_duration_seconds"),
        "llm_p95_s": p95("app_llm_request_duration_seconds"),
        "vllm_waiting_avg": f'avg_over_time(sum(vllm:num_requests_waiting{{{ns}}})[{window}:])',
        "vllm_kv_cache_max": f'max_over_time(max(vllm:kv_cache_usage_perc{{{ns}}})[{window}:])',
        "hpa_at_max_share": (f"avg_over_time((max(kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}}) >= bool "
                             f"max(kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}}))[{window}:])"),
    }


def findings_from(values: dict[str, float | None], profile: Profile, window: str) -> list[Finding]:
    findings: list[Finding] = []
    slo, app = profile.slo, profile.app
    for cache, target in (("query", slo.cache_hit_ratio.query), ("llm", slo.cache_hit_ratio.llm)):
        ratio = values.get(f"{cache}_cache_hit_ratio")
        if ratio is not None and ratio < target:
            size = getattr(app, f"{cache}_cache").size
            reason = f"{cache} cache hit ratio {ratio:.1%} over {window} under slo.cache_hit_ratio.{cache} {target:.0%}"
            findings.append(Finding(TARGET, f"{cache}_cache", f"app.{cache}_cache",
                                    f"{reason}: double app.{cache}_cache.size", {"hit_ratio": round(ratio, 4)},
                                    edits=[Edit(f"app.{cache}_cache.size", size * 2, size, reason)]))
    in_use = values.get("pool_in_use_median")
    pool = app.db_pool.size + app.db_pool.max_overflow
    if in_use is not None and in_use > slo.pool_utilization_max * pool:
        new_size = math.ceil(in_use / slo.pool_utilization_max) - app.db_pool.max_overflow
        reason = (f"median {in_use:.0f} of {pool} pooled connections in use over {window} "
                  f"(over slo.pool_utilization_max {slo.pool_utilization_max:.0%})")
        replicas = profile.autoscaling.api.max_replicas
        needed = math.ceil(replicas * (new_size + app.db_pool.max_overflow) / profile.pgbouncer.replicas / 100) * 100
        findings.append(Finding(TARGET, "db_pool", "app.db_pool.size", f"{reason}: raise app.db_pool.size to {new_size}",
                                {"in_use_median": in_use, "pool": pool},
                                edits=[Edit("app.db_pool.size", new_size, app.db_pool.size, reason)],
                                companions=[Edit("pgbouncer.max_client_conn", max(needed, profile.pgbouncer.max_client_conn),
                                                 profile.pgbouncer.max_client_conn,
                                                 f"room for {replicas} API replicas x db_pool {new_size} + overflow")]))
    for key, slo_key, limit_ms in (("api_p95_s", "api_latency_p95", slo.api_latency_p95),
                                   ("db_query_p95_s", "db_query_p95", slo.db_query_p95),
                                   ("llm_p95_s", "llm_latency_p95", slo.llm_latency_p95)):
        value = values.get(key)
        if value is not None and value * 1000 > limit_ms:
            findings.append(Finding(TARGET, "latency", slo_key,
                                    f"p95 {value * 1000:.0f}ms over {window} is above slo.{slo_key} "
                                    f"{format_duration(limit_ms)}", {"p95_s": value, "slo_ms": limit_ms}))
    waiting, kv = values.get("vllm_waiting_avg"), values.get("vllm_kv_cache_max")
    if waiting is not None and waiting > VLLM_QUEUE_MAX:
        findings.append(Finding(TARGET, "llm_queue", "vllm", f"on average {waiting:.1f} requests waited in vLLM's "
                                f"queue over {window}" + (f", with the KV cache up to {kv:.0%} full" if kv else "")
                                + ": more replicas (autoscaling.llm) or a larger llm.max_num_seqs",
                                {"waiting_avg": waiting, "kv_cache_max": kv}))
    elif kv is not None and kv > VLLM_KV_CACHE_MAX:
        findings.append(Finding(TARGET, "llm_kv_cache", "vllm", f"vLLM's KV cache reached {kv:.0%} over {window}",
                                {"kv_cache_max": kv}))
    share = values.get("hpa_at_max_share")
    scaling = profile.autoscaling.api
    if share is not None and share > HPA_AT_MAX_SHARE and scaling.max_replicas > scaling.min_replicas:
        new_max = math.ceil(scaling.max_replicas * 1.5)
        reason = f"the API HPA sat at max_replicas {scaling.max_replicas} for {share:.0%} of {window}"
        needed = math.ceil(new_max * (app.db_pool.size + app.db_pool.max_overflow) / profile.pgbouncer.replicas / 100) * 100
        findings.append(Finding(TARGET, "hpa_at_max", "autoscaling.api.max_replicas",
                                f"{reason}: raise autoscaling.api.max_replicas to {new_max}", {"share_at_max": share},
                                edits=[Edit("autoscaling.api.max_replicas", new_max, scaling.max_replicas, reason)],
                                companions=[Edit("pgbouncer.max_client_conn", max(needed, profile.pgbouncer.max_client_conn),
                                                 profile.pgbouncer.max_client_conn,
                                                 f"room for {new_max} API replicas' pools")]))
    return findings


def check(profile: Profile, url: str, window: str) -> TargetResult:
    result = TargetResult(TARGET, redact(url))
    client = Client(url)
    values: dict[str, Any] = {}
    try:
        for name, query in queries(profile, window).items():
            values[name] = _scalar(client, query)
    except Exception as exc:  # noqa: BLE001 - reported; the other targets go on
        result.error = f"{type(exc).__name__}: {str(exc).strip()}"
        return result
    missing = sorted(k for k, v in values.items() if v is None)
    if missing:
        result.notes.append(f"no data over {window} for: {', '.join(missing)}")
    result.findings.extend(findings_from(values, profile, window))
    return result
