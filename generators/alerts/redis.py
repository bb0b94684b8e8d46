"""Redis alerts (oliver006/redis_exporter)."""

from __future__ import annotations

import math
from collections.abc import Callable

from .. import units
from ..bundle import Parts
from ..profile import Profile
from .base import (
    RATE_WINDOW_MS,
    Alert,
    Proof,
    ceil_to,
    duration_text,
    eq,
    gauge_proof,
    gauge_values,
    horizon,
    increase_proof,
    num,
    pct,
    rate_proof,
    sample_count,
    seconds,
    selector,
    series_of,
    window,
)


def cache_turnover_per_second(profile: Profile) -> float:
    """Keys the application's caches replace per second when entries expire by TTL: size / ttl, summed."""
    caches = (profile.app.query_cache, profile.app.llm_cache)
    return sum(cache.size / seconds(cache.ttl) for cache in caches if cache.ttl)


def oom_proof(series: dict[str, str], out: dict[str, str], for_ms: int) -> Callable[[int], Proof]:
    """Redis scraped all along (redis_up 1); the OOM counter appears, already at 3, once the offset window
    has data, then grows (fires at once); healthy: an old count that does not grow (quiet, even while the
    exporter's first window has no past to compare with)."""
    def build(interval_ms: int) -> Proof:
        active = ceil_to(RATE_WINDOW_MS, interval_ms) + interval_ms
        n = sample_count(interval_ms, horizon(for_ms, interval_ms, active))
        up, errors = series_of("redis_up", series), series_of("redis_errors_total", {**series, "err": "OOM"})
        skip = active // interval_ms
        return Proof({up: gauge_values(1, n), errors: f"_x{skip} 3+1x{n - skip}"},
                     {up: gauge_values(1, n), errors: gauge_values(5, n)}, active, out)
    return build


def redis_alerts(profile: Profile, parts: Parts) -> list[Alert]:
    r = profile.redis
    ns = {"namespace": profile.namespace}
    series = {**ns, "instance": "redis-exporter:9121", "job": "redis-exporter"}
    by_instance = {**ns, "instance": series["instance"]}
    util = profile.slo.pool_utilization_max
    maxmemory = parts.redis.value("maxmemory")
    memory_limit = int(util * maxmemory)  # whole bytes
    evicts = r.maxmemory_policy != "noeviction"
    w = window()
    alerts = [
        Alert("RedisDown", f"{selector('redis_up', ns)} == 0", 60_000, "critical", "Redis is unreachable",
              "redis_exporter {{ $labels.instance }} cannot connect to Redis (redis_up = 0) for 1m.",
              0, "the exporter's redis_up is 0 when it cannot connect", {},
              gauge_proof("redis_up", series, 0, 1, for_ms=60_000)),
        Alert("RedisRejectedConnections",
              f"sum by (namespace, instance) (increase({selector('redis_rejected_connections_total', ns)}[{w}])) > 0",
              60_000, "warning", "Redis rejects connections",
              f"Redis {{{{ $labels.instance }}}} rejected connections in the last {w} (threshold 0): "
              "maxclients is reached.", 0, "any rejected connection means maxclients is reached", {},
              increase_proof("redis_rejected_connections_total", series, by_instance, 60_000)),
    ]
    if evicts:
        turnover = cache_turnover_per_second(profile)
        alerts.append(Alert(
            "RedisEvictionsHigh",
            f"sum by (namespace, instance) (rate({selector('redis_evicted_keys_total', ns)}[{w}])) > {num(turnover)}",
            10 * 60_000, "warning", "Redis evicts keys faster than the caches expire them",
            f"Redis {{{{ $labels.instance }}}} evicts more than {num(turnover)} keys/s ({r.maxmemory_policy}) "
            "for 10m: faster than the application's caches replace entries by TTL (query_cache "
            f"{profile.app.query_cache.size}/{duration_text(profile.app.query_cache.ttl)} + llm_cache "
            f"{profile.app.llm_cache.size}/{duration_text(profile.app.llm_cache.ttl)}); maxmemory "
            f"{units.format_size_human(maxmemory)} is too small for them.",
            turnover, "app.query_cache.size / ttl + app.llm_cache.size / ttl (keys per second)",
            {"query_cache": f"{profile.app.query_cache.size}/{duration_text(profile.app.query_cache.ttl)}",
             "llm_cache": f"{profile.app.llm_cache.size}/{duration_text(profile.app.llm_cache.ttl)}"},
            rate_proof("redis_evicted_keys_total", series, turnover, by_instance, 10 * 60_000)))
    else:  # noeviction: memory near maxmemory is the warning before writes are refused
        alerts.append(Alert(
            "RedisMemoryHigh", f"{selector('redis_memory_used_bytes', ns)} > {num(memory_limit)}", 5 * 60_000,
            "critical", "Redis memory near maxmemory",
            f"Redis {{{{ $labels.instance }}}} uses more than {units.format_size_human(int(memory_limit))} "
            f"({num(memory_limit)} bytes) for 5m: {pct(util)} (slo.pool_utilization_max) of maxmemory "
            f"{units.format_size_human(maxmemory)}; at maxmemory the noeviction policy refuses writes. "
            "(An evicting policy gets no such alert: a full cache is doing its job; RedisRejectedWrites "
            "fires when it cannot keep up.)",
            memory_limit, "slo.pool_utilization_max x rendered redis maxmemory",
            {"pool_utilization_max": util, "maxmemory": units.format_size_human(maxmemory)},
            gauge_proof("redis_memory_used_bytes", series, math.floor(memory_limit) + 1, math.floor(memory_limit),
                        for_ms=5 * 60_000)))
    oom = selector("redis_errors_total", ns, eq("err", "OOM"))
    up = selector("redis_up", ns)
    by = "sum by (namespace, instance)"
    alerts.append(Alert(
        "RedisRejectedWrites",
        # The exporter creates redis_errors_total{err="OOM"} only at the first refused write: where it did
        # not exist 5m ago while Redis was scraped (redis_up did), it counts from 0, so the first burst fires.
        f"(({by} ({oom}) or {by} ({up}) * 0) - ({by} ({oom} offset {w}) or {by} ({up} offset {w}) * 0)) > 0",
        60_000, "critical", "Redis refuses writes at maxmemory",
        f"Redis {{{{ $labels.instance }}}} refused writes with OOM in the last {w} (threshold 0): maxmemory "
        f"{units.format_size_human(maxmemory)} is full and the {r.maxmemory_policy} policy "
        + ("is noeviction." if not evicts else "cannot free memory fast enough (or finds no key to evict)."),
        0, "any OOM error is a lost write", {"maxmemory_policy": r.maxmemory_policy},
        oom_proof(series, by_instance, 60_000)))
    return alerts
