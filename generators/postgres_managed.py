"""What a managed PostgreSQL service accepts, from the rendered settings (part of the postgres target).

A service runs the server and its owner is not a superuser, so ALTER SYSTEM is not the way: RDS and Aurora take a
DB parameter group's parameters, each with its apply method (static parameters wait for a reboot), Cloud SQL
database flags, Azure Database for PostgreSQL server parameters. Values are written in the parameter's own unit
(shared_buffers in 8kB blocks, work_mem in kB, checkpoint_timeout in seconds), as those APIs take them.

Each service refuses some parameters (it sets them itself or offers its own switch): those are left out of the
file and reported as warnings with the reason and, where there is one, the service's own setting rendered
instead. The lists follow each service's documented modifiable parameters at the time of writing.
"""

from __future__ import annotations

from typing import Any

from . import paths, pgversions
from .bundle import Finding, Setting, dump_json
from .profile import Profile

# What each service does not let a parameter group / flags set, and why.
NOT_ALLOWED: dict[str, dict[str, str]] = {
    "rds": {
        "wal_level": "RDS sets wal_level itself; rds.logical_replication = 1 turns on logical decoding",
        "log_line_prefix": "RDS fixes the log line prefix (%t:%r:%u@%d:[%p]:) for its log exports",
    },
    "cloudsql": {
        "shared_buffers": "Cloud SQL sizes shared_buffers from the instance's memory; it is not a flag",
        "huge_pages": "Cloud SQL manages huge pages itself",
        "wal_buffers": "not a Cloud SQL flag",
        "wal_level": "Cloud SQL sets wal_level itself; cloudsql.logical_decoding = on turns on logical decoding",
        "log_line_prefix": "Cloud SQL fixes the log line prefix for Cloud Logging",
        "shared_preload_libraries": "not a Cloud SQL flag: pg_stat_statements is available without preloading",
        "superuser_reserved_connections": "Cloud SQL reserves its own connections",
        "io_method": "not a Cloud SQL flag",
    },
    "azure": {
        "superuser_reserved_connections": "Azure reserves its own connections for the service",
        "huge_pages": "Azure Database for PostgreSQL turns huge pages on itself where the SKU supports them",
    },
}
# The service's own switch that replaces a refused parameter, by the value rendered.
REPLACEMENTS: dict[str, dict[tuple[str, str], tuple[str, str]]] = {
    "rds": {("wal_level", "logical"): ("rds.logical_replication", "1")},
    "cloudsql": {("wal_level", "logical"): ("cloudsql.logical_decoding", "on")},
}
# PostgreSQL's bare units (kB unless listed) for the managed sizes, and seconds for the durations listed.
BARE_SIZE_UNIT_KB = {"shared_buffers": 8, "effective_cache_size": 8, "wal_buffers": 8, "min_wal_size": 1024,
                     "max_wal_size": 1024}
BARE_SECONDS = frozenset({"checkpoint_timeout", "autovacuum_naptime"})
FILES = {"rds": paths.RDS_PARAMETERS, "cloudsql": paths.CLOUDSQL_FLAGS, "azure": paths.AZURE_PARAMETERS}


def bare_value(setting: Setting, kinds: dict[str, str]) -> str:
    """The value in the parameter's own unit, as the services' APIs take it (no unit suffix)."""
    kind = kinds.get(setting.key)
    if kind == "kb" and isinstance(setting.value, int) and setting.value >= 0:
        return str(setting.value // BARE_SIZE_UNIT_KB.get(setting.key, 1))
    if kind == "ms" and isinstance(setting.value, int):
        return str(setting.value // 1000 if setting.key in BARE_SECONDS else setting.value)
    if setting.key in pgversions.LIST_PARAMETERS:
        return ",".join(e.strip() for e in setting.text.split(",") if e.strip())
    return setting.text


Rendered = tuple[dict[str, str], list[Finding], dict[str, str]]


def render(profile: Profile, items: list[Setting], kinds: dict[str, str]) -> Rendered:
    """The service's file, the warnings for what it does not take, and those settings with the reason
    (the checks refuse one that a postgres.settings override asked for). Nothing for self-managed databases."""
    service = profile.postgres.managed
    if profile.kubernetes.postgres != "external" or service == "self-managed":
        return {}, [], {}
    refused = NOT_ALLOWED[service]
    rows: list[tuple[str, str]] = []
    skipped: list[str] = []
    left_out: dict[str, str] = {}
    for s in items:
        if s.scope != "server":
            continue
        if s.key in refused:
            left_out[s.key] = refused[s.key]
            replacement = REPLACEMENTS.get(service, {}).get((s.key, s.text))
            if replacement:
                rows.append(replacement)
                skipped.append(f"{s.key} {s.text} ({refused[s.key]}: rendered)")
            else:
                skipped.append(f"{s.key} {s.text} ({refused[s.key]})")
            continue
        rows.append((s.key, bare_value(s, kinds)))
    data: Any
    if service == "rds":
        data = {"DBParameterGroupName": f"perfstack-{profile.environment}", "Parameters": [
            {"ParameterName": name, "ParameterValue": value,
             "ApplyMethod": "pending-reboot" if _static(name) else "immediate"} for name, value in rows]}
    elif service == "cloudsql":
        data = {"settings": {"databaseFlags": [{"name": name, "value": value} for name, value in rows]}}
    else:
        data = [{"name": name, "value": value, "static": _static(name)} for name, value in rows]
    found = [Finding("postgres.managed", f"postgres.managed {service} does not take {item}", "warning",
                     ("postgres.managed",)) for item in skipped]
    return {FILES[service]: dump_json(data)}, found, left_out


def _static(name: str) -> bool:
    return name in pgversions.RESTART_PARAMETERS or name == "rds.logical_replication"
