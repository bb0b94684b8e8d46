"""PgBouncer pools: pgbouncer.ini with no password in it (auth comes from a Secret that is not rendered)."""

from __future__ import annotations

from typing import Any

from . import formats, paths, units
from .bundle import Part, Setting
from .profile import Profile
from .templates import render_template

TARGET = "pgbouncer"
AUTH_FILE = paths.PGBOUNCER_AUTH_FILE  # mounted from the Kubernetes Secret; never rendered
TLS_CERT_FILE = paths.PGBOUNCER_TLS_CERT_FILE
TLS_KEY_FILE = paths.PGBOUNCER_TLS_KEY_FILE
AUTH_QUERY = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1"


def _setting(key: str, value: Any, text: str, rule: str, **inputs: Any) -> Setting:
    return Setting(TARGET, key, value, text, rule, inputs)


def _seconds_setting(key: str, ms: int) -> Setting:
    # PgBouncer reads times in seconds (fractions allowed) and SHOW CONFIG prints them the same way.
    text = f"{units.ms_to_seconds(ms)}"
    return _setting(key, ms, text, f"given by pgbouncer.{key}", **{key: units.format_duration(ms)})


def settings(profile: Profile) -> list[Setting]:
    pb = profile.pgbouncer
    given = "given by pgbouncer.{}".format
    return [
        _setting("listen_addr", pb.listen_addr, pb.listen_addr, given("listen_addr")),
        _setting("listen_port", pb.listen_port, str(pb.listen_port), given("listen_port")),
        _setting("auth_type", pb.auth_type, pb.auth_type, given("auth_type")),
        _setting("auth_file", AUTH_FILE, AUTH_FILE, "userlist mounted from the Secret "
                 f"'{profile.secrets.postgres_password.secret}' (not rendered)"),
        _setting("auth_user", pb.auth_user, pb.auth_user, given("auth_user")),
        _setting("auth_query", AUTH_QUERY, AUTH_QUERY, "look up other users' password hashes through auth_user"),
        _setting("pool_mode", pb.pool_mode, pb.pool_mode, given("pool_mode")),
        _setting("max_client_conn", pb.max_client_conn, str(pb.max_client_conn), given("max_client_conn")),
        _setting("default_pool_size", pb.default_pool_size, str(pb.default_pool_size), given("default_pool_size")),
        _setting("min_pool_size", pb.min_pool_size, str(pb.min_pool_size), given("min_pool_size")),
        _setting("reserve_pool_size", pb.reserve_pool_size, str(pb.reserve_pool_size), given("reserve_pool_size")),
        _seconds_setting("reserve_pool_timeout", pb.reserve_pool_timeout),
        _seconds_setting("server_idle_timeout", pb.server_idle_timeout),
        _seconds_setting("query_timeout", pb.query_timeout),
        _setting("admin_users", ",".join(pb.admin_users), ",".join(pb.admin_users), given("admin_users")),
        _setting("stats_users", ",".join(pb.stats_users), ",".join(pb.stats_users), given("stats_users")),
        _setting("ignore_startup_parameters", "extra_float_digits", "extra_float_digits",
                 "drivers (psycopg, JDBC) send it; PgBouncer would refuse the connection otherwise"),
        *client_tls(profile),
    ]


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


def databases(profile: Profile) -> dict[str, str]:
    pb = profile.pgbouncer
    value = formats.connstring_value
    return {name: f"host={value(pb.server_host)} port={pb.server_port} dbname={value(name)}" for name in pb.databases}


def server_connections(profile: Profile) -> int:
    """Server connections all PgBouncer replicas may open: pools x (pool size + reserve) x replicas."""
    pb = profile.pgbouncer
    return len(pb.databases) * (pb.default_pool_size + pb.reserve_pool_size) * pb.replicas


def render(profile: Profile) -> Part:
    items = settings(profile)
    ini = render_template("pgbouncer.ini.j2", profile=profile, settings=items, databases=databases(profile),
                          line=formats.ini_line, comment=formats.comment)
    return Part(settings=items, files={paths.PGBOUNCER_INI: ini},
                derived={"server_connections": server_connections(profile)})
