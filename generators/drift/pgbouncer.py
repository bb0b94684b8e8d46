"""PgBouncer drift: the rendered [pgbouncer] settings against `SHOW CONFIG`, and each rendered pool's size
against `SHOW DATABASES`, read on the admin console (`dbname=pgbouncer`) with psycopg 3.

The admin console speaks only the simple query protocol and has no transactions: the connection is in
autocommit with prepared statements off, and runs nothing but SHOW commands.

Which keys are compared: every rendered [pgbouncer] key except the deployment-local ones in
NOT_COMPARED (where PgBouncer listens, and who may connect and how: listen_*, auth_*, admin_users,
stats_users). Those differ by design between a pod, a test server and a laptop, and they are access
control, not tuning; drift would report them on every non-production run.
"""

from __future__ import annotations

import re
from typing import Any

from .. import paths
from ..bundle import Bundle
from .postgres import redact
from .report import CHANGED, EXTRA, MISSING, Difference, TargetReport, failed

TARGET = "pgbouncer"
CONNECT_TIMEOUT_S = 3
NOT_COMPARED = frozenset({
    "listen_addr", "listen_port", "unix_socket_dir", "logfile", "pidfile",
    "auth_type", "auth_file", "auth_user", "auth_query", "auth_hba_file", "admin_users", "stats_users",
})
INI_FILE = paths.PGBOUNCER_INI
ADMIN_DATABASE = "pgbouncer"  # the admin console's own pseudo-database, always listed by SHOW DATABASES
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def ini_databases(ini: str) -> dict[str, dict[str, str]]:
    """The [databases] section of a rendered pgbouncer.ini: name -> its connection-string parameters."""
    databases: dict[str, dict[str, str]] = {}
    section = ""
    for line in ini.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith((";", "#")):
            continue
        header = re.fullmatch(r"\[(\w+)\]", stripped)
        if header:
            section = header.group(1)
            continue
        if section == "databases" and "=" in stripped:
            name, _, spec = stripped.partition("=")
            databases[name.strip()] = dict(re.findall(r"(\w+)=(\S+)", spec))
    return databases


def same(expected: str, actual: str | None) -> bool:
    """Numbers compare as numbers (SHOW CONFIG prints '3' for 3 s, '1.5' for 1.5 s), words exactly."""
    if actual is None:
        return False
    if _NUMBER.match(expected) and _NUMBER.match(actual):
        return float(expected) == float(actual)
    return expected == actual


def compare(bundle: Bundle, config: dict[str, str | None], pools: dict[str, dict[str, Any]]) -> tuple[list[Difference], int]:
    diffs: list[Difference] = []
    settings = {k: s for k, s in bundle.target_settings(TARGET).items() if k not in NOT_COMPARED}
    for key, setting in settings.items():
        if key not in config:
            diffs.append(Difference(key, MISSING, setting.text, None, note="this PgBouncer has no such setting"))
        elif not same(setting.text, config[key]):
            diffs.append(Difference(key, CHANGED, setting.text, config[key] or ""))
    checked = len(settings)
    rendered = ini_databases(bundle.files.get(INI_FILE, ""))
    defaults = {"pool_size": "default_pool_size", "min_pool_size": "min_pool_size",
                "reserve_pool": "reserve_pool_size"}
    for name, spec in rendered.items():
        live = pools.get(name)
        if live is None:
            diffs.append(Difference(f"databases.{name}", MISSING, _spec_text(spec), None))
            continue
        # A per-database pool_size= (or reserve_pool=) wins over the [pgbouncer] default, as in PgBouncer.
        for column, default_key in defaults.items():
            if column not in live:
                continue  # an older PgBouncer without this column in SHOW DATABASES
            expected = spec.get(column) or _text(bundle, default_key)
            if expected is None:
                continue
            checked += 1
            actual = str(live[column]) if live[column] is not None else None
            if not same(expected, actual):
                diffs.append(Difference(f"databases.{name}.{column}", CHANGED, expected, actual))
    for name in sorted(set(pools) - set(rendered) - {ADMIN_DATABASE}):
        diffs.append(Difference(f"databases.{name}", EXTRA, None, f"dbname={pools[name].get('database')}"))
    return diffs, checked


def _text(bundle: Bundle, key: str) -> str | None:
    setting = bundle.setting(f"{TARGET}.{key}")
    return setting.text if setting else None


def _spec_text(spec: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in spec.items())


def read(dsn: str) -> tuple[dict[str, str | None], dict[str, dict[str, Any]]]:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    params: dict[str, Any] = {}
    if "connect_timeout" not in conninfo_to_dict(dsn):
        params["connect_timeout"] = CONNECT_TIMEOUT_S
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None, **params) as conn:
        cur = conn.execute("SHOW CONFIG")
        columns = [c.name for c in cur.description or []]
        config = {row[columns.index("key")]: row[columns.index("value")] for row in cur.fetchall()}
        cur = conn.execute("SHOW DATABASES")
        columns = [c.name for c in cur.description or []]
        pools = {row[0]: dict(zip(columns, row, strict=True)) for row in cur.fetchall()}
    return config, pools


def check(bundle: Bundle, dsn: str) -> TargetReport:
    endpoint = redact(dsn)
    try:
        config, pools = read(dsn)
    except Exception as exc:  # noqa: BLE001 - reported; the other targets go on
        return failed(TARGET, endpoint, f"{type(exc).__name__}: {str(exc).strip()}")
    diffs, checked = compare(bundle, config, pools)
    return TargetReport(TARGET, endpoint, checked=checked, differences=diffs,
                        notes=[f"not compared (deployment-local): {', '.join(sorted(NOT_COMPARED & set(bundle.target_settings(TARGET))))}"])
