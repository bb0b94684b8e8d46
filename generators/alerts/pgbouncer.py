"""PgBouncer alerts (prometheus-community pgbouncer_exporter)."""

from __future__ import annotations

from ..bundle import Parts
from ..profile import Profile
from .base import Alert, count_proof, duration_text, gauge_proof, near, num, pct, seconds, selector


def pgbouncer_alerts(profile: Profile, parts: Parts) -> list[Alert]:
    pb = profile.pgbouncer
    ns = {"namespace": profile.namespace}
    series = {**ns, "instance": "pgbouncer-exporter:9127", "job": "pgbouncer-exporter"}
    pool = {**series, "database": pb.databases[0], "user": "app"}
    by_pool = {**ns, "instance": series["instance"], "database": pb.databases[0]}
    util = profile.slo.pool_utilization_max
    wait_s = seconds(parts.pgbouncer.value("reserve_pool_timeout"))
    servers = parts.pgbouncer.derived["server_connections"]
    server_limit = util * servers
    client_limit = util * parts.pgbouncer.value("max_client_conn")

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
              f"more than {duration_text(pb.reserve_pool_timeout)} (pgbouncer.reserve_pool_timeout) for 1m: "
              "even the reserve pool is in use.",
              wait_s, "pgbouncer.reserve_pool_timeout, in seconds",
              {"reserve_pool_timeout": duration_text(pb.reserve_pool_timeout)},
              gauge_proof("pgbouncer_pools_client_maxwait_seconds", pool, *near(wait_s), by_pool, 60_000)),
        Alert("PgBouncerServerConnectionsHigh",
              f"{total('namespace', 'pgbouncer_pools_server_active_connections', 'pgbouncer_pools_server_idle_connections', 'pgbouncer_pools_server_used_connections')}"
              f" > {num(server_limit)}", 5 * 60_000, "warning", "PgBouncer server connections near the pool size",
              f"PgBouncer holds more than {num(server_limit)} server connections for 5m: {pct(util)} "
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
              f"{pct(util)} (slo.pool_utilization_max) of max_client_conn {pb.max_client_conn}.",
              client_limit, "slo.pool_utilization_max x pgbouncer.max_client_conn",
              {"pool_utilization_max": util, "max_client_conn": pb.max_client_conn},
              count_proof("pgbouncer_pools_client_active_connections", pool, client_limit,
                          {**ns, "instance": series["instance"]}, 5 * 60_000,
                          ("pgbouncer_pools_client_waiting_connections",))),
    ]
