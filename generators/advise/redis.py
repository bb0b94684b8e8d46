"""Redis: INFO stats and memory (hit ratio, evictions, expirations, fragmentation, used vs maxmemory).

Read with redis-py: INFO and DBSIZE only (no key is read, no secret asked for), short timeouts.

A cache that evicts and misses its SLO (slo.cache_hit_ratio.query: the Redis behind the query cache) is
too small for its working set: with LRU over a working set W and room for C, about C / W of lookups hit,
so the working set is about maxmemory / hit ratio. The proposal sizes redis.maxmemory to hold it (with
10 % headroom, rounded up to a power of two MiB) and, as a companion the checks may need, a Redis host
large enough for that maxmemory. A cache that misses without evicting loses its keys to expiry: the
proposal is a longer app.query_cache.ttl.
"""

from __future__ import annotations

import math
from typing import Any

from ..drift.redis import redact
from ..profile import Profile
from ..units import MIB, format_duration, format_size_human
from .model import Edit, Finding, TargetResult

TARGET = "redis"
TIMEOUT_S = 3
MIN_LOOKUPS = 1000
FRAGMENTATION_MAX = 1.5
FRAGMENTATION_MIN_BYTES = 64 * MIB
GROWTH_CAP = 16  # never propose more than 16x today's maxmemory from one run
HOST_HEADROOM = 4 / 3  # the checks keep a quarter of the host for Redis itself (without persistence)


def read(url: str) -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S,
                                  decode_responses=True)
    try:
        info = {**client.info("stats"), **client.info("memory")}
        info["dbsize"] = int(client.dbsize())
    finally:
        client.close()
    return info


def _pow2_mib(num_bytes: float) -> int:
    return int(2 ** math.ceil(math.log2(max(1.0, num_bytes / MIB)))) * MIB


def _size(num_bytes: int) -> str:
    return f"{num_bytes // 2**30}GiB" if num_bytes % 2**30 == 0 else f"{num_bytes // MIB}MiB"


def findings_from(info: dict[str, Any], profile: Profile) -> list[Finding]:
    findings: list[Finding] = []
    hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
    evicted, expired = int(info.get("evicted_keys", 0)), int(info.get("expired_keys", 0))
    used, maxmemory = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    slo = profile.slo.cache_hit_ratio.query
    evidence = {"keyspace_hits": hits, "keyspace_misses": misses, "evicted_keys": evicted, "expired_keys": expired,
                "used_memory": used, "maxmemory": maxmemory, "keys": info.get("dbsize")}
    lookups = hits + misses
    if lookups >= MIN_LOOKUPS:
        ratio = hits / lookups
        evidence["hit_ratio"] = round(ratio, 4)
        if ratio < slo and evicted > 0 and maxmemory:
            wanted = min(maxmemory / max(ratio, 1 / GROWTH_CAP) * 1.1, maxmemory * GROWTH_CAP)
            new = _pow2_mib(wanted)
            reason = (f"hit ratio {ratio:.1%} under slo.cache_hit_ratio.query {slo:.0%} with {evicted} keys evicted "
                      f"at maxmemory {format_size_human(maxmemory)}")
            host = max(profile.hardware.redis.memory, _pow2_mib(new * HOST_HEADROOM))
            findings.append(Finding(
                TARGET, "cache_too_small", "redis.maxmemory",
                f"{reason}: the working set is about {format_size_human(int(maxmemory / max(ratio, 1e-9)))}; "
                f"raise redis.maxmemory to {_size(new)}", evidence,
                edits=[Edit("redis.maxmemory", _size(new), _profile_maxmemory(profile), reason)],
                companions=[Edit("hardware.redis.memory", _size(host), _size(profile.hardware.redis.memory),
                                 f"room for redis.maxmemory {_size(new)}")]))
        elif ratio < slo and evicted == 0 and expired > 0:
            ttl = profile.app.query_cache.ttl * 2
            reason = (f"hit ratio {ratio:.1%} under slo.cache_hit_ratio.query {slo:.0%} with no evictions and "
                      f"{expired} keys expired")
            findings.append(Finding(TARGET, "cache_ttl", "app.query_cache.ttl",
                                    f"{reason}: keys expire before they are read again; double app.query_cache.ttl",
                                    evidence, edits=[Edit("app.query_cache.ttl", format_duration(ttl),
                                                          format_duration(profile.app.query_cache.ttl), reason)]))
    fragmentation = float(info.get("mem_fragmentation_ratio", 0) or 0)
    if fragmentation > FRAGMENTATION_MAX and used >= FRAGMENTATION_MIN_BYTES:
        findings.append(Finding(TARGET, "fragmentation", "redis", f"memory fragmentation ratio {fragmentation:.2f} "
                                f"over {FRAGMENTATION_MAX}: the process holds much more than its data (restart it or "
                                "enable activedefrag)", {"mem_fragmentation_ratio": fragmentation, "used_memory": used}))
    return findings


def _profile_maxmemory(profile: Profile) -> Any:
    value = profile.redis.maxmemory
    return f"{value:.0%}" if isinstance(value, float) else _size(int(value)) if value % MIB == 0 else value


def check(profile: Profile, url: str) -> TargetResult:
    result = TargetResult(TARGET, redact(url))
    try:
        info = read(url)
    except Exception as exc:  # noqa: BLE001 - reported; the other targets go on
        result.error = f"{type(exc).__name__}: {str(exc).strip()}"
        return result
    result.notes.append(f"hits {info.get('keyspace_hits')}, misses {info.get('keyspace_misses')}, evicted "
                        f"{info.get('evicted_keys')}, expired {info.get('expired_keys')}, used "
                        f"{format_size_human(int(info.get('used_memory', 0)))} of maxmemory "
                        f"{format_size_human(int(info.get('maxmemory', 0)))}, {info.get('dbsize')} keys "
                        "(counters since the server started or CONFIG RESETSTAT)")
    result.findings.extend(findings_from(info, profile))
    return result
