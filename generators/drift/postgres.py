"""PostgreSQL drift: the rendered settings against `pg_settings`, read with psycopg 3.

Everything is read in one READ ONLY transaction with a short connect timeout and a short
statement timeout; nothing is written. Values are compared in the unit PostgreSQL reports
(`pg_settings.unit`: 8kB blocks, kB, MB, B, ms, s, min), so `shared_buffers = 4GB` equals
`524288` x 8kB. Where a value came from is PostgreSQL's own `source`, `sourcefile:sourceline`.

The role needs only `pg_read_all_settings` (to see `sourcefile`), e.g.

    CREATE ROLE perfstack_drift LOGIN IN ROLE pg_read_all_settings;
    ALTER ROLE perfstack_drift SET default_transaction_read_only = on;
    -- optional: the value a pending restart applies
    GRANT SELECT ON pg_catalog.pg_file_settings TO perfstack_drift;
    GRANT EXECUTE ON FUNCTION pg_catalog.pg_show_all_file_settings() TO perfstack_drift;
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..bundle import Bundle, Setting
from .report import CHANGED, MISSING, PENDING_RESTART, Difference, TargetReport, failed

TARGET = "postgres"
CONNECT_TIMEOUT_S = 3
STATEMENT_TIMEOUT = "5s"

# PostgreSQL's memory and time units (case-sensitive, as the server parses them), in bytes and microseconds.
MEMORY_UNITS = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
TIME_UNITS_US = {"us": 1, "ms": 1000, "s": 1_000_000, "min": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
_NUMBER_UNIT = re.compile(r"^\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")
_BOOL = {"on": "on", "off": "off", "true": "on", "false": "off", "yes": "on", "no": "off", "1": "on", "0": "off"}

QUERY_SETTINGS = ("SELECT name, setting, unit, vartype, source, sourcefile, sourceline, pending_restart "
                  "FROM pg_catalog.pg_settings")
QUERY_FILE_SETTINGS = ("SELECT name, setting, sourcefile, sourceline FROM pg_catalog.pg_file_settings "
                       "ORDER BY seqno")


@dataclass(frozen=True)
class LiveSetting:
    name: str
    setting: str
    unit: str | None
    vartype: str
    source: str
    sourcefile: str | None
    sourceline: int | None
    pending_restart: bool


def unit_size(unit: str | None) -> tuple[str, float] | None:
    """pg_settings.unit -> ('memory', bytes per unit) or ('time', microseconds per unit); None if unitless."""
    if not unit:
        return None
    match = re.fullmatch(r"(\d*)\s*([A-Za-z]+)", unit)
    if not match:
        return None
    count = int(match[1]) if match[1] else 1
    if match[2] in MEMORY_UNITS:
        return "memory", count * MEMORY_UNITS[match[2]]
    if match[2] in TIME_UNITS_US:
        return "time", count * TIME_UNITS_US[match[2]]
    return None


def to_server_units(text: str, unit: str | None) -> float | None:
    """A value as written in a config file (e.g. '4GB', '30s', '131072') in the setting's own unit
    (e.g. 524288 for 8kB blocks), as PostgreSQL converts it; None when it is not a number."""
    match = _NUMBER_UNIT.match(text.strip().strip("'"))
    if not match:
        return None
    number, suffix = float(match[1]), match[2]
    if not suffix:
        return number
    base = unit_size(unit)
    if base is None:
        return None
    kind, size = base
    if kind == "memory" and suffix in MEMORY_UNITS:
        return number * MEMORY_UNITS[suffix] / size
    if kind == "time" and suffix in TIME_UNITS_US:
        return number * TIME_UNITS_US[suffix] / size
    return None


def display(value: float, unit: str | None) -> str:
    """A number in the setting's unit, written as the rendered files write it ('1GB', '5041kB', '30s')."""
    base = unit_size(unit)
    if base is None:
        return f"{value:g}"
    kind, size = base
    total = value * size
    if value < 0:  # -1 and the like: special "disabled" values have no unit
        return f"{value:g}"
    if kind == "memory":
        if total % 1024:
            return f"{int(total)}B"
        kb = int(total // 1024)
        if kb and kb % (1024 * 1024) == 0:
            return f"{kb // (1024 * 1024)}GB"
        if kb and kb % 1024 == 0:
            return f"{kb // 1024}MB"
        return f"{kb}kB"
    us = int(total)
    if us == 0:
        return "0"
    if us % 1000:
        return f"{us}us"
    ms = us // 1000
    for name, factor in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms % factor == 0:
            return f"{ms // factor}{name}"
    return f"{ms}ms"


def values_equal(expected_text: str, live: LiveSetting) -> bool:
    """Whether the rendered text and the live pg_settings value mean the same thing."""
    text = expected_text.strip().strip("'")
    if live.vartype in ("integer", "real"):
        expected = to_server_units(text, live.unit)
        if expected is None:
            return False
        actual = float(live.setting)
        if live.vartype == "integer":
            return round(expected) == round(actual)
        return math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-12)
    if live.vartype == "bool":
        return _BOOL.get(text.lower(), text.lower()) == live.setting
    if live.vartype == "enum":
        return text.lower() == live.setting.lower()
    # a string keeps its blanks (log_line_prefix ends with a space)
    return text == live.setting or expected_text == live.setting


def live_display(setting: str, live: LiveSetting) -> str:
    """A live value (pg_settings.setting, or a pg_file_settings value) in the rendered files' style."""
    if live.vartype in ("integer", "real"):
        number = to_server_units(setting, live.unit)
        if number is not None:
            return display(number, live.unit)
    return setting.strip().strip("'")


def where(source: str | None, sourcefile: str | None, sourceline: int | None) -> str | None:
    if not source and not sourcefile:
        return None
    text = source or ""
    if sourcefile:
        text += f" {sourcefile}" + (f":{sourceline}" if sourceline is not None else "")
    return text.strip()


def compare(expected: dict[str, Setting], live: dict[str, LiveSetting],
            file_values: dict[str, tuple[str, str | None, int | None]] | None) -> tuple[list[Difference], list[str]]:
    """Differences between the managed settings and pg_settings; notes on unmanaged pending restarts.

    file_values: name -> (value, sourcefile, sourceline) from pg_file_settings (the value a restart applies),
    or None when the role may not read that view.
    """
    diffs: list[Difference] = []
    notes: list[str] = []
    for key, setting in expected.items():
        row = live.get(key)
        if row is None:
            diffs.append(Difference(key, MISSING, setting.text, None,
                                    note="this server has no such parameter (another PostgreSQL version?)"))
            continue
        source = where(row.source, row.sourcefile, row.sourceline)
        running_ok = values_equal(setting.text, row)
        pending = file_values.get(key) if (row.pending_restart and file_values is not None) else None
        if not running_ok:
            note = None
            if row.pending_restart and pending is None:
                note = "a restart is pending; this role cannot read the value it applies (pg_file_settings)"
            elif pending is not None and values_equal(setting.text, _with_setting(row, pending[0])):
                note = f"a restart is pending and applies the expected {setting.text}"
            elif pending is not None:
                note = f"a restart is pending and applies {live_display(pending[0], row)}"
            diffs.append(Difference(key, CHANGED, setting.text, live_display(row.setting, row), source, note))
        elif row.pending_restart:
            running = live_display(row.setting, row)
            if pending is None:
                diffs.append(Difference(key, PENDING_RESTART, setting.text, None, source,
                                        f"running {running}; this role cannot read the value a restart applies "
                                        "(grant SELECT on pg_file_settings)"))
            elif not values_equal(setting.text, _with_setting(row, pending[0])):
                diffs.append(Difference(key, PENDING_RESTART, setting.text, live_display(pending[0], row),
                                        where("configuration file", pending[1], pending[2]),
                                        f"running {running} until a restart"))
    for key in sorted(k for k, row in live.items() if row.pending_restart and k not in expected):
        notes.append(f"{key} is not managed by the profile and waits for a restart")
    return diffs, notes


def _with_setting(row: LiveSetting, text: str) -> LiveSetting:
    """The live row with a file value converted to the row's unit, so values_equal can compare it."""
    number = to_server_units(text, row.unit) if row.vartype in ("integer", "real") else None
    value = f"{number:.12g}" if number is not None else text.strip().strip("'")
    return LiveSetting(row.name, value, row.unit, row.vartype, row.source, row.sourcefile, row.sourceline, False)


def redact(dsn: str) -> str:
    """A DSN (key=value or URI) without its password."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - an unparsable DSN is reported by connect; never echo it raw
        return "<unparsable DSN>"
    for key in ("password", "sslpassword"):
        params.pop(key, None)
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def read(dsn: str) -> tuple[dict[str, LiveSetting], dict[str, tuple[str, str | None, int | None]] | None]:
    """Read pg_settings (and pg_file_settings when allowed) in one READ ONLY transaction."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    params: dict[str, Any] = {}
    if "connect_timeout" not in conninfo_to_dict(dsn):
        params["connect_timeout"] = CONNECT_TIMEOUT_S
    with psycopg.connect(dsn, application_name="perfstack-drift", **params) as conn:
        conn.read_only = True
        with conn.transaction(force_rollback=True):
            with conn.cursor() as cur:
                # Our own statement_timeout would show in pg_settings as a 'session' value: read the
                # server's first (one in-memory row, no locks), then bound every other statement.
                cur.execute(QUERY_SETTINGS + " WHERE name = 'statement_timeout'")
                own = cur.fetchall()
                cur.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
                cur.execute(QUERY_SETTINGS)
                live = {row[0]: LiveSetting(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]))
                        for row in [*cur.fetchall(), *own]}
                file_values: dict[str, tuple[str, str | None, int | None]] | None = None
                if any(row.pending_restart for row in live.values()):
                    cur.execute("SELECT has_table_privilege('pg_catalog.pg_file_settings', 'SELECT') "
                                "AND has_function_privilege('pg_catalog.pg_show_all_file_settings()', 'EXECUTE')")
                    allowed = cur.fetchone()
                    if allowed and allowed[0]:
                        cur.execute(QUERY_FILE_SETTINGS)
                        file_values = {}
                        for name, value, sourcefile, sourceline in cur.fetchall():
                            file_values[name.lower()] = (value, sourcefile, sourceline)  # the last one wins, as in PostgreSQL
    return live, file_values


# The roles' own settings (ALTER ROLE ... SET, in every database): pg_db_role_setting is readable by any role.
QUERY_ROLE_SETTINGS = ("SELECT r.rolname, unnest(s.setconfig) FROM pg_catalog.pg_db_role_setting s "
                       "JOIN pg_catalog.pg_roles r ON r.oid = s.setrole WHERE s.setdatabase = 0")


def read_role_settings(dsn: str) -> dict[tuple[str, str], str]:
    """(role, parameter) -> value as ALTER ROLE ... SET stored it."""
    import psycopg

    with psycopg.connect(dsn, application_name="perfstack-drift", connect_timeout=CONNECT_TIMEOUT_S) as conn:
        conn.read_only = True
        rows = conn.execute(QUERY_ROLE_SETTINGS).fetchall()
    out = {}
    for role, entry in rows:
        name, _, value = str(entry).partition("=")
        out[(role, name.lower())] = value
    return out


def compare_roles(expected: list[tuple[str, Setting]], live: dict[str, LiveSetting],
                  role_values: dict[tuple[str, str], str]) -> list[Difference]:
    """The per-role settings (roles.sql) against pg_db_role_setting, in each parameter's unit."""
    diffs = []
    for role, setting in expected:
        key = f"{setting.key} (role {role})"
        value = role_values.get((role, setting.key))
        row = live.get(setting.key)
        if value is None:
            diffs.append(Difference(key, MISSING, setting.text, None, note=f"not set on role {role}: run roles.sql"))
        elif row is None or not values_equal(setting.text, _with_setting(row, value)):
            diffs.append(Difference(key, CHANGED, setting.text, value, f"ALTER ROLE {role} SET"))
    return diffs


def check(bundle: Bundle, dsn: str) -> TargetReport:
    endpoint = redact(dsn)
    # Per-role settings (roles.sql) are the roles' own, not pg_settings' server values: read from pg_db_role_setting.
    settings = bundle.target_settings(TARGET)
    expected = {k: s for k, s in settings.items() if s.scope == "server"}
    per_role = [(role, s) for role in bundle.profile.postgres.app_roles for s in settings.values() if s.scope == "role"]
    try:
        live, file_values = read(dsn)
        role_values = read_role_settings(dsn) if per_role else {}
    except Exception as exc:  # noqa: BLE001 - any failure to read is reported, and the other targets go on
        return failed(TARGET, endpoint, f"{type(exc).__name__}: {str(exc).strip()}")
    diffs, notes = compare(expected, live, file_values)
    diffs += compare_roles(per_role, live, role_values)
    return TargetReport(TARGET, endpoint, checked=len(expected) + len(per_role), differences=diffs, notes=notes)
