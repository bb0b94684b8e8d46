"""PostgreSQL settings by pgtune's rules (le0pard/pgtune, 2026 revision).

One pure function per setting, named after it. Sizes are integer kB inside (as in pgtune) and
formatted only when written. A rule returning None leaves the server default.
See ../shared/reference/pgtune-rules.md for the formulas.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import formats, paths, units
from .bundle import Finding, Part, Setting
from .profile import Profile
from .templates import render_template

TARGET = "postgres"
GB_KB = 1024 * 1024  # 1 GB in kB
MB_KB = 1024

# pgtune's default connections per workload when the profile gives none.
DEFAULT_CONNECTIONS = {"web": 200, "oltp": 300, "dw": 40, "desktop": 20, "mixed": 100}
# pgtune's max_worker_processes default used in work_mem when no parallel settings are written.
DEFAULT_WORKER_PROCESSES = 8


@dataclass(frozen=True)
class Inputs:
    """pgtune's form, filled from the profile."""

    version: int
    os: str
    workload: str
    ram_kb: int
    cpus: int | None
    connections: int | None
    storage: str
    db_size: str  # less_ram | mid_ram | greater_ram

    @classmethod
    def from_profile(cls, profile: Profile) -> Inputs:
        hw = profile.hardware.postgres
        return cls(
            version=profile.postgres.version, os=hw.os, workload=profile.postgres.workload,
            ram_kb=hw.memory // 1024, cpus=hw.cpus, connections=profile.postgres.max_connections,
            storage=hw.storage, db_size=db_size(hw.memory, hw.data_size),
        )

    def describe(self) -> dict[str, Any]:
        return {"version": self.version, "os": self.os, "workload": self.workload,
                "memory": units.format_size_pg(self.ram_kb), "cpus": self.cpus,
                "connections": self.connections, "storage": self.storage, "db_size": self.db_size}


@dataclass(frozen=True)
class Rule:
    value: Any
    rule: str
    inputs: dict[str, Any]


def db_size(memory: int, data_size: int | None) -> str:
    """pgtune's dbSize: data smaller than RAM, 1-3x RAM (the default), or more than 3x RAM."""
    if data_size is None:
        return "mid_ram"
    if data_size < memory:
        return "less_ram"
    if data_size > 3 * memory:
        return "greater_ram"
    return "mid_ram"


def max_connections(i: Inputs) -> Rule:
    if i.connections:
        return Rule(i.connections, "given by postgres.max_connections", {"max_connections": i.connections})
    return Rule(DEFAULT_CONNECTIONS[i.workload], f"pgtune default for workload {i.workload}",
                {"workload": i.workload})


def shared_buffers(i: Inputs) -> Rule:
    if i.workload == "desktop":
        return Rule(i.ram_kb // 16, "RAM / 16 (desktop)", {"memory_kb": i.ram_kb})
    return Rule(i.ram_kb // 4, "RAM / 4", {"memory_kb": i.ram_kb})


def effective_cache_size(i: Inputs) -> Rule:
    if i.workload == "desktop":
        return Rule(i.ram_kb // 4, "RAM / 4 (desktop)", {"memory_kb": i.ram_kb})
    return Rule(i.ram_kb * 3 // 4, "RAM * 3 / 4", {"memory_kb": i.ram_kb})


def maintenance_work_mem(i: Inputs) -> Rule:
    value = i.ram_kb // 8 if i.workload == "dw" else i.ram_kb // 16
    rule = "RAM / 8 (dw)" if i.workload == "dw" else "RAM / 16"
    windows_cap = i.os == "windows" and i.version <= 17
    limit = 2 * GB_KB if windows_cap else 8 * GB_KB
    if value >= limit:
        # 2GB fails on Windows up to PostgreSQL 17, hence 2GB - 1MB.
        value = limit - MB_KB if windows_cap else limit
        rule += ", capped at 2GB - 1MB (Windows, PostgreSQL <= 17)" if windows_cap else ", capped at 8GB"
    return Rule(value, rule, {"memory_kb": i.ram_kb, "workload": i.workload})


def checkpoint_completion_target(i: Inputs) -> Rule:
    return Rule(0.9, "0.9: spread checkpoint writes (PostgreSQL 14's default)", {})


def wal_buffers(i: Inputs) -> Rule:
    sb = shared_buffers(i).value
    value = 3 * sb // 100
    rule = "3% of shared_buffers"
    if value > 16 * MB_KB:
        value, rule = 16 * MB_KB, rule + ", capped at 16MB"
    if 14 * MB_KB < value < 16 * MB_KB:
        value, rule = 16 * MB_KB, rule + ", rounded up to 16MB"
    if value < 32:
        value, rule = 32, rule + ", raised to the 32kB minimum"
    return Rule(value, rule, {"shared_buffers_kb": sb})


def default_statistics_target(i: Inputs) -> Rule:
    return Rule(500 if i.workload == "dw" else 100, "500 for dw, else 100", {"workload": i.workload})


def random_page_cost(i: Inputs) -> Rule:
    if i.db_size == "less_ram":
        return Rule(1.1, "data fits in RAM: reads are cached", {"db_size": i.db_size})
    if i.storage == "hdd":
        return Rule(4, "spinning disk: random reads cost 4x sequential", {"storage": i.storage})
    if i.workload == "dw":
        return Rule(4, "dw scans more than it caches", {"workload": i.workload})
    return Rule(1.1, "flash or SAN storage: random reads are cheap", {"storage": i.storage})


def effective_io_concurrency(i: Inputs) -> Rule | None:
    if i.os != "linux":
        return None  # needs posix_fadvise: Linux only
    value = {"hdd": 2, "ssd": 200, "san": 300, "nvme": 1000}[i.storage]
    return Rule(value, f"{i.storage} storage on Linux", {"storage": i.storage, "os": i.os})


def _parallel(i: Inputs) -> bool:
    return bool(i.cpus) and i.cpus is not None and i.cpus >= 4


def max_worker_processes(i: Inputs) -> Rule | None:
    if not _parallel(i):
        return None
    return Rule(i.cpus, "one per CPU", {"cpus": i.cpus})


def max_parallel_workers_per_gather(i: Inputs) -> Rule | None:
    if not _parallel(i) or i.cpus is None:
        return None
    value = math.ceil(i.cpus / 2)
    rule = "ceil(cpus / 2)"
    if i.workload != "dw" and value > 4:
        value, rule = 4, rule + ", capped at 4 (not dw)"
    return Rule(value, rule, {"cpus": i.cpus, "workload": i.workload})


def max_parallel_workers(i: Inputs) -> Rule | None:
    if not _parallel(i):
        return None
    return Rule(i.cpus, "one per CPU", {"cpus": i.cpus})


def max_parallel_maintenance_workers(i: Inputs) -> Rule | None:
    if not _parallel(i) or i.version < 11 or i.cpus is None:
        return None
    return Rule(min(4, math.ceil(i.cpus / 2)), "min(4, ceil(cpus / 2))", {"cpus": i.cpus})


def work_mem(i: Inputs) -> Rule:
    sb = shared_buffers(i).value
    conns = max_connections(i).value
    workers_rule = max_worker_processes(i)
    workers = workers_rule.value if workers_rule else DEFAULT_WORKER_PROCESSES
    per = (i.ram_kb - sb) / ((conns + workers) * 3)
    divisor = {"web": 1, "oltp": 1, "dw": 2, "mixed": 2, "desktop": 6}[i.workload]
    value = math.floor(per / divisor)
    rule = "(RAM - shared_buffers) / ((max_connections + max_worker_processes) * 3)"
    if divisor > 1:
        rule += f" / {divisor} ({i.workload})"
    if i.db_size == "less_ram":
        value, rule = math.floor(value * 1.3), rule + " * 1.3 (data fits in RAM)"
    elif i.db_size == "greater_ram":
        value, rule = math.floor(value * 0.9), rule + " * 0.9 (data > 3x RAM)"
    if value < 4 * MB_KB:
        value, rule = 4 * MB_KB, rule + ", raised to the 4MB minimum"
    if i.os == "windows" and i.version <= 17 and value > 2 * GB_KB - MB_KB:
        value, rule = 2 * GB_KB - MB_KB, rule + ", capped at 2GB - 1MB (Windows, PostgreSQL <= 17)"
    return Rule(value, rule, {"memory_kb": i.ram_kb, "shared_buffers_kb": sb, "max_connections": conns,
                              "max_worker_processes": workers, "workload": i.workload, "db_size": i.db_size})


_WAL_SIZES_MB = {"web": (1024, 4096), "mixed": (1024, 4096), "oltp": (2048, 8192), "dw": (4096, 16384),
                 "desktop": (100, 2048)}


def min_wal_size(i: Inputs) -> Rule:
    return Rule(_WAL_SIZES_MB[i.workload][0] * MB_KB, f"pgtune's value for {i.workload}", {"workload": i.workload})


def max_wal_size(i: Inputs) -> Rule:
    return Rule(_WAL_SIZES_MB[i.workload][1] * MB_KB, f"pgtune's value for {i.workload}", {"workload": i.workload})


def huge_pages(i: Inputs) -> Rule:
    if i.os == "mac":
        return Rule("off", "macOS has no huge pages for PostgreSQL", {"os": i.os})
    sb = shared_buffers(i).value
    if sb >= 2 * GB_KB:
        return Rule("try", "shared_buffers >= 2GB", {"shared_buffers_kb": sb})
    return Rule("off", "shared_buffers < 2GB", {"shared_buffers_kb": sb})


def wal_level(i: Inputs) -> Rule | None:
    if i.workload != "desktop":
        return None
    return Rule("minimal", "desktop: no replication", {"workload": i.workload})


def max_wal_senders(i: Inputs) -> Rule | None:
    if i.workload != "desktop":
        return None
    return Rule(0, "must be 0 with wal_level = minimal", {"workload": i.workload})


def jit(i: Inputs) -> Rule | None:
    if i.version >= 12 and i.workload in ("web", "oltp", "mixed"):
        return Rule("off", "JIT slows short queries (web, oltp, mixed on PostgreSQL >= 12)",
                    {"version": i.version, "workload": i.workload})
    return None


def wal_compression(i: Inputs) -> Rule:
    if i.version >= 15:
        return Rule("lz4", "lz4 on PostgreSQL >= 15", {"version": i.version})
    return Rule("on", "pglz on PostgreSQL 10-14", {"version": i.version})


def autovacuum_max_workers(i: Inputs) -> Rule | None:
    if i.cpus and i.cpus >= 32:
        return Rule(5, "cpus >= 32", {"cpus": i.cpus})
    if i.cpus and i.cpus >= 16:
        return Rule(4, "cpus >= 16", {"cpus": i.cpus})
    return None


def autovacuum_work_mem(i: Inputs) -> Rule | None:
    mwm = maintenance_work_mem(i).value
    if mwm >= 2 * GB_KB:
        return Rule(2 * GB_KB, "maintenance_work_mem >= 2GB: cap each autovacuum worker at 2GB",
                    {"maintenance_work_mem_kb": mwm})
    return None


def io_method(i: Inputs) -> Rule | None:
    if i.version < 18:
        return None
    if i.os == "linux":
        return Rule("io_uring", "PostgreSQL 18 on Linux", {"version": i.version, "os": i.os})
    return Rule("worker", "PostgreSQL 18 off Linux", {"version": i.version, "os": i.os})


def io_workers(i: Inputs) -> Rule | None:
    if i.version < 18 or i.os == "linux":
        return None
    value = min(32, max(3, (i.cpus or 0) // 4))
    if value <= 3:
        return None  # 3 is the server default
    return Rule(value, "min(32, max(3, cpus / 4))", {"cpus": i.cpus})


# Settings in pgtune's print order: each rule function, by reference, with the kind of value it holds.
RuleFunction = Callable[[Inputs], "Rule | None"]
PGTUNE_RULES: list[tuple[RuleFunction, str]] = [
    (max_connections, "int"), (shared_buffers, "kb"), (effective_cache_size, "kb"),
    (maintenance_work_mem, "kb"), (checkpoint_completion_target, "real"), (wal_buffers, "kb"),
    (default_statistics_target, "int"), (random_page_cost, "real"), (effective_io_concurrency, "int"),
    (work_mem, "kb"), (huge_pages, "enum"), (min_wal_size, "kb"), (max_wal_size, "kb"),
    (wal_level, "enum"), (max_wal_senders, "int"), (jit, "enum"), (wal_compression, "enum"),
    (autovacuum_max_workers, "int"), (autovacuum_work_mem, "kb"), (io_method, "enum"),
    (io_workers, "int"), (max_worker_processes, "int"), (max_parallel_workers_per_gather, "int"),
    (max_parallel_workers, "int"), (max_parallel_maintenance_workers, "int"),
]
PROFILE_DURATIONS = ["statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
                     "log_min_duration_statement"]
# The kind of every managed setting, so a `postgres.settings` override of one is read in the same unit.
MANAGED_KINDS: dict[str, str] = {
    **{function.__name__: kind for function, kind in PGTUNE_RULES},
    "superuser_reserved_connections": "int",
    **{key: "ms" for key in PROFILE_DURATIONS},
}
# The unit PostgreSQL reads a bare number in, for the managed sizes (kB unless listed).
BARE_SIZE_UNIT_KB = {"shared_buffers": 8, "effective_cache_size": 8, "wal_buffers": 8,
                     "min_wal_size": MB_KB, "max_wal_size": MB_KB}
_PG_SIZE = re.compile(r"(?P<num>\d+(\.\d+)?)\s*(?P<unit>B|kB|MB|GB|TB)?")
_PG_SIZE_KB = {"B": None, "kB": 1, "MB": MB_KB, "GB": GB_KB, "TB": 1024 * GB_KB}
_PG_DURATION = re.compile(r"(?P<num>\d+)\s*(?P<unit>us|ms|s|min|h|d)?")
_PG_DURATION_MS = {"us": None, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_override(name: str, value: Any) -> Any:
    """A `postgres.settings` value of a managed setting in perfstack's internal unit, as PostgreSQL reads it.

    Sizes: a bare number is in the parameter's own unit (8kB blocks for shared_buffers, MB for the WAL
    sizes, kB otherwise), units kB/MB/GB/TB are 1024-based. Durations: a bare number is ms. Other names
    keep their value. Raises ValueError for a value the server would not read as a number.
    """
    kind = MANAGED_KINDS.get(name)
    text = _override_text(value).strip()
    if kind == "kb":
        match = _PG_SIZE.fullmatch(text)
        if text == "-1":
            return -1  # wal_buffers, autovacuum_work_mem: -1 means "derived by the server"
        if not match or isinstance(value, bool):
            raise ValueError(f"expected a size such as 4GB or 512MB (units kB, MB, GB, TB), got {value!r}")
        unit = match["unit"]
        factor_kb = _PG_SIZE_KB[unit] if unit else BARE_SIZE_UNIT_KB.get(name, 1)
        return int(float(match["num"]) * factor_kb) if factor_kb else int(float(match["num"])) // 1024
    if kind == "ms":
        match = _PG_DURATION.fullmatch(text)
        if not match or isinstance(value, bool):
            raise ValueError(f"expected a duration such as 30s or 500ms (units ms, s, min, h, d), got {value!r}")
        unit = match["unit"]
        factor_ms = _PG_DURATION_MS[unit] if unit else 1
        return int(match["num"]) * factor_ms if factor_ms else int(match["num"]) // 1000
    if kind == "int":
        if isinstance(value, bool) or not re.fullmatch(r"-?\d+", text):
            raise ValueError(f"expected a whole number, got {value!r}")
        return int(text)
    if kind == "real":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    return value


def format_value(value: Any, kind: str) -> str:
    if kind == "kb":
        return units.format_size_pg(value)
    if kind == "ms":
        return units.format_duration_pg(value)
    if kind == "real":
        return f"{value:g}"
    if kind == "enum":
        return str(value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def warnings(i: Inputs) -> list[Finding]:
    found = []
    if i.ram_kb < 256 * MB_KB:
        found.append(Finding("pgtune.memory", "pgtune's rules are not optimal for hosts with less than 256MB of RAM"))
    if i.ram_kb > 100 * GB_KB:
        found.append(Finding("pgtune.memory", "pgtune's rules are not optimal for hosts with more than 100GB of RAM"))
    if wal_compression(i).value == "lz4":
        found.append(Finding("pgtune.lz4", "wal_compression = lz4 needs a PostgreSQL built with lz4 (Debian's is)"))
    if io_method(i) and io_method(i).value == "io_uring":  # type: ignore[union-attr]
        found.append(Finding("pgtune.io_uring", "io_method = io_uring needs a PostgreSQL 18 built with liburing"))
    if i.workload == "dw" and i.storage != "hdd" and i.db_size != "less_ram":
        found.append(Finding("pgtune.dw_storage",
                             f"dw on {i.storage} with data that does not fit in RAM: random_page_cost stays 4"))
    return found


def settings(profile: Profile) -> list[Setting]:
    """Every managed PostgreSQL setting: pgtune's rules, the profile's timeouts, then overrides."""
    i = Inputs.from_profile(profile)
    out: dict[str, Setting] = {}
    for function, kind in PGTUNE_RULES:
        rule = function(i)
        if rule is None:
            continue
        key = function.__name__
        out[key] = Setting(TARGET, key, rule.value, format_value(rule.value, kind), f"pgtune: {rule.rule}",
                           rule.inputs)
    out["superuser_reserved_connections"] = Setting(
        TARGET, "superuser_reserved_connections", profile.postgres.superuser_reserved_connections,
        str(profile.postgres.superuser_reserved_connections), "given by postgres.superuser_reserved_connections",
        {"superuser_reserved_connections": profile.postgres.superuser_reserved_connections})
    for key in PROFILE_DURATIONS:
        ms = getattr(profile.postgres, key)
        out[key] = Setting(TARGET, key, ms, format_value(ms, "ms"), f"given by postgres.{key}",
                           {key: units.format_duration(ms)})
    for key, value in sorted(profile.postgres.settings.items()):
        name = key.lower()
        previous = out.get(name)
        why = "override in postgres.settings" + (f" (rule gave {previous.text})" if previous else "")
        out[name] = Setting(TARGET, name, parse_override(name, value), _override_text(value), why, {name: value})
    return list(out.values())


def _override_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def conf_value(setting: Setting) -> str:
    """A value as postgresql.conf wants it: numbers and units bare, everything else quoted."""
    return formats.pg_conf_value(setting.text)


def comment(setting: Setting) -> str:
    """A config line's comment: the rule and the inputs it read (kB inputs written as PostgreSQL sizes)."""
    if not setting.inputs:
        return formats.comment(setting.rule)
    shown = ", ".join(f"{key.removesuffix('_kb')}={units.format_size_pg(value)}" if key.endswith("_kb")
                      else f"{key}={value}" for key, value in setting.inputs.items())
    return formats.comment(f"{setting.rule} [{shown}]")


def sql_literal(setting: Setting) -> str:
    """ALTER SYSTEM's value: E'' literals (safe whatever standard_conforming_strings is), one per list element."""
    return formats.pg_sql_value(setting.key, setting.text)


def render(profile: Profile) -> Part:
    i = Inputs.from_profile(profile)
    items = settings(profile)
    found = warnings(i)
    conf = render_template("postgresql.conf.j2", profile=profile, settings=items, warnings=found,
                           inputs=i.describe(), conf_value=conf_value, comment=comment, pg_name=formats.pg_name,
                           text_comment=formats.comment)
    sql = render_template("alter_system.sql.j2", profile=profile, settings=items, sql_literal=sql_literal,
                          pg_name=formats.pg_name, comment=formats.comment)
    return Part(settings=items, files={paths.POSTGRESQL_CONF: conf, paths.ALTER_SYSTEM_SQL: sql},
                warnings=found)
