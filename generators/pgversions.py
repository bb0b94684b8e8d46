"""Which PostgreSQL major versions have a parameter, for parameters that came or went within 10-18.

From the PostgreSQL release notes. A parameter not listed exists in every supported version (10-18).
Used to refuse a `postgres.settings` override the profile's version would not start with, and by
the property tests to judge settings the local PostgreSQL 15 cannot check itself.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from importlib import resources
from typing import Any

from . import units

# The PostgreSQL major versions perfstack renders for (postgres.version), the one copy of the range.
OLDEST, NEWEST = 10, 18

# The first major version that has each parameter (when later than 10).
PARAMETER_SINCE = {
    "jit": 11, "jit_above_cost": 11, "jit_inline_above_cost": 11, "jit_optimize_above_cost": 11,
    "max_parallel_maintenance_workers": 11, "ssl_min_protocol_version": 12, "ssl_max_protocol_version": 12,
    "shared_memory_type": 12, "log_transaction_sample_rate": 12, "wal_keep_size": 13, "hash_mem_multiplier": 13,
    "logical_decoding_work_mem": 13, "max_slot_wal_keep_size": 13, "autovacuum_vacuum_insert_threshold": 13,
    "autovacuum_vacuum_insert_scale_factor": 13, "maintenance_io_concurrency": 13,
    "idle_session_timeout": 14, "client_connection_check_interval": 14, "compute_query_id": 14,
    "recovery_prefetch": 15, "log_startup_progress_interval": 15,
    "vacuum_buffer_usage_limit": 16, "io_combine_limit": 17, "summarize_wal": 17, "wal_summary_keep_time": 17,
    "transaction_timeout": 17, "allow_alter_system": 17, "event_triggers": 17, "sync_replication_slots": 17,
    "io_method": 18, "io_workers": 18, "io_max_combine_limit": 18, "autovacuum_worker_slots": 18,
    "md5_password_warnings": 18, "idle_replication_slot_timeout": 18, "file_copy_method": 18,
}
# The last major version that still has a parameter later removed.
PARAMETER_UNTIL = {
    "wal_keep_segments": 12, "operator_precedence_warning": 13, "vacuum_cleanup_index_scale_factor": 13,
    "stats_temp_directory": 14, "vacuum_defer_cleanup_age": 15, "promote_trigger_file": 15,
    "force_parallel_mode": 15, "old_snapshot_threshold": 16, "db_user_namespace": 16,
    "trace_recovery_messages": 16,
}
# Values of a parameter that need a later version than the parameter itself.
VALUE_SINCE = {("wal_compression", "lz4"): 15, ("wal_compression", "zstd"): 15}


def version_problem(name: str, version: int) -> str | None:
    """Why PostgreSQL `version` would refuse parameter `name`, or None when it has it."""
    since = PARAMETER_SINCE.get(name, OLDEST)
    if since > version:
        return f"PostgreSQL {version} has no {name} (it appeared in PostgreSQL {since})"
    until = PARAMETER_UNTIL.get(name, NEWEST)
    if until < version:
        return f"PostgreSQL {version} has no {name} (it was removed after PostgreSQL {until})"
    return None


# Parameters PostgreSQL parses as a list (GUC_LIST_INPUT in guc_tables.c): ALTER SYSTEM and ALTER ROLE take
# them as separate literals (`= 'a', 'b'`); one literal 'a,b' becomes a single element where the list is also
# GUC_LIST_QUOTE (each element is an identifier or a file name), and shared_preload_libraries = 'a,b' then
# asks for a library called "a,b" at the next start. tests/test_dba.py asks PostgreSQL 15 which of its
# string parameters take a list and compares with this table.
LIST_PARAMETERS = frozenset({
    "datestyle", "listen_addresses", "local_preload_libraries", "log_destination", "search_path",
    "session_preload_libraries", "shared_preload_libraries", "synchronous_standby_names", "temp_tablespaces",
    "unix_socket_directories", "wal_consistency_checking",
    "createrole_self_grant", "debug_io_direct",  # 16
    "restrict_nonsystem_relation_kind",  # 17 (and minor releases of 12-16 from August 2024)
    "log_connections", "oauth_validator_libraries",  # 18 (log_connections was a boolean before)
})
# The list parameters whose elements are quoted one by one (GUC_LIST_QUOTE): identifiers and file names.
LIST_QUOTE_PARAMETERS = frozenset({
    "local_preload_libraries", "search_path", "session_preload_libraries", "shared_preload_libraries",
    "temp_tablespaces", "unix_socket_directories", "oauth_validator_libraries",
})
LIBRARY_LISTS = ("shared_preload_libraries", "session_preload_libraries", "local_preload_libraries")


def library_list_problem(name: str, text: str) -> str | None:
    """A library list separated by spaces names one library with a space in its name: the server would not
    start (refused at load by validation.py, and by checks.postgres_list_values on a rendered part)."""
    if name.lower() not in LIBRARY_LISTS:
        return None
    bad = [e for e in text.split(",") if e.strip() and " " in e.strip().strip('"')]
    if not bad:
        return None
    return (f"{name} element {bad[0].strip()!r} holds a space: PostgreSQL would look for one library of that "
            "name and refuse to start; separate libraries with commas (pg_stat_statements,auto_explain)")


# Parameters a change of which takes a restart (pg_settings.context 'postmaster'): PostgreSQL 15's, plus those of
# other versions and of the extensions perfstack loads. A managed service calls these "static" (RDS applies them
# pending-reboot). tests/test_dba.py compares the PostgreSQL 15 part with a real server's pg_settings.
RESTART_PARAMETERS = frozenset({
    "archive_mode", "autovacuum_freeze_max_age", "autovacuum_max_workers", "autovacuum_multixact_freeze_max_age",
    "bonjour", "bonjour_name", "cluster_name", "config_file", "data_directory", "data_sync_retry",
    "dynamic_shared_memory_type", "event_source", "external_pid_file", "hba_file", "hot_standby", "huge_page_size",
    "huge_pages", "ident_file", "ignore_invalid_pages", "jit_provider", "listen_addresses", "logging_collector",
    "max_connections", "max_files_per_process", "max_locks_per_transaction", "max_logical_replication_workers",
    "max_pred_locks_per_transaction", "max_prepared_transactions", "max_replication_slots", "max_wal_senders",
    "max_worker_processes", "min_dynamic_shared_memory", "old_snapshot_threshold", "port", "recovery_target",
    "recovery_target_action", "recovery_target_inclusive", "recovery_target_lsn", "recovery_target_name",
    "recovery_target_time", "recovery_target_timeline", "recovery_target_xid", "shared_buffers",
    "shared_memory_type", "shared_preload_libraries", "superuser_reserved_connections", "track_activity_query_size",
    "track_commit_timestamp", "unix_socket_directories", "unix_socket_group", "unix_socket_permissions",
    "wal_buffers", "wal_decode_buffer_size", "wal_level", "wal_log_hints",
    # other versions
    "stats_temp_directory", "wal_keep_segments", "reserved_connections", "io_method", "io_max_concurrency",
    "io_max_combine_limit", "autovacuum_worker_slots", "max_notify_queue_pages",
    # extensions
    "pg_stat_statements.max",
})
# ---------------------------------------------------------------- values, by the server's own metadata
# generators/data/pg_settings/NN.json: every row of pg_settings (vartype, unit, min_val, max_val, enumvals)
# of a real PostgreSQL NN server, written by scripts/pg_settings_dump.py.
@cache
def pg_settings(version: int) -> dict[str, dict[str, Any]]:
    """pg_settings of PostgreSQL `version` by lower-cased name ({} for a version with no data file)."""
    try:
        text = resources.files("generators").joinpath(f"data/pg_settings/{version}.json").read_text()
    except FileNotFoundError:
        return {}
    rows = {name.lower(): row for name, row in json.loads(text)["settings"].items()}
    if "io_method" in rows and "io_uring" not in rows["io_method"].get("enumvals", []):
        # io_uring exists only in builds --with-liburing (Debian's and PGDG's are; the dumped build was not);
        # whether it may run is the io_method check's business (refused under CloudNativePG's seccomp).
        rows["io_method"] = {**rows["io_method"], "enumvals": [*rows["io_method"]["enumvals"], "io_uring"]}
    return rows


_BOOL_WORDS = frozenset({"on", "off", "true", "false", "yes", "no", "1", "0"})
_NUMBER = re.compile(r"\s*(?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<unit>[A-Za-z]+)?\s*")


def _limit(text: str) -> float:
    return float(text)


def _shown(number: float) -> str:
    return str(int(number)) if number == int(number) and abs(number) < 1e15 else f"{number:g}"


def value_problem(name: str, value: Any, version: int) -> str | None:
    """Why PostgreSQL `version` would refuse `value` for `name`, or read it as something else; None when fine.

    Judged by that version's pg_settings row: the type (bool, integer, real, string, enum), the unit (a
    bare number is in the parameter's unit; kB/MB/GB/TB and us/ms/s/min/h/d otherwise), min_val..max_val,
    and enumvals. A value the server would round (a size or duration below the parameter's unit) is refused,
    not rounded; so are octal- and hex-looking integers, which the server reads in base 8 or 16."""
    row = pg_settings(version).get(name.lower())
    if row is None or isinstance(value, (dict, list)) or value is None:
        return None
    vartype, where = row["vartype"], f"PostgreSQL {version}"
    if vartype == "bool":
        if isinstance(value, bool) or (isinstance(value, str) and value.strip().lower() in _BOOL_WORDS) \
                or (isinstance(value, int) and value in (0, 1)):
            return None
        return f"{where} reads {name} as a boolean: expected on or off (true/false, yes/no, 1/0), got {value!r}"
    if vartype == "enum":
        text = ("on" if value else "off") if isinstance(value, bool) else str(value)
        allowed = row.get("enumvals") or []
        if text.strip().lower() in {v.lower() for v in allowed}:
            return None
        return f"{where} has no {name} value {text!r}: allowed values are {', '.join(allowed)}"
    if vartype in ("integer", "real"):
        return _number_problem(name, value, row, where)
    return None  # string: any text (escaping is the emitters')


def _number_problem(name: str, value: Any, row: dict[str, Any], where: str) -> str | None:
    vartype, base = row["vartype"], row.get("unit") or ""
    what = "a whole number" if vartype == "integer" else "a number"
    if isinstance(value, bool):
        return f"{where} reads {name} as {what}{' of ' + base if base else ''}, got {value!r}"
    given_unit = ""
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value)
        match = _NUMBER.fullmatch(text)
        if not match:
            return f"{where} reads {name} as {what}{' with a unit' if base else ''}, got {value!r}"
        digits = match["num"].lstrip("+-")
        if vartype == "integer" and len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
            return (f"{value!r} has a leading zero, which PostgreSQL reads as octal ({name} = {text.strip()} would "
                    f"be {int(digits, 8) if set(digits) <= set('01234567') else 'refused'}): write it without the zero")
        number, given_unit = float(match["num"]), match["unit"] or ""
    if math.isnan(number) or math.isinf(number):
        return f"{where} refuses {value!r} for {name}: expected a finite number"
    if given_unit:
        try:
            number = units.pg_in_base_units(number, given_unit, base)
        except units.UnitError as exc:
            return f"{name}: {exc}"
    if vartype == "integer" and number != int(number):
        below, above = math.floor(number), math.ceil(number)
        return (f"{value!r} is not a whole number of {base or 'units'} for {name}: {where} would round it "
                f"(to {int(round(number))}); write {below} or {above}{' (in units of ' + base + ')' if base else ''}")
    low, high = _limit(row["min_val"]), _limit(row["max_val"])
    if not low <= number <= high:
        in_units = f" {base}" if base else ""
        given = f" ({_shown(number)}{in_units})" if given_unit else ""
        return (f"{value!r}{given} is out of range for {name} in {where}: allowed {_shown(low)} to "
                f"{_shown(high)}{in_units}")
    return None
