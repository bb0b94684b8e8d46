"""PostgreSQL alerts (postgres_exporter)."""

from __future__ import annotations

from ..bundle import Parts
from ..profile import Profile
from .base import (
    POSTGRES_MIN_BLOCK_READS_PER_SECOND,
    Alert,
    count_proof,
    duration_text,
    fireable,
    gauge_proof,
    increase_proof,
    near,
    num,
    pct,
    ratio_proof,
    seconds,
    selector,
    window,
)

# postgres_exporter's pg_stat_activity rows carry the session's state; autovacuum workers and maintenance
# commands (VACUUM, CREATE INDEX) are `active`, an application that left a transaction open is
# `idle in transaction` (or `idle in transaction (aborted)`): the sessions idle_in_transaction_session_timeout ends.
IDLE_IN_TX = 'state=~"idle in transaction.*"'


def postgres_alerts(profile: Profile, parts: Parts) -> list[Alert]:
    ns = {"namespace": profile.namespace}
    series = {**ns, "instance": "postgres-exporter:9187", "job": "postgres-exporter"}
    db = {**series, "datname": "app"}
    by_db = {**ns, "instance": series["instance"], "datname": "app"}
    no_templates = 'datname!~"template.*"'
    util = profile.slo.pool_utilization_max
    max_conn = parts.postgres.value("max_connections")
    reserved = parts.postgres.value("superuser_reserved_connections")
    conn_limit = util * (max_conn - reserved)
    hit_min = profile.alerts.postgres_cache_hit_ratio_min
    w = window()

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
              f"{pct(util)} (slo.pool_utilization_max) of max_connections {max_conn} minus {reserved} "
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
              f"Database {{{{ $labels.datname }}}} on {{{{ $labels.instance }}}} finds fewer than {pct(hit_min)} "
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
    ]
    idle_ms = parts.postgres.value("idle_in_transaction_session_timeout")
    if idle_ms:  # 0 disables the timeout: no limit to alert on
        limit_s = seconds(idle_ms)
        alerts.append(Alert(
            "PostgresLongTransaction",
            f"max by (namespace, instance, datname) ({selector('pg_stat_activity_max_tx_duration', ns, IDLE_IN_TX)})"
            f" > {num(limit_s)}", 60_000, "warning", "A PostgreSQL transaction stays open too long",
            f"A transaction in {{{{ $labels.datname }}}} on {{{{ $labels.instance }}}} has been open longer than "
            f"{duration_text(idle_ms)} (postgres.idle_in_transaction_session_timeout) for 1m: it holds locks "
            "and stops vacuum. (Only sessions idle in a transaction: an autovacuum worker or a long VACUUM or "
            "CREATE INDEX is `active` and not counted.)",
            limit_s, "postgres.idle_in_transaction_session_timeout, in seconds",
            {"idle_in_transaction_session_timeout": duration_text(idle_ms)},
            gauge_proof("pg_stat_activity_max_tx_duration", {**db, "state": "idle in transaction"}, *near(limit_s),
                        by_db, 60_000)))
    return alerts
