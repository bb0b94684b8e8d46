"""Cross-component checks: the one place where components are sized against each other.

Each check returns Findings whose message carries the numbers on both sides. Errors refuse the
profile (validate, render and the Pulumi program alike); warnings are printed and kept in explain.json.
"""

from __future__ import annotations

from collections.abc import Callable

from . import pgbouncer, postgres
from .bundle import Finding
from .profile import Profile

Check = Callable[[Profile], list[Finding]]


def pgbouncer_fits_postgres(profile: Profile) -> list[Finding]:
    pb = profile.pgbouncer
    needed = pgbouncer.server_connections(profile)
    max_conn = postgres.max_connections(postgres.Inputs.from_profile(profile)).value
    reserved = profile.postgres.superuser_reserved_connections
    available = max_conn - reserved
    if needed <= available:
        return []
    return [Finding(
        "pgbouncer_fits_postgres",
        f"pgbouncer needs {pb.replicas} replicas x {len(pb.databases)} pools x ({pb.default_pool_size} + "
        f"{pb.reserve_pool_size}) = {needed} server connections but postgres.max_connections {max_conn} - "
        f"{reserved} reserved leaves {available}",
        "error", ("pgbouncer.default_pool_size", "postgres.max_connections"))]


def app_fits_pgbouncer(profile: Profile) -> list[Finding]:
    pool = profile.app.db_pool
    replicas = profile.autoscaling.api.max_replicas
    needed = replicas * (pool.size + pool.max_overflow)
    # Every PgBouncer replica takes max_client_conn clients; a Service spreads pods across them.
    available = profile.pgbouncer.max_client_conn * profile.pgbouncer.replicas
    if needed <= available:
        return []
    return [Finding(
        "app_fits_pgbouncer",
        f"the app at autoscaling.api.max_replicas {replicas} x (db_pool.size {pool.size} + max_overflow "
        f"{pool.max_overflow}) = {needed} client connections but pgbouncer allows {profile.pgbouncer.replicas} "
        f"replicas x max_client_conn {profile.pgbouncer.max_client_conn} = {available}",
        "error", ("app.db_pool.size", "pgbouncer.max_client_conn"))]


CHECKS: list[Check] = [pgbouncer_fits_postgres, app_fits_pgbouncer]


def run(profile: Profile) -> list[Finding]:
    found: list[Finding] = []
    for check in CHECKS:
        found.extend(check(profile))
    return found
