"""PgBouncer and Redis version facts: the releases perfstack renders for, the image each selects, the
settings each knows (name, type, range) and the known CVEs of each pinned release.

Like pgversions.py for PostgreSQL. `pgbouncer.version` and `redis.version` pick a row; the row's
image is what the Kubernetes objects run, and `pgbouncer.settings` / `redis.settings` overrides are
validated against the row's settings at load (validation.py) and parsed here into the same internal unit
as a rule's value (ms for durations, bytes for sizes), so checks read an override like any rule.

Sources (as of December 2026): the PgBouncer changelog (pgbouncer.org/changelog: 1.20 auth_dbname and
track_extra_parameters, 1.21 max_prepared_statements (default 0), 1.24 max_user_client_connections,
max_db_client_connections and max_prepared_statements 200 by default); the CVE records CVE-2025-2291
(auth_query ignored VALID UNTIL, fixed in 1.24.1), CVE-2026-6664..6668 (fixed in 1.25.2), CVE-2026-6669
(through 1.25.2) and CVE-2026-107348..107350 (fixed in 1.26.1); Redis's release notes and
CVE-2025-49844 (Lua use-after-free, fixed in 7.2.11/7.4.6/8.2.2) and CVE-2026-81934 (TLS use-after-free,
fixed in 7.2.16, 7.4.11, 8.2.9). Image digests could not be verified from the machine perfstack was
built on (no registry access), so the images are pinned to the patched release tag, never a floating
major tag; where policy requires digests, resolve the tag in your registry mirror and pin `@sha256:`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import units


@dataclass(frozen=True)
class Kind:
    """A setting's type: how a profile value is checked and rendered."""

    name: str  # int | bool | seconds | ms | bytes | enum | text
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] = ()


def INT(low: int = 0, high: int = 2_147_483_647) -> Kind:  # noqa: N802 (a type constructor)
    return Kind("int", low, high)


BOOL, SECONDS, MS, BYTES, TEXT = Kind("bool"), Kind("seconds"), Kind("ms"), Kind("bytes"), Kind("text")


def ENUM(*choices: str) -> Kind:  # noqa: N802
    return Kind("enum", choices=choices)


@dataclass(frozen=True)
class Release:
    version: str  # the minor version a profile names (1.26, 8.2)
    patch: str  # the pinned patch release
    image: str
    cves: tuple[str, ...] = ()  # known CVEs of the pinned patch release
    since: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- PgBouncer
TLS_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
PGBOUNCER_SETTINGS: dict[str, Kind] = {
    "pool_mode": ENUM("session", "transaction", "statement"),
    "max_client_conn": INT(1, 1_000_000), "default_pool_size": INT(1, 100_000), "min_pool_size": INT(0, 100_000),
    "reserve_pool_size": INT(0, 100_000), "reserve_pool_timeout": SECONDS, "max_db_connections": INT(0, 1_000_000),
    "max_user_connections": INT(0, 1_000_000), "server_round_robin": BOOL, "server_lifetime": SECONDS,
    "server_idle_timeout": SECONDS, "server_connect_timeout": SECONDS, "server_login_retry": SECONDS,
    "server_reset_query": TEXT, "server_reset_query_always": BOOL, "server_check_delay": SECONDS,
    "server_check_query": TEXT, "server_fast_close": BOOL, "client_login_timeout": SECONDS,
    "autodb_idle_timeout": SECONDS, "dns_max_ttl": SECONDS, "dns_nxdomain_ttl": SECONDS, "query_timeout": SECONDS,
    "query_wait_timeout": SECONDS, "client_idle_timeout": SECONDS, "idle_transaction_timeout": SECONDS,
    "suspend_timeout": SECONDS, "pkt_buf": INT(512, 1_048_576), "max_packet_size": INT(1024, 2_147_483_647),
    "listen_backlog": INT(1, 65_535), "sbuf_loopcnt": INT(0, 1_000_000), "tcp_socket_buffer": INT(0, 16_777_216),
    "tcp_keepalive": BOOL, "tcp_keepcnt": INT(0, 127), "tcp_keepidle": INT(0, 32_767), "tcp_keepintvl": INT(0, 32_767),
    "tcp_user_timeout": INT(0, 2_147_483_647), "log_connections": BOOL, "log_disconnections": BOOL,
    "log_pooler_errors": BOOL, "log_stats": BOOL, "stats_period": SECONDS, "verbose": INT(0, 3),
    "application_name_add_host": BOOL, "disable_pqexec": BOOL, "ignore_startup_parameters": TEXT,
    "server_tls_sslmode": ENUM(*TLS_MODES), "server_tls_protocols": TEXT, "server_tls_ciphers": TEXT,
    "client_tls_sslmode": ENUM(*TLS_MODES), "client_tls_protocols": TEXT, "client_tls_ciphers": TEXT,
    "auth_type": ENUM("scram-sha-256", "md5", "plain", "trust"),
    # later than 1.18
    "auth_dbname": TEXT, "track_extra_parameters": TEXT, "max_prepared_statements": INT(0, 100_000),
    "max_user_client_connections": INT(0, 1_000_000), "max_db_client_connections": INT(0, 1_000_000),
}
PGBOUNCER_SINCE = {"auth_dbname": "1.20", "track_extra_parameters": "1.20", "max_prepared_statements": "1.21",
                   "max_user_client_connections": "1.24", "max_db_client_connections": "1.24"}
# Settings perfstack wires to the pod and the Secrets itself: an override would point PgBouncer at a file or
# port the objects do not mount or expose.
PGBOUNCER_WIRED = {"listen_addr": "pgbouncer.listen_addr", "listen_port": "pgbouncer.listen_port",
                   "auth_file": "secrets.postgres_password", "auth_user": "pgbouncer.auth_user",
                   "auth_query": "the rendered lookup function (pgbouncer/auth_query.sql)",
                   "admin_users": "pgbouncer.admin_users", "stats_users": "pgbouncer.stats_users",
                   "client_tls_cert_file": "secrets.pgbouncer_tls", "client_tls_key_file": "secrets.pgbouncer_tls",
                   "server_tls_ca_file": "secrets.postgres_ca", "logfile": "the pod's stdout",
                   "pidfile": "the pod", "unix_socket_dir": "the pod"}
_PGB_CVE_1_18 = ("CVE-2025-2291", "CVE-2026-6664", "CVE-2026-6665", "CVE-2026-6666", "CVE-2026-6667",
                 "CVE-2026-6668", "CVE-2026-6669", "CVE-2026-107350")
PGBOUNCER_IMAGE = "ghcr.io/cloudnative-pg/pgbouncer:{patch}"
PGBOUNCER_RELEASES: dict[str, Release] = {r.version: r for r in (
    Release("1.18", "1.18.0", PGBOUNCER_IMAGE.format(patch="1.18.0"), _PGB_CVE_1_18),
    Release("1.21", "1.21.0", PGBOUNCER_IMAGE.format(patch="1.21.0"), _PGB_CVE_1_18 + ("CVE-2026-107348",
                                                                                        "CVE-2026-107349")),
    Release("1.24", "1.24.1", PGBOUNCER_IMAGE.format(patch="1.24.1"), _PGB_CVE_1_18[1:] + ("CVE-2026-107348",
                                                                                            "CVE-2026-107349")),
    Release("1.25", "1.25.2", PGBOUNCER_IMAGE.format(patch="1.25.2"), ("CVE-2026-6669", "CVE-2026-107348",
                                                                        "CVE-2026-107349", "CVE-2026-107350")),
    Release("1.26", "1.26.1", PGBOUNCER_IMAGE.format(patch="1.26.1")),
)}
PGBOUNCER_VERSIONS = tuple(PGBOUNCER_RELEASES)
PGBOUNCER_DEFAULT = "1.26"
# max_prepared_statements' default by version (0 turns protocol-level prepared statement support off).
PREPARED_DEFAULT = {"1.21": 0, "1.24": 200, "1.25": 200, "1.26": 200}

# ---------------------------------------------------------------- Redis
YESNO = Kind("yesno")
REDIS_SETTINGS: dict[str, Kind] = {
    "maxmemory": BYTES, "maxmemory-policy": ENUM("noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
                                                 "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"),
    "maxmemory-samples": INT(1, 64), "maxmemory-eviction-tenacity": INT(0, 100), "maxclients": INT(1, 1_000_000),
    "timeout": SECONDS, "tcp-keepalive": SECONDS, "tcp-backlog": INT(0, 65_535), "hz": INT(1, 500),
    "dynamic-hz": YESNO, "databases": INT(1, 10_000), "appendonly": YESNO,
    "appendfsync": ENUM("always", "everysec", "no"), "save": TEXT, "no-appendfsync-on-rewrite": YESNO,
    "auto-aof-rewrite-percentage": INT(0, 10_000), "auto-aof-rewrite-min-size": BYTES,
    "lazyfree-lazy-eviction": YESNO, "lazyfree-lazy-expire": YESNO, "lazyfree-lazy-server-del": YESNO,
    "lazyfree-lazy-user-del": YESNO, "lazyfree-lazy-user-flush": YESNO, "replica-lazy-flush": YESNO,
    "lfu-log-factor": INT(0, 1_000_000), "lfu-decay-time": INT(0, 1_000_000), "activedefrag": YESNO,
    "active-expire-effort": INT(1, 10), "io-threads": INT(1, 128), "slowlog-log-slower-than": INT(-1, 2_147_483_647),
    "slowlog-max-len": INT(0, 1_000_000), "latency-monitor-threshold": INT(0, 1_000_000),
    "client-output-buffer-limit": TEXT, "notify-keyspace-events": TEXT, "maxmemory-clients": BYTES,
    "list-max-listpack-size": INT(-5, 1_000_000), "hash-max-listpack-entries": INT(0, 1_000_000),
    "protected-mode": YESNO, "loglevel": ENUM("debug", "verbose", "notice", "warning"),
}
REDIS_SINCE = {"maxmemory-clients": "7.0", "hash-max-listpack-entries": "7.0", "list-max-listpack-size": "7.0"}
REDIS_WIRED = {"port": "redis.port", "bind": "the pod", "dir": "the pod's volume", "requirepass": "secrets.redis_password",
               "user": "redis.acl_user and secrets.redis_app_password", "daemonize": "the pod",
               "logfile": "the pod's stdout", "aclfile": "redis.acl_user"}
REDIS_IMAGE = "docker.io/library/redis:{patch}"
_REDIS_CVE_7_0 = ("CVE-2025-49844", "CVE-2025-46817", "CVE-2025-46818", "CVE-2025-46819", "CVE-2026-81934")
REDIS_RELEASES: dict[str, Release] = {r.version: r for r in (
    Release("7.0", "7.0.15", REDIS_IMAGE.format(patch="7.0.15"), _REDIS_CVE_7_0),  # end of life: never patched
    Release("7.2", "7.2.16", REDIS_IMAGE.format(patch="7.2.16")),
    Release("7.4", "7.4.11", REDIS_IMAGE.format(patch="7.4.11")),
    Release("8.2", "8.2.9", REDIS_IMAGE.format(patch="8.2.9")),
)}
REDIS_VERSIONS = tuple(REDIS_RELEASES)
REDIS_DEFAULT = "8.2"


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def at_least(version: str, since: str) -> bool:
    return _key(version) >= _key(since)


def pgbouncer_has(name: str, version: str) -> bool:
    return name in PGBOUNCER_SETTINGS and at_least(version, PGBOUNCER_SINCE.get(name, "1.18"))


def redis_has(name: str, version: str) -> bool:
    return name in REDIS_SETTINGS and at_least(version, REDIS_SINCE.get(name, "7.0"))


# ---------------------------------------------------------------- overrides: validate and parse
@dataclass(frozen=True)
class Component:
    name: str  # pgbouncer | redis
    title: str
    settings: dict[str, Kind]
    since: dict[str, str]
    wired: dict[str, str]
    versions: tuple[str, ...]
    default: str


PGBOUNCER = Component("pgbouncer", "PgBouncer", PGBOUNCER_SETTINGS, PGBOUNCER_SINCE, PGBOUNCER_WIRED,
                      PGBOUNCER_VERSIONS, PGBOUNCER_DEFAULT)
REDIS = Component("redis", "Redis", REDIS_SETTINGS, REDIS_SINCE, REDIS_WIRED, REDIS_VERSIONS, REDIS_DEFAULT)


def name_problem(component: Component, name: str, version: str) -> str | None:
    """Why `name` cannot be overridden for this version, or None."""
    import difflib

    if name in component.wired:
        return f"{name} is wired by perfstack from {component.wired[name]}; set that instead"
    if name not in component.settings:
        hint = difflib.get_close_matches(name, sorted(component.settings), n=1)
        return f"unknown {component.title} setting" + (f"; did you mean '{hint[0]}'?" if hint else "")
    since = component.since.get(name)
    if since and not at_least(version, since):
        return (f"{component.title} {version} has no {name} (it appeared in {component.title} {since}); "
                f"remove the override or change {component.name}.version")
    return None


def parse(component: Component, name: str, value: object) -> tuple[object, str]:
    """A profile override -> (value in the internal unit, text as written in the file). ValueError when bad."""
    kind = component.settings[name]
    if isinstance(value, bool) and kind.name not in ("bool", "yesno"):
        raise ValueError(f"{name} takes a {kind.name} value, not true/false")
    if kind.name == "int":
        if not isinstance(value, int) and not (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
            raise ValueError(f"{name} takes a whole number (got {value!r})")
        number = int(value)
        assert kind.low is not None and kind.high is not None
        if not kind.low <= number <= kind.high:
            raise ValueError(f"{name} {number} is outside {kind.low}..{kind.high}")
        return number, str(number)
    if kind.name in ("bool", "yesno"):
        if not isinstance(value, bool):
            raise ValueError(f"{name} takes true or false (got {value!r})")
        if kind.name == "yesno":
            return value, "yes" if value else "no"
        return value, "1" if value else "0"
    if kind.name == "seconds":
        # A bare number is seconds (what the server itself reads); a string carries its unit (30s, 500ms).
        if isinstance(value, (int, float)):
            if value < 0:
                raise ValueError(f"{name} cannot be negative (got {value!r})")
            ms = round(float(value) * 1000)
        else:
            try:
                ms = units.parse_duration(value)
            except units.UnitError as exc:
                raise ValueError(f"{name}: {exc}") from None
        if component.name == "redis":
            if ms % 1000:
                raise ValueError(f"{name} is whole seconds in Redis (got {value!r})")
            return ms, str(ms // 1000)
        return ms, str(units.ms_to_seconds(ms))
    if kind.name == "bytes":
        try:
            size = units.parse_size(value)
        except units.UnitError as exc:
            raise ValueError(f"{name}: {exc}") from None
        return size, str(size)
    if kind.name == "enum":
        if not isinstance(value, str) or value not in kind.choices:
            raise ValueError(f"{name} takes one of {', '.join(kind.choices)} (got {value!r})")
        return value, value
    text = str(value)
    if not text or any(c in text for c in "\n\r\x00;#") or (component.name == "pgbouncer" and "=" in text):
        raise ValueError(f"{name} must be one line without ';', '#' or '=' (got {value!r})")
    return text, text
