"""PgBouncer pools: pgbouncer.ini with no password in it (auth comes from a Secret that is not rendered), and
pgbouncer/auth_query.sql, the lookup function its auth_query calls.

Versions are inputs (`pgbouncer.version`, generators/serverversions.py): a setting the version does not know
is never rendered, and `pgbouncer.settings` overrides (validated at load against the version) win over the
rules here, parsed into the same unit (ms for times) so checks read them like any rule's value.
"""

from __future__ import annotations

from typing import Any

from . import formats, paths, serverversions, units
from .bundle import Part, Setting
from .lint import is_production
from .profile import Profile
from .templates import render_template

TARGET = "pgbouncer"
AUTH_FILE = paths.PGBOUNCER_AUTH_FILE  # mounted from the Kubernetes Secret; never rendered
TLS_CERT_FILE = paths.PGBOUNCER_TLS_CERT_FILE
TLS_KEY_FILE = paths.PGBOUNCER_TLS_KEY_FILE
SERVER_CA_FILE = paths.PGBOUNCER_SERVER_CA_FILE
# auth_query calls a SECURITY DEFINER function instead of reading pg_shadow: pg_shadow needs a superuser
# auth_user and ignores VALID UNTIL and rolcanlogin (CVE-2025-2291). The function is schema-qualified, pins
# its search_path, and only the auth_user may execute it.
LOOKUP_SCHEMA = "pgbouncer"
LOOKUP_FUNCTION = f"{LOOKUP_SCHEMA}.user_lookup"
AUTH_QUERY = f"SELECT uname, phash FROM {LOOKUP_FUNCTION}($1)"
# PgBouncer's own rolling update starts this many extra pods (maxSurge; maxUnavailable 0): during it each database
# sees one more PgBouncer's pools, so PostgreSQL must hold those too (checks.pgbouncer_fits_postgres).
ROLLING_SURGE = 1
CNPG_SERVICE = "postgres"  # the Service objects/workloads renders for the CloudNativePG primary
# TCP keepalives: a dead peer (a failed-over database, a vanished client) is found after idle + count x interval
# = 60 + 6 x 10 s = 2 min, and an idle pooled connection sends a probe every minute, well inside the idle
# timeouts of cloud NAT gateways and load balancers (AWS NLB: 350 s), which would otherwise drop it silently.
KEEPALIVE = {"tcp_keepalive": 1, "tcp_keepidle": 60, "tcp_keepintvl": 10, "tcp_keepcnt": 6}


def _setting(key: str, value: Any, text: str, rule: str, **inputs: Any) -> Setting:
    return Setting(TARGET, key, value, text, rule, inputs)


def _seconds_setting(key: str, ms: int, rule: str | None = None, **inputs: Any) -> Setting:
    # PgBouncer reads times in seconds (fractions allowed) and SHOW CONFIG prints them the same way.
    text = f"{units.ms_to_seconds(ms)}"
    return _setting(key, ms, text, rule or f"given by pgbouncer.{key}",
                    **(inputs or {key: units.format_duration(ms)}))


def server_host(profile: Profile) -> str | None:
    """The host PgBouncer dials: pgbouncer.server_host, or the CloudNativePG Service; None for an external
    database whose host the profile does not name (checks.pgbouncer_server_host refuses that)."""
    if profile.pgbouncer.server_host is not None:
        return profile.pgbouncer.server_host
    return CNPG_SERVICE if profile.kubernetes.postgres == "cloudnativepg" else None


def max_db_connections(profile: Profile) -> int:
    """Server connections one PgBouncer may open to one database: one pool per user, each pool plus reserve."""
    pb = profile.pgbouncer
    return len(pb.users) * (pb.default_pool_size + pb.reserve_pool_size)


def settings(profile: Profile) -> list[Setting]:
    pb = profile.pgbouncer
    given = "given by pgbouncer.{}".format
    idle_tx = pb.idle_transaction_timeout
    items = [
        _setting("listen_addr", pb.listen_addr, pb.listen_addr, given("listen_addr")),
        _setting("listen_port", pb.listen_port, str(pb.listen_port), given("listen_port")),
        _setting("auth_type", pb.auth_type, pb.auth_type, given("auth_type")),
        _setting("auth_file", AUTH_FILE, AUTH_FILE, "userlist mounted from the Secret "
                 f"'{profile.secrets.postgres_password.secret}' (not rendered)"),
        _setting("auth_user", pb.auth_user, pb.auth_user, given("auth_user")),
        _setting("auth_query", AUTH_QUERY, AUTH_QUERY,
                 f"{LOOKUP_FUNCTION} ({paths.PGBOUNCER_AUTH_SQL}): a SECURITY DEFINER lookup that honours VALID "
                 "UNTIL and rolcanlogin, executable by auth_user only (pg_shadow needs a superuser and ignores both)"),
        _setting("pool_mode", pb.pool_mode, pb.pool_mode, given("pool_mode")),
        _setting("max_client_conn", pb.max_client_conn, str(pb.max_client_conn), given("max_client_conn")),
        _setting("default_pool_size", pb.default_pool_size, str(pb.default_pool_size), given("default_pool_size")),
        _setting("min_pool_size", pb.min_pool_size, str(pb.min_pool_size), given("min_pool_size")),
        _setting("reserve_pool_size", pb.reserve_pool_size, str(pb.reserve_pool_size), given("reserve_pool_size")),
        _setting("max_db_connections", max_db_connections(profile), str(max_db_connections(profile)),
                 "pgbouncer.users x (default_pool_size + reserve_pool_size): PgBouncer itself holds each database "
                 "to the server connections the budget counts", users=len(pb.users),
                 default_pool_size=pb.default_pool_size, reserve_pool_size=pb.reserve_pool_size),
        _seconds_setting("reserve_pool_timeout", pb.reserve_pool_timeout),
        _seconds_setting("server_idle_timeout", pb.server_idle_timeout),
        _seconds_setting("server_lifetime", pb.server_lifetime, "given by pgbouncer.server_lifetime: server "
                         "connections are renewed, so backend memory bloat is released and a failed-over host's "
                         "new address (DNS) is picked up", server_lifetime=units.format_duration(pb.server_lifetime)),
        _seconds_setting("query_timeout", pb.query_timeout),
        _seconds_setting("query_wait_timeout", pb.query_wait_timeout, "given by pgbouncer.query_wait_timeout: a "
                         "client waiting for a server connection fails fast, before the app's pool and HTTP "
                         "timeouts", query_wait_timeout=units.format_duration(pb.query_wait_timeout)),
        _seconds_setting("idle_transaction_timeout", idle_tx if idle_tx is not None
                         else profile.postgres.idle_in_transaction_session_timeout,
                         "given by pgbouncer.idle_transaction_timeout" if idle_tx is not None else
                         "postgres.idle_in_transaction_session_timeout: a client idle in a transaction holds a "
                         "server connection; PgBouncer frees it as PostgreSQL would",
                         idle_transaction_timeout=units.format_duration(
                             idle_tx if idle_tx is not None else profile.postgres.idle_in_transaction_session_timeout)),
        *prepared_statements(profile),
        *[_setting(key, value, str(value), "TCP keepalives: a dead peer is found in 60 + 6 x 10 s = 2 min, and "
                   "idle pooled connections outlive NAT and load-balancer idle timeouts (AWS NLB 350 s)")
          for key, value in KEEPALIVE.items()],
        *logging(profile),
        _setting("admin_users", ",".join(pb.admin_users), ",".join(pb.admin_users), given("admin_users")),
        _stats_users(profile),
        _setting("ignore_startup_parameters", "extra_float_digits", "extra_float_digits",
                 "drivers (psycopg, JDBC) send it; PgBouncer would refuse the connection otherwise"),
        *client_tls(profile),
        *server_tls(profile),
    ]
    return overridden(profile, items)


def prepared_statements(profile: Profile) -> list[Setting]:
    """max_prepared_statements, for the versions that have it (1.21+)."""
    pb = profile.pgbouncer
    if not serverversions.pgbouncer_has("max_prepared_statements", pb.version):
        return []
    return [_setting("max_prepared_statements", pb.max_prepared_statements, str(pb.max_prepared_statements),
                     f"given by pgbouncer.max_prepared_statements: PgBouncer {pb.version} keeps the app's protocol-"
                     "level prepared statements across the server connections of a pool (0 turns that off; "
                     f"{pb.version}'s own default is {serverversions.PREPARED_DEFAULT.get(pb.version, 200)})",
                     version=pb.version)]


def logging(profile: Profile) -> list[Setting]:
    prod = is_production(profile)
    text = "0" if prod else "1"
    why = ("production: with transaction pooling and pod churn every connect and disconnect would be a log line "
           "(thousands a minute); errors are still logged") if prod else "outside production: see every connection"
    return [_setting("log_connections", not prod, text, why), _setting("log_disconnections", not prod, text, why),
            _setting("log_pooler_errors", True, "1", "errors PgBouncer sends to clients are logged")]


def client_tls(profile: Profile) -> list[Setting]:
    """With pgbouncer.client_tls, clients must use TLS; key and certificate come from a TLS Secret."""
    if not profile.pgbouncer.client_tls:
        return []
    secret = profile.secrets.pgbouncer_tls
    return [
        _setting("client_tls_sslmode", "require", "require", "pgbouncer.client_tls: refuse clients without TLS"),
        _setting("client_tls_cert_file", TLS_CERT_FILE, TLS_CERT_FILE, f"tls.crt of the Secret '{secret}'"),
        _setting("client_tls_key_file", TLS_KEY_FILE, TLS_KEY_FILE, f"tls.key of the Secret '{secret}'"),
    ]


def server_tls(profile: Profile) -> list[Setting]:
    """TLS to PostgreSQL: server_tls_sslmode, with the CA from secrets.postgres_ca for verify-ca/verify-full."""
    mode = profile.pgbouncer.server_tls_sslmode
    if mode is None:
        return []
    items = [_setting("server_tls_sslmode", mode, mode, "given by pgbouncer.server_tls_sslmode")]
    ca = profile.secrets.postgres_ca
    if ca is not None:
        items.append(_setting("server_tls_ca_file", SERVER_CA_FILE, SERVER_CA_FILE,
                              f"key '{ca.key}' of the Secret '{ca.secret}' (secrets.postgres_ca)"))
    return items


def overridden(profile: Profile, items: list[Setting]) -> list[Setting]:
    """pgbouncer.settings win over the rules (validated at load against pgbouncer.version)."""
    out = {s.key: s for s in items}
    for name, raw in profile.pgbouncer.settings.items():
        value, text = serverversions.parse(serverversions.PGBOUNCER, name, raw)
        rule = f"given by pgbouncer.settings.{name}"
        if name in out:
            rule += f" (overrides: {out[name].rule})"
        out[name] = _setting(name, value, text, rule)
    return list(out.values())


def databases(profile: Profile) -> dict[str, str]:
    pb = profile.pgbouncer
    value = formats.connstring_value
    host = server_host(profile)
    where = f"host={value(host)}" if host else "host="  # no host: checks.pgbouncer_server_host refuses the profile
    return {name: f"{where} port={pb.server_port} dbname={value(name)}" for name in pb.databases}


def server_connections(profile: Profile, items: list[Setting] | None = None) -> int:
    """Server connections all PgBouncer replicas may open: databases x replicas x per database the users' pools
    (users x (default_pool_size + reserve_pool_size)), capped by max_db_connections (0: no cap), as rendered."""
    pb = profile.pgbouncer
    values = {s.key: s.value for s in (items if items is not None else settings(profile))}
    per_db = len(pb.users) * (values["default_pool_size"] + values["reserve_pool_size"])
    if values.get("max_db_connections"):
        per_db = min(per_db, values["max_db_connections"])
    return len(pb.databases) * per_db * pb.replicas


def auth_sql(profile: Profile) -> list[str]:
    """The lookup function auth_query calls, one statement per item (CloudNativePG's postInitApplicationSQL)."""
    name = profile.pgbouncer.auth_user
    user = formats.pg_identifier(name)
    return [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {formats.pg_sql_literal(name)}) "
        f"THEN CREATE ROLE {user} LOGIN; END IF; END $$",
        f"CREATE SCHEMA IF NOT EXISTS {LOOKUP_SCHEMA}",
        f"REVOKE ALL ON SCHEMA {LOOKUP_SCHEMA} FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA {LOOKUP_SCHEMA} TO {user}",
        f"CREATE OR REPLACE FUNCTION {LOOKUP_FUNCTION}(p_username text, OUT uname text, OUT phash text)\n"
        "RETURNS SETOF record\nLANGUAGE sql STABLE SECURITY DEFINER\nSET search_path = pg_catalog, pg_temp\n"
        "AS $$\n  SELECT a.rolname::text, a.rolpassword::text\n  FROM pg_catalog.pg_authid AS a\n"
        "  WHERE a.rolname = p_username\n    AND a.rolcanlogin\n"
        "    AND (a.rolvaliduntil IS NULL OR a.rolvaliduntil > pg_catalog.now())\n$$",
        f"REVOKE ALL ON FUNCTION {LOOKUP_FUNCTION}(text) FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {LOOKUP_FUNCTION}(text) TO {user}",
    ]


def auth_sql_file(profile: Profile) -> str:
    names = formats.comment(", ".join(profile.pgbouncer.databases))
    user = formats.comment(profile.pgbouncer.auth_user)
    head = [f"-- PgBouncer's auth_query lookup for environment {profile.environment}, rendered by perfstack: do not edit.",
            "-- Run as a superuser (the function reads pg_catalog.pg_authid) in every pooled database: PgBouncer",
            f"-- runs auth_query in the database the client asks for ({names}). Set {user}'s",
            "-- password separately (it is the one in PgBouncer's userlist Secret).",
            "-- Only live roles are returned: rolcanlogin, and VALID UNTIL not passed (CVE-2025-2291).", ""]
    return "\n".join(head) + ";\n\n".join(auth_sql(profile)) + ";\n"


def _stats_users(profile: Profile) -> Setting:
    """pgbouncer.stats_users, plus auth_user: the one role in the userlist, which pgbouncer_exporter (the
    monitoring sidecar) logs into the admin console as, with the password of the same Secret."""
    pb = profile.pgbouncer
    users = [*pb.stats_users, *([pb.auth_user] if pb.auth_user not in pb.stats_users else [])]
    text = ",".join(users)
    return _setting("stats_users", text, text, "pgbouncer.stats_users + pgbouncer.auth_user (the exporter's login)")


def render(profile: Profile) -> Part:
    items = settings(profile)
    ini = render_template("pgbouncer.ini.j2", profile=profile, settings=items, databases=databases(profile),
                          line=formats.ini_line, comment=formats.comment)
    return Part(settings=items, files={paths.PGBOUNCER_INI: ini, paths.PGBOUNCER_AUTH_SQL: auth_sql_file(profile)},
                derived={"server_connections": server_connections(profile, items),
                         "surge_server_connections": server_connections(profile, items) // profile.pgbouncer.replicas
                         * ROLLING_SURGE, "rolling_surge": ROLLING_SURGE, "server_host": server_host(profile),
                         "auth_sql": auth_sql(profile), "image": serverversions.PGBOUNCER_RELEASES[
                             profile.pgbouncer.version].image})
