"""Redis alerts (oliver006/redis_exporter)."""

from __future__ import annotations

import math

from .. import units
from ..bundle import Parts
from ..profile import Profile
from .base import Alert, duration_text, eq, gauge_proof, increase_proof, num, pct, rate_proof, seconds, selector, window


def cache_turnover_per_second(profile: Profile) -> float:
    """Keys the application's caches replace per second when entries expire by TTL: size / ttl, summed."""
    caches = (profile.app.query_cache, profile.app.llm_cache)
    return sum(cache.size / seconds(cache.ttl) for cache in caches if cache.ttl)


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
        Alert("RedisMemoryHigh", f"{selector('redis_memory_used_bytes', ns)} > {num(memory_limit)}", 5 * 60_000,
              "warning" if evicts else "critical", "Redis memory near maxmemory",
              f"Redis {{{{ $labels.instance }}}} uses more than {units.format_size_human(int(memory_limit))} "
              f"({num(memory_limit)} bytes) for 5m: {pct(util)} (slo.pool_utilization_max) of maxmemory "
              f"{units.format_size_human(maxmemory)}; at maxmemory the {r.maxmemory_policy} policy "
              + ("evicts keys." if evicts else "refuses writes."),
              memory_limit, "slo.pool_utilization_max x rendered redis maxmemory",
              {"pool_utilization_max": util, "maxmemory": units.format_size_human(maxmemory)},
              gauge_proof("redis_memory_used_bytes", series, math.floor(memory_limit) + 1, math.floor(memory_limit),
                          for_ms=5 * 60_000)),
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
    else:
        alerts.append(Alert(
            "RedisRejectedWrites",
            f"sum by (namespace, instance) (increase({selector('redis_errors_total', ns, eq('err', 'OOM'))}[{w}])) > 0",
            60_000, "critical", "Redis refuses writes at maxmemory",
            f"Redis {{{{ $labels.instance }}}} refused writes with OOM in the last {w} (threshold 0): "
            f"maxmemory {units.format_size_human(maxmemory)} is full and the policy is noeviction.",
            0, "noeviction: any OOM error is a lost write", {"maxmemory_policy": r.maxmemory_policy},
            increase_proof("redis_errors_total", {**series, "err": "OOM"}, by_instance, 60_000)))
    return alerts
