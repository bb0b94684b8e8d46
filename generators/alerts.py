"""Prometheus alert rules whose thresholds are the profile's own numbers, and the promtool tests that prove them.

One function per component returns its alerts (kubernetes-mixin's one-file-per-component habit); every
threshold is computed from the profile or from another target's pure rule (PostgreSQL's max_connections,
PgBouncer's server connections, Redis's maxmemory), never repeated here. One transform, `shared`, applied
to the finished list, adds what every alert carries: the environment and component labels, the runbook
link, and the `for` scaling a test profile may ask for.

Each alert carries its own proof: input series that cross the threshold and series just under it, and
the time at which the expression first holds. `tests(profile)` turns them into promtool unit tests
(prometheus/alerts_test.yaml): not firing one evaluation before the `for` window ends, firing at its
end, and the series under the threshold never firing.

Metric names: generators/metrics.py (the exporters' names and the application's own).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from . import pgbouncer, postgres, redis, units
from .bundle import Part, Setting
from .k8s import LLM_SERVER, dump_yaml, metadata
from .profile import Profile

TARGET = "alerts"
RULES_FILE = "prometheus/alerts.yaml"
TESTS_FILE = "prometheus/alerts_test.yaml"
RULE_NAME = "perfstack-alerts"  # the PrometheusRule object
# rate() windows: 5 minutes holds several scrapes at any usual scrape interval (15 s to 1 m), so one
# missed scrape does not blank a rate, and a burst shorter than the window is averaged out.
RATE_WINDOW_MS = 5 * 60_000
# Prometheus's own default evaluation_interval; promtool tests step at the group's interval or this.
DEFAULT_EVALUATION_MS = 60_000
# vLLM's metric label naming the served model; the API's job label is its Deployment's name.
MODEL_LABEL = "model_name"
OLLAMA_PROBE_PATH = "/api/version"  # Ollama has no /metrics; this answers as soon as the server is up
# A hit ratio over a trickle is noise (a restarted database reads its catalog from disk once): the cache
# alert waits for at least this many blocks read from outside shared_buffers per second (80 kB/s at 8 kB).
POSTGRES_MIN_BLOCK_READS_PER_SECOND = 10
# The ratio proofs' traffic per evaluation step: the first rate() (one step spread over the whole 5m
# window) already clears the noise floor above (6% of 10^6 / 300 s = 200 blocks/s).
PROOF_EVENTS_PER_STEP = 1_000_000


@dataclass(frozen=True)
class Proof:
    """Series that make an alert's expression hold (`bad`) and series just under its threshold (`good`)."""

    bad: dict[str, str]  # series selector -> promtool values
    good: dict[str, str]
    active_ms: int  # first evaluation at which `bad` makes the expression hold
    labels: dict[str, str]  # labels the expression yields for `bad` (alert labels come on top)


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_ms: int
    severity: str  # critical | warning
    summary: str
    description: str  # names the threshold; may use {{ $labels.NAME }} only
    threshold: float
    rule: str  # how the threshold was derived (explain)
    inputs: dict[str, Any]
    proof: Callable[[int], Proof]  # evaluation interval (ms) -> proof
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    possible: bool = True  # False: no series can cross the threshold (a share below 0, a latency above 0 s)


# ---------------------------------------------------------------- PromQL and promtool helpers
def num(value: float) -> str:
    """A number as PromQL and promtool read it: integers bare, others to 12 significant digits
    (0.8 x 197 is 157.6, not 157.60000000000002)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{float(value):.12g}"


def selector(metric: str, matchers: dict[str, str], *extra: str) -> str:
    parts = [f'{key}="{value}"' for key, value in matchers.items()] + list(extra)
    return metric + "{" + ", ".join(parts) + "}"


def eq(label: str, value: str) -> str:
    return f'{label}="{value}"'


def _series(metric: str, labels: dict[str, str]) -> str:
    return selector(metric, dict(sorted(labels.items())))


def _gauge(value: float, samples: int) -> str:
    return f"{num(value)}x{samples}"


def _counter(increment: float, samples: int) -> str:
    return f"0+{num(increment)}x{samples}"


def _seconds(ms: int) -> float:
    return ms / 1000


def _samples(interval_ms: int, until_ms: int) -> int:
    return until_ms // interval_ms + 1


def _horizon(alert_for_ms: int, interval_ms: int, active_ms: int) -> int:
    """Data must last past the moment the alert fires, with room for the check after it."""
    return active_ms + _ceil_to(alert_for_ms, interval_ms) + 3 * interval_ms


def _ceil_to(ms: int, step: int) -> int:
    return -(-ms // step) * step


def _shares(threshold: float, above: bool) -> tuple[float, float]:
    """(firing, healthy) values of a share in [0, 1] around its threshold: 1 point past it on either side,
    less near 0 or 1, and exactly 0 or 1 when the healthy side is the end of the range."""
    up, down = min(0.01, (1 - threshold) / 2), min(0.01, threshold / 2)
    return (threshold + up, threshold - down) if above else (threshold - down, threshold + up)


def fireable(threshold: float, above: bool) -> bool:
    """A share (0..1) can exceed any threshold under 1 and fall below any threshold over 0."""
    return threshold < 1 if above else threshold > 0


def gauge_proof(metric: str, labels: dict[str, str], bad: float, good: float, out: dict[str, str] | None = None,
                for_ms: int = 0, zeros: tuple[str, ...] = ()) -> Callable[[int], Proof]:
    """A gauge held at `bad` (fires) or `good` (does not); `zeros`: metrics the expression adds, held at 0."""
    def build(interval_ms: int) -> Proof:
        n = _samples(interval_ms, _horizon(for_ms, interval_ms, 0))
        series = _series(metric, labels)
        rest = {_series(other, labels): _gauge(0, n) for other in zeros}
        return Proof({series: _gauge(bad, n), **rest}, {series: _gauge(good, n), **rest}, 0,
                     out if out is not None else labels)
    return build


def count_proof(metric: str, labels: dict[str, str], threshold: float, out: dict[str, str],
                for_ms: int, zeros: tuple[str, ...] = ()) -> Callable[[int], Proof]:
    """`sum(...) > threshold` over a count: the next whole number fires, the threshold's floor does not."""
    return gauge_proof(metric, labels, math.floor(threshold) + 1, math.floor(threshold), out, for_ms, zeros)


def ratio_proof(numerator: tuple[str, dict[str, str]], rest: tuple[str, dict[str, str]], threshold: float,
                above: bool, out: dict[str, str], for_ms: int) -> Callable[[int], Proof]:
    """Two counters whose rates give share = numerator / (numerator + rest); `above`: the alert fires
    when the share exceeds the threshold, else when it falls below it."""
    bad_share, good_share = _shares(threshold, above)

    def build(interval_ms: int) -> Proof:
        n = _samples(interval_ms, _horizon(for_ms, interval_ms, interval_ms))
        num_series, rest_series = _series(*numerator), _series(*rest)

        per_step = PROOF_EVENTS_PER_STEP

        def values(share: float) -> dict[str, str]:
            return {num_series: _counter(per_step * share, n), rest_series: _counter(per_step * (1 - share), n)}
        return Proof(values(bad_share), values(good_share), interval_ms, out)
    return build


def histogram_proof(metric: str, labels: dict[str, str], threshold_s: float, out: dict[str, str],
                    for_ms: int) -> Callable[[int], Proof]:
    """Buckets at the threshold and twice it: 94 of 100 observations at or under the threshold put the
    p95 at 1.17x the threshold (fires); 96 of 100 put it at 0.99x (does not)."""
    def build(interval_ms: int) -> Proof:
        n = _samples(interval_ms, _horizon(for_ms, interval_ms, interval_ms))

        def values(under: int) -> dict[str, str]:
            return {_series(f"{metric}_bucket", {**labels, "le": le}): _counter(count, n)
                    for le, count in ((num(threshold_s), under), (num(2 * threshold_s), 100), ("+Inf", 100))}
        return Proof(values(94), values(96), interval_ms, out)
    return build


def rate_proof(metric: str, labels: dict[str, str], per_second: float, out: dict[str, str],
               for_ms: int) -> Callable[[int], Proof]:
    """`rate(counter[window]) > per_second`. A counter starting at 0 shows rate x elapsed / window until
    the window fills, so the proof's rate sits between the threshold and threshold x window / (the
    evaluation before the window fills): the expression holds exactly once the window is full."""
    def build(interval_ms: int) -> Proof:
        series = _series(metric, labels)
        n = _samples(interval_ms, _horizon(for_ms, interval_ms, _ceil_to(RATE_WINDOW_MS, interval_ms)))
        if per_second == 0:  # `> 0`: any event holds from the second sample on; none never does
            return Proof({series: _counter(1, n)}, {series: _gauge(0, n)}, interval_ms, out)
        active = _ceil_to(RATE_WINDOW_MS, interval_ms)
        before = active - interval_ms
        bad = per_second * (1 + RATE_WINDOW_MS / before) / 2 if before > 0 else 2 * per_second
        good = per_second * (1 - min(0.01, interval_ms / (2 * RATE_WINDOW_MS)))
        step = _seconds(interval_ms)
        return Proof({series: _counter(bad * step, n)}, {series: _counter(good * step, n)}, active, out)
    return build


def increase_proof(metric: str, labels: dict[str, str], out: dict[str, str], for_ms: int) -> Callable[[int], Proof]:
    """`increase(counter[window]) > 0`: one event per evaluation fires; a counter that stays put does not."""
    def build(interval_ms: int) -> Proof:
        n = _samples(interval_ms, _horizon(for_ms, interval_ms, interval_ms))
        series = _series(metric, labels)
        return Proof({series: _counter(1, n)}, {series: _gauge(0, n)}, interval_ms, out)
    return build


def _window() -> str:
    return units.format_duration(RATE_WINDOW_MS)


def _p95(metric: str, sel: dict[str, str], by: str) -> str:
    return (f"histogram_quantile(0.95, sum by ({by}, le) "
            f"(rate({selector(metric + '_bucket', sel)}[{_window()}])))")


def _pct(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def _duration_text(ms: int) -> str:
    return units.format_duration(ms)


# ---------------------------------------------------------------- PostgreSQL (postgres_exporter)
def postgres_alerts(profile: Profile) -> list[Alert]:
    ns = {"namespace": profile.namespace}
    series = {**ns, "instance": "postgres-exporter:9187", "job": "postgres-exporter"}
    db = {**series, "datname": "app"}
    by_db = {**ns, "instance": series["instance"], "datname": "app"}
    no_templates = 'datname!~"template.*"'
    util = profile.slo.pool_utilization_max
    max_conn = postgres.max_connections(postgres.Inputs.from_profile(profile)).value
    reserved = profile.postgres.superuser_reserved_connections
    conn_limit = util * (max_conn - reserved)
    hit_min = profile.alerts.postgres_cache_hit_ratio_min
    rollback_max = profile.alerts.postgres_rollback_ratio_max
    w = _window()

    def rate_sum(metric: str) -> str:
        return f"sum by (namespace, instance, datname) (rate({selector(metric, ns, no_templates)}[{w}]))"

    alerts = [
        Alert("PostgresDown", f"{selector('pg_up', ns)} == 0", 60_000, "critical",
              "PostgreSQL is unreachable",
              "postgres_exporter {{ $labels.instance }} cannot connect to PostgreSQL (pg_up = 0) for 1m.",
              0, "the exporter's pg_up is 0 when it cannot connect", {},
              gauge_proof("pg_up", series, 0, 1, for_ms=60_000)),
        Alert("PostgresExporterScrapeErrors", f"{selector('pg_exporter_last_scrape_error', ns)} > 0", 10 * 60_000,
              "warning", "postgres_exporter fails to scrape PostgreSQL",
              "postgres_exporter {{ $labels.instance }} has reported a scrape error for 10m: "
              "the PostgreSQL metrics behind the other alerts are missing.",
              0, "pg_exporter_last_scrape_error is 1 while the last scrape failed", {},
              gauge_proof("pg_exporter_last_scrape_error", series, 1, 0, for_ms=10 * 60_000)),
        Alert("PostgresConnectionsHigh",
              f"sum by (namespace, instance) ({selector('pg_stat_activity_count', ns)}) > {num(conn_limit)}",
              5 * 60_000, "warning", "PostgreSQL connections near max_connections",
              f"PostgreSQL {{{{ $labels.instance }}}} has more than {num(conn_limit)} connections for 5m: "
              f"{_pct(util)} (slo.pool_utilization_max) of max_connections {max_conn} minus {reserved} "
              "superuser_reserved_connections.",
              conn_limit, "slo.pool_utilization_max x (max_connections - superuser_reserved_connections)",
              {"pool_utilization_max": util, "max_connections": max_conn, "superuser_reserved_connections": reserved},
              count_proof("pg_stat_activity_count", {**db, "state": "active"}, conn_limit,
                          {**ns, "instance": series["instance"]}, 5 * 60_000)),
        Alert("PostgresCacheHitRatioLow",
              f"{rate_sum('pg_stat_database_blks_hit')} / ({rate_sum('pg_stat_database_blks_hit')} + "
              f"{rate_sum('pg_stat_database_blks_read')}) < {num(hit_min)} and "
              f"{rate_sum('pg_stat_database_blks_read')} > {POSTGRES_MIN_BLOCK_READS_PER_SECOND}",
              15 * 60_000, "warning", "PostgreSQL reads miss shared_buffers",
              f"Database {{{{ $labels.datname }}}} on {{{{ $labels.instance }}}} finds fewer than {_pct(hit_min)} "
              "(alerts.postgres_cache_hit_ratio_min) of the blocks it reads in shared_buffers for 15m: "
              "the working set outgrew the memory pgtune sized. (Quiet while fewer than "
              f"{POSTGRES_MIN_BLOCK_READS_PER_SECOND} blocks/s are read from disk.)",
              hit_min, "given by alerts.postgres_cache_hit_ratio_min", {"postgres_cache_hit_ratio_min": hit_min},
              ratio_proof(("pg_stat_database_blks_hit", db), ("pg_stat_database_blks_read", db), hit_min,
                          False, by_db, 15 * 60_000), possible=fireable(hit_min, False)),
        Alert("PostgresDeadlocks",
              f"sum by (namespace, instance, datname) (increase({selector('pg_stat_database_deadlocks', ns)}[{w}]))"
              " > 0", 60_000, "warning", "PostgreSQL transactions deadlock",
              f"Database {{{{ $labels.datname }}}} on {{{{ $labels.instance }}}} has had deadlocks in the last {w} "
              "(threshold 0): PostgreSQL aborted one transaction of each.",
              0, "any deadlock is an application ordering bug", {},
              increase_proof("pg_stat_database_deadlocks", db, by_db, 60_000)),
        Alert("PostgresRollbackRatioHigh",
              f"{rate_sum('pg_stat_database_xact_rollback')} / ({rate_sum('pg_stat_database_xact_commit')} + "
              f"{rate_sum('pg_stat_database_xact_rollback')}) > {num(rollback_max)}",
              10 * 60_000, "warning", "Many PostgreSQL transactions roll back",
              f"More than {_pct(rollback_max)} (alerts.postgres_rollback_ratio_max) of the transactions in "
              "{{ $labels.datname }} on {{ $labels.instance }} roll back, for 10m.",
              rollback_max, "given by alerts.postgres_rollback_ratio_max",
              {"postgres_rollback_ratio_max": rollback_max},
              ratio_proof(("pg_stat_database_xact_rollback", db), ("pg_stat_database_xact_commit", db),
                          rollback_max, True, by_db, 10 * 60_000), possible=fireable(rollback_max, True)),
    ]
    idle_ms = profile.postgres.idle_in_transaction_session_timeout
    if idle_ms:  # 0 disables the timeout: no limit to alert on
        limit_s = _seconds(idle_ms)
        alerts.append(Alert(
            "PostgresLongTransaction",
            f"max by (namespace, instance, datname) ({selector('pg_stat_activity_max_tx_duration', ns)}) > "
            f"{num(limit_s)}", 60_000, "warning", "A PostgreSQL transaction stays open too long",
            f"A transaction in {{{{ $labels.datname }}}} on {{{{ $labels.instance }}}} has been open longer than "
            f"{_duration_text(idle_ms)} (postgres.idle_in_transaction_session_timeout) for 1m: it holds locks "
            "and stops vacuum.",
            limit_s, "postgres.idle_in_transaction_session_timeout, in seconds",
            {"idle_in_transaction_session_timeout": _duration_text(idle_ms)},
            gauge_proof("pg_stat_activity_max_tx_duration", {**db, "state": "active"}, limit_s + 1, limit_s,
                        by_db, 60_000)))
    return alerts


# ---------------------------------------------------------------- PgBouncer (prometheus-community pgbouncer_exporter)
def pgbouncer_alerts(profile: Profile) -> list[Alert]:
    pb = profile.pgbouncer
    ns = {"namespace": profile.namespace}
    series = {**ns, "instance": "pgbouncer-exporter:9127", "job": "pgbouncer-exporter"}
    pool = {**series, "database": pb.databases[0], "user": "app"}
    by_pool = {**ns, "instance": series["instance"], "database": pb.databases[0]}
    util = profile.slo.pool_utilization_max
    wait_s = _seconds(pb.reserve_pool_timeout)
    servers = pgbouncer.server_connections(profile)
    server_limit = util * servers
    client_limit = util * pb.max_client_conn

    def total(by: str, *metrics: str) -> str:
        return " + ".join(f"sum by ({by}) ({selector(m, ns)})" for m in metrics)

    return [
        Alert("PgBouncerDown", f"{selector('pgbouncer_up', ns)} == 0", 60_000, "critical",
              "PgBouncer is unreachable",
              "pgbouncer_exporter {{ $labels.instance }} cannot reach PgBouncer's admin console "
              "(pgbouncer_up = 0) for 1m.", 0, "the exporter's pgbouncer_up is 0 when it cannot connect", {},
              gauge_proof("pgbouncer_up", series, 0, 1, for_ms=60_000)),
        Alert("PgBouncerClientsWaiting",
              f"sum by (namespace, instance, database) ({selector('pgbouncer_pools_client_waiting_connections', ns)})"
              " > 0", 2 * 60_000, "warning", "Clients wait for a PgBouncer server connection",
              "Clients of {{ $labels.database }} on {{ $labels.instance }} have waited for a server connection "
              f"for 2m (threshold: more than 0 waiting): the pool of {pb.default_pool_size} "
              f"(+{pb.reserve_pool_size} reserve) is exhausted.",
              0, "a client waiting for 2m means the pool is exhausted", {},
              count_proof("pgbouncer_pools_client_waiting_connections", pool, 0, by_pool, 2 * 60_000)),
        Alert("PgBouncerMaxWaitHigh",
              f"max by (namespace, instance, database) ({selector('pgbouncer_pools_client_maxwait_seconds', ns)}) > "
              f"{num(wait_s)}", 60_000, "warning", "PgBouncer clients wait longer than reserve_pool_timeout",
              f"The oldest waiting client of {{{{ $labels.database }}}} on {{{{ $labels.instance }}}} has waited "
              f"more than {_duration_text(pb.reserve_pool_timeout)} (pgbouncer.reserve_pool_timeout) for 1m: "
              "even the reserve pool is in use.",
              wait_s, "pgbouncer.reserve_pool_timeout, in seconds",
              {"reserve_pool_timeout": _duration_text(pb.reserve_pool_timeout)},
              gauge_proof("pgbouncer_pools_client_maxwait_seconds", pool, wait_s + 1, wait_s, by_pool, 60_000)),
        Alert("PgBouncerServerConnectionsHigh",
              f"{total('namespace', 'pgbouncer_pools_server_active_connections', 'pgbouncer_pools_server_idle_connections', 'pgbouncer_pools_server_used_connections')}"
              f" > {num(server_limit)}", 5 * 60_000, "warning", "PgBouncer server connections near the pool size",
              f"PgBouncer holds more than {num(server_limit)} server connections for 5m: {_pct(util)} "
              f"(slo.pool_utilization_max) of the {servers} its pools may open "
              f"({len(pb.databases)} pools x ({pb.default_pool_size} + {pb.reserve_pool_size} reserve) x "
              f"{pb.replicas} replicas).",
              server_limit, "slo.pool_utilization_max x pgbouncer server connections "
              "(pools x (default_pool_size + reserve_pool_size) x replicas)",
              {"pool_utilization_max": util, "server_connections": servers},
              count_proof("pgbouncer_pools_server_active_connections", pool, server_limit, ns, 5 * 60_000,
                          ("pgbouncer_pools_server_idle_connections", "pgbouncer_pools_server_used_connections"))),
        Alert("PgBouncerClientConnectionsHigh",
              f"{total('namespace, instance', 'pgbouncer_pools_client_active_connections', 'pgbouncer_pools_client_waiting_connections')}"
              f" > {num(client_limit)}", 5 * 60_000, "warning", "PgBouncer client connections near max_client_conn",
              f"PgBouncer {{{{ $labels.instance }}}} has more than {num(client_limit)} client connections for 5m: "
              f"{_pct(util)} (slo.pool_utilization_max) of max_client_conn {pb.max_client_conn}.",
              client_limit, "slo.pool_utilization_max x pgbouncer.max_client_conn",
              {"pool_utilization_max": util, "max_client_conn": pb.max_client_conn},
              count_proof("pgbouncer_pools_client_active_connections", pool, client_limit,
                          {**ns, "instance": series["instance"]}, 5 * 60_000,
                          ("pgbouncer_pools_client_waiting_connections",))),
    ]


# ---------------------------------------------------------------- Redis (oliver006/redis_exporter)
def cache_turnover_per_second(profile: Profile) -> float:
    """Keys the application's caches replace per second when entries expire by TTL: size / ttl, summed."""
    caches = (profile.app.query_cache, profile.app.llm_cache)
    return sum(cache.size / _seconds(cache.ttl) for cache in caches if cache.ttl)


def redis_alerts(profile: Profile) -> list[Alert]:
    r = profile.redis
    ns = {"namespace": profile.namespace}
    series = {**ns, "instance": "redis-exporter:9121", "job": "redis-exporter"}
    by_instance = {**ns, "instance": series["instance"]}
    util = profile.slo.pool_utilization_max
    maxmemory = redis.maxmemory_bytes(profile)
    memory_limit = int(util * maxmemory)  # whole bytes
    evicts = r.maxmemory_policy != "noeviction"
    w = _window()
    alerts = [
        Alert("RedisDown", f"{selector('redis_up', ns)} == 0", 60_000, "critical", "Redis is unreachable",
              "redis_exporter {{ $labels.instance }} cannot connect to Redis (redis_up = 0) for 1m.",
              0, "the exporter's redis_up is 0 when it cannot connect", {},
              gauge_proof("redis_up", series, 0, 1, for_ms=60_000)),
        Alert("RedisMemoryHigh", f"{selector('redis_memory_used_bytes', ns)} > {num(memory_limit)}", 5 * 60_000,
              "warning" if evicts else "critical", "Redis memory near maxmemory",
              f"Redis {{{{ $labels.instance }}}} uses more than {units.format_size_human(int(memory_limit))} "
              f"({num(memory_limit)} bytes) for 5m: {_pct(util)} (slo.pool_utilization_max) of maxmemory "
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
            f"{profile.app.query_cache.size}/{_duration_text(profile.app.query_cache.ttl)} + llm_cache "
            f"{profile.app.llm_cache.size}/{_duration_text(profile.app.llm_cache.ttl)}); maxmemory "
            f"{units.format_size_human(maxmemory)} is too small for them.",
            turnover, "app.query_cache.size / ttl + app.llm_cache.size / ttl (keys per second)",
            {"query_cache": f"{profile.app.query_cache.size}/{_duration_text(profile.app.query_cache.ttl)}",
             "llm_cache": f"{profile.app.llm_cache.size}/{_duration_text(profile.app.llm_cache.ttl)}"},
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


# ---------------------------------------------------------------- LLM server (vLLM metrics, Ollama probe)
def ollama_probe_job(profile: Profile) -> str:
    return f"probe/{profile.namespace}/{LLM_SERVER}"  # prometheus-operator's own default for a Probe


def ollama_probe_url(profile: Profile) -> str:
    assert profile.llm is not None
    return f"http://{LLM_SERVER}.{profile.namespace}.svc:{profile.llm.port}{OLLAMA_PROBE_PATH}"


def llm_alerts(profile: Profile) -> list[Alert]:
    llm = profile.llm
    if llm is None:
        return []
    ns = {"namespace": profile.namespace}
    if llm.server == "ollama":
        job = ollama_probe_job(profile)
        series = {"job": job, "instance": ollama_probe_url(profile)}
        return [Alert(
            "LlmServerDown", f"{selector('probe_success', {'job': job})} == 0", 2 * 60_000, "critical",
            "The Ollama server does not answer",
            f"The blackbox probe of {{{{ $labels.instance }}}} has failed for 2m (probe_success = 0); "
            f"Ollama has no /metrics, so availability is probed at {OLLAMA_PROBE_PATH}.",
            0, "blackbox probe of Ollama's /api/version", {"url": ollama_probe_url(profile)},
            gauge_proof("probe_success", series, 0, 1, for_ms=2 * 60_000))]
    series = {**ns, "instance": f"{LLM_SERVER}:{llm.port}", "job": LLM_SERVER, MODEL_LABEL: llm.model.name}
    by_model = {**ns, MODEL_LABEL: llm.model.name}
    by_instance = {**ns, "instance": series["instance"], MODEL_LABEL: llm.model.name}
    scaling = profile.autoscaling.llm
    queue_limit = scaling.target * scaling.max_replicas
    util = profile.slo.pool_utilization_max
    latency_s = _seconds(profile.slo.llm_latency_p95)
    ttft_s = _seconds(profile.slo.llm_time_to_first_token_p95)
    by = f"namespace, {MODEL_LABEL}"
    return [
        Alert("LlmQueueSaturated", f"sum by ({by}) ({selector(scaling.metric, ns)}) > {num(queue_limit)}",
              5 * 60_000, "warning", "LLM requests queue beyond what max replicas absorb",
              f"{{{{ $labels.{MODEL_LABEL} }}}} has more than {num(queue_limit)} requests in {scaling.metric} "
              f"for 5m: the autoscaling target {scaling.target} per replica x max_replicas {scaling.max_replicas}; "
              "the autoscaler cannot add more.",
              queue_limit, "autoscaling.llm.target x autoscaling.llm.max_replicas",
              {"target": scaling.target, "max_replicas": scaling.max_replicas, "metric": scaling.metric},
              count_proof(scaling.metric, series, queue_limit, by_model, 5 * 60_000)),
        Alert("LlmKvCacheHigh",
              f"max by (namespace, instance, {MODEL_LABEL}) ({selector('vllm:kv_cache_usage_perc', ns)}) > {num(util)}",
              5 * 60_000, "warning", "vLLM KV cache nearly full",
              f"vLLM {{{{ $labels.instance }}}} uses more than {_pct(util)} (slo.pool_utilization_max) of its "
              "KV cache for 5m: new sequences wait or are preempted.",
              util, "slo.pool_utilization_max", {"pool_utilization_max": util},
              gauge_proof("vllm:kv_cache_usage_perc", series, *_shares(util, True),
                          by_instance, 5 * 60_000), possible=fireable(util, True)),
        Alert("LlmLatencyHigh", f"{_p95('vllm:e2e_request_latency_seconds', ns, by)} > {num(latency_s)}",
              10 * 60_000, "warning", "LLM p95 latency above its SLO",
              f"p95 end-to-end latency of {{{{ $labels.{MODEL_LABEL} }}}} is above "
              f"{_duration_text(profile.slo.llm_latency_p95)} (slo.llm_latency_p95) for 10m.",
              latency_s, "slo.llm_latency_p95, in seconds",
              {"llm_latency_p95": _duration_text(profile.slo.llm_latency_p95)},
              histogram_proof("vllm:e2e_request_latency_seconds", series, latency_s, by_model, 10 * 60_000),
              possible=latency_s > 0),
        Alert("LlmTimeToFirstTokenHigh", f"{_p95('vllm:time_to_first_token_seconds', ns, by)} > {num(ttft_s)}",
              10 * 60_000, "warning", "LLM time to first token above its SLO",
              f"p95 time to first token of {{{{ $labels.{MODEL_LABEL} }}}} is above "
              f"{_duration_text(profile.slo.llm_time_to_first_token_p95)} (slo.llm_time_to_first_token_p95) "
              "for 10m: prefill is queueing.",
              ttft_s, "slo.llm_time_to_first_token_p95, in seconds",
              {"llm_time_to_first_token_p95": _duration_text(profile.slo.llm_time_to_first_token_p95)},
              histogram_proof("vllm:time_to_first_token_seconds", series, ttft_s, by_model, 10 * 60_000),
              possible=ttft_s > 0),
    ]


# ---------------------------------------------------------------- API and application (metrics.APP)
def api_alerts(profile: Profile) -> list[Alert]:
    app, slo = profile.app, profile.slo
    job = app.deployment
    sel = {"namespace": profile.namespace, "job": job}
    series = {**sel, "instance": f"{job}:8000"}
    latency_s = _seconds(slo.api_latency_p95)
    workflow_s = _seconds(slo.workflow_p95)
    pool_max = app.db_pool.size + app.db_pool.max_overflow
    pool_limit = slo.pool_utilization_max * pool_max
    w = _window()
    http = {**series, "handler": "/v1/query", "method": "POST"}

    def rate_sum(metric: str, *extra: str) -> str:
        return f"sum by (namespace, job) (rate({selector(metric, sel, *extra)}[{w}]))"

    def cache_alert(name: str, cache: str, ratio: float, key: str) -> Alert:
        return Alert(
            name, f"{rate_sum('app_cache_requests_total', eq('cache', cache), eq('result', 'hit'))} / "
                  f"{rate_sum('app_cache_requests_total', eq('cache', cache))} < {num(ratio)}",
            15 * 60_000, "warning", f"The {cache} cache hit ratio is below its SLO",
            f"Fewer than {_pct(ratio)} ({key}) of {{{{ $labels.job }}}}'s {cache} cache lookups hit, for 15m.",
            ratio, f"given by {key}", {key.split(".")[-1]: ratio},
            ratio_proof(("app_cache_requests_total", {**series, "cache": cache, "result": "hit"}),
                        ("app_cache_requests_total", {**series, "cache": cache, "result": "miss"}),
                        ratio, False, sel, 15 * 60_000), possible=fireable(ratio, False))

    alerts = [
        Alert("ApiLatencyHigh", f"{_p95('http_request_duration_seconds', sel, 'namespace, job')} > {num(latency_s)}",
              10 * 60_000, "warning", "API p95 latency above its SLO",
              f"p95 latency of {{{{ $labels.job }}}} is above {_duration_text(slo.api_latency_p95)} "
              "(slo.api_latency_p95) for 10m.",
              latency_s, "slo.api_latency_p95, in seconds", {"api_latency_p95": _duration_text(slo.api_latency_p95)},
              histogram_proof("http_request_duration_seconds", http, latency_s, sel, 10 * 60_000),
              possible=latency_s > 0),
        Alert("ApiErrorRateHigh",
              f"{rate_sum('http_requests_total', eq('status', '5xx'))} / {rate_sum('http_requests_total')} > "
              f"{num(slo.error_rate)}", 5 * 60_000, "critical", "API error ratio above its SLO",
              f"More than {_pct(slo.error_rate)} (slo.error_rate) of {{{{ $labels.job }}}}'s requests fail "
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
              f"{_pct(slo.pool_utilization_max)} (slo.pool_utilization_max) of db_pool size {app.db_pool.size} + "
              f"max_overflow {app.db_pool.max_overflow}.",
              pool_limit, "slo.pool_utilization_max x (app.db_pool.size + app.db_pool.max_overflow)",
              {"pool_utilization_max": slo.pool_utilization_max, "size": app.db_pool.size,
               "max_overflow": app.db_pool.max_overflow},
              count_proof("app_db_pool_connections_in_use", series, pool_limit, series, 5 * 60_000)),
        Alert("WorkflowLatencyHigh",
              f"{_p95('app_workflow_duration_seconds', sel, 'namespace, job')} > {num(workflow_s)}",
              15 * 60_000, "warning", "Workflow p95 duration above its SLO",
              f"p95 workflow duration of {{{{ $labels.job }}}} is above {_duration_text(slo.workflow_p95)} "
              "(slo.workflow_p95) for 15m.",
              workflow_s, "slo.workflow_p95, in seconds", {"workflow_p95": _duration_text(slo.workflow_p95)},
              histogram_proof("app_workflow_duration_seconds", series, workflow_s, sel, 15 * 60_000),
              possible=workflow_s > 0),
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


def worker_alerts(profile: Profile) -> list[Alert]:
    from .workers_alerts import worker_alerts as build  # it imports this module's helpers

    return build(profile)


COMPONENTS: dict[str, Callable[[Profile], list[Alert]]] = {
    "postgres": postgres_alerts, "pgbouncer": pgbouncer_alerts, "redis": redis_alerts, "llm": llm_alerts,
    "api": api_alerts,
    "workers": worker_alerts,
}


# ---------------------------------------------------------------- the one transform over the finished list
def runbook_url(profile: Profile, alertname: str) -> str:
    return f"{profile.kubernetes.runbook_url}#{alertname.lower()}"


def shared(profile: Profile, component: str, alert: Alert) -> Alert:
    """What every alert carries, applied once (kubernetes-mixin's add-runbook-links): severity, environment
    and component labels, the runbook link, and the profile's `for` scaling."""
    for_ms = round(alert.for_ms * profile.alerts.for_scale)
    return replace(
        alert, for_ms=for_ms,
        labels={**alert.labels, "severity": alert.severity, "environment": profile.environment, "component": component},
        annotations={"summary": alert.summary, "description": alert.description,
                     "runbook_url": runbook_url(profile, alert.name), **alert.annotations})


_last: tuple[Profile, dict[str, list[Alert]]] | None = None


def alerts(profile: Profile) -> dict[str, list[Alert]]:
    """Every alert, by component (rule group), with the shared labels applied.

    The rules file, its tests, explain and the dashboards all ask for the same profile's alerts in one
    render: the last result is kept for that (frozen, so unchanging) profile object."""
    global _last
    if _last is not None and _last[0] is profile:
        return _last[1]
    out = {}
    for component, build in COMPONENTS.items():
        found = [shared(profile, component, alert) for alert in build(profile) if alert.possible]
        if found:
            out[component] = found
    _last = (profile, out)
    return out


def group_name(component: str) -> str:
    return f"perfstack-{component}"


def evaluation_interval_ms(profile: Profile) -> int:
    return profile.alerts.evaluation_interval or DEFAULT_EVALUATION_MS


def rule(alert: Alert) -> dict[str, Any]:
    out: dict[str, Any] = {"alert": alert.name, "expr": alert.expr}
    if alert.for_ms:
        out["for"] = units.format_duration(alert.for_ms)
    out["labels"] = dict(sorted(alert.labels.items()))
    out["annotations"] = dict(sorted(alert.annotations.items()))
    return out


def groups(profile: Profile) -> list[dict[str, Any]]:
    out = []
    for component, found in alerts(profile).items():
        group: dict[str, Any] = {"name": group_name(component)}
        if profile.alerts.evaluation_interval:
            group["interval"] = units.format_duration(profile.alerts.evaluation_interval)
        group["rules"] = [rule(alert) for alert in found]
        out.append(group)
    return out


# ---------------------------------------------------------------- promtool unit tests
_TEMPLATE = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")


def expand(template: str, labels: dict[str, str]) -> str:
    """The annotation as Prometheus expands it; perfstack's templates use {{ $labels.NAME }} only."""
    return _TEMPLATE.sub(lambda m: labels.get(m.group(1), ""), template)


def alert_tests(profile: Profile, alert: Alert) -> list[dict[str, Any]]:
    interval = evaluation_interval_ms(profile)
    proof = alert.proof(interval)
    fires_at = proof.active_ms + _ceil_to(alert.for_ms, interval)
    labels = {**proof.labels, **alert.labels}
    expected = {"exp_labels": dict(sorted(labels.items())),
                "exp_annotations": {k: expand(v, labels) for k, v in sorted(alert.annotations.items())}}
    fmt = units.format_duration

    def inputs(values: dict[str, str]) -> list[dict[str, str]]:
        return [{"series": series, "values": text} for series, text in sorted(values.items())]

    checks: list[dict[str, Any]] = []
    if fires_at - interval >= 0:
        checks.append({"eval_time": fmt(fires_at - interval), "alertname": alert.name, "exp_alerts": []})
    checks.append({"eval_time": fmt(fires_at), "alertname": alert.name, "exp_alerts": [expected]})
    quiet = [{"eval_time": fmt(t), "alertname": alert.name, "exp_alerts": []}
             for t in (proof.active_ms, fires_at, fires_at + interval)]
    return [
        {"name": f"{alert.name}: past {num(alert.threshold)}, fires after its for window ({fmt(alert.for_ms)}), not before",
         "interval": fmt(interval), "input_series": inputs(proof.bad), "alert_rule_test": checks},
        {"name": f"{alert.name}: on the healthy side of {num(alert.threshold)}, never fires",
         "interval": fmt(interval), "input_series": inputs(proof.good), "alert_rule_test": quiet},
    ]


def tests(profile: Profile) -> dict[str, Any]:
    return {
        "rule_files": ["alerts.yaml"],
        "evaluation_interval": units.format_duration(evaluation_interval_ms(profile)),
        "tests": [test for found in alerts(profile).values() for alert in found
                  for test in alert_tests(profile, alert)],
    }


# ---------------------------------------------------------------- Kubernetes objects and files
def prometheus_rule(profile: Profile) -> dict[str, Any]:
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": metadata(profile, RULE_NAME, "alerts", dict(profile.kubernetes.prometheus_rule_labels)),
            "spec": {"groups": groups(profile)}}


def ollama_probe(profile: Profile) -> dict[str, Any]:
    """Ollama has no /metrics: a Probe has the blackbox exporter fetch /api/version (probe_success)."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "Probe",
            "metadata": metadata(profile, LLM_SERVER, LLM_SERVER, dict(profile.kubernetes.prometheus_rule_labels)),
            "spec": {"jobName": ollama_probe_job(profile), "module": "http_2xx",
                     "prober": {"url": profile.alerts.blackbox_exporter},
                     "targets": {"staticConfig": {"static": [ollama_probe_url(profile)]}}}}


def to_yaml(data: Any) -> str:
    return dump_yaml(data, sort_keys=False)  # alert, expr, for, labels: in reading order


def settings(profile: Profile) -> list[Setting]:
    return [Setting(TARGET, alert.name, alert.threshold, num(alert.threshold), alert.rule,
                    {**alert.inputs, "for": units.format_duration(alert.for_ms), "severity": alert.severity})
            for found in alerts(profile).values() for alert in found]


def render(profile: Profile) -> Part:
    header = f"# Rendered by perfstack from profile '{profile.environment}'. Do not edit: change the profile.\n"
    objects = [prometheus_rule(profile)]
    if profile.llm is not None and profile.llm.server == "ollama":
        objects.append(ollama_probe(profile))
    return Part(settings=settings(profile),
                files={RULES_FILE: header + to_yaml({"groups": groups(profile)}),
                       TESTS_FILE: header + to_yaml(tests(profile))},
                objects=objects)
