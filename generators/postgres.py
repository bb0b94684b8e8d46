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

from . import formats, paths, postgres_managed, units
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
    # Beyond pgtune's form (the DBA rules read these; pgtune's rules never do):
    wal_disk_kb: int | None = None  # the volume holding pg_wal
    write_rate_kb: int | None = None  # WAL written per second at peak, kB/s
    platform: str = "external"  # kubernetes.postgres: cloudnativepg | external
    logical_replication: bool = False

    @classmethod
    def from_profile(cls, profile: Profile) -> Inputs:
        hw = profile.hardware.postgres
        return cls(
            version=profile.postgres.version, os=hw.os, workload=profile.postgres.workload,
            ram_kb=hw.memory // 1024, cpus=hw.cpus, connections=profile.postgres.max_connections,
            storage=hw.storage, db_size=db_size(hw.memory, hw.data_size),
            wal_disk_kb=hw.wal_disk // 1024 if hw.wal_disk else None,
            write_rate_kb=hw.write_rate // 1024 if hw.write_rate else None,
            platform=profile.kubernetes.postgres, logical_replication=profile.postgres.logical_replication,
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
# ================================================================ DBA rules, on top of pgtune's
# What pgtune's form never asks and an experienced DBA sets anyway. Each rule reads the same Inputs; one that
# returns a setting pgtune also writes replaces pgtune's value, and its rule text says what pgtune gave.
# pgtune's own functions above stay exact (tests/test_pgtune.py); these are tested in tests/test_dba.py.

# ---------------------------------------------------------------- autovacuum
# PostgreSQL vacuums a table once dead rows exceed 50 + 20% of it (analyze: 10%). On a write-heavy table of
# 10M rows that is 2M dead rows of bloat before the first pass. OLTP tables are vacuumed at 5% (analyze 2.5%),
# web and mixed at 10% (5%); dw (bulk loads) and desktop keep the defaults.
AUTOVACUUM_SCALE_FACTORS = {"oltp": (0.05, 0.025), "web": (0.1, 0.05), "mixed": (0.1, 0.05)}
# The launcher wakes every naptime per database: 1min lets a hot OLTP table collect a minute of dead rows.
AUTOVACUUM_NAPTIME_MS = {"oltp": 15_000, "web": 30_000, "mixed": 30_000}
# autovacuum's I/O budget: vacuum_cost_limit (200) cost points per autovacuum_vacuum_cost_delay (2ms since
# PostgreSQL 12). 200 was sized for spinning disks; flash storage takes ten to twenty times more.
AUTOVACUUM_COST_LIMIT = {"hdd": None, "san": 1000, "ssd": 2000, "nvme": 4000}
PG_VACUUM_COST_LIMIT = 200  # PostgreSQL's default (vacuum_cost_limit)
PG_VACUUM_COST_LIMIT_MAX = 10000  # the most PostgreSQL accepts
AUTOVACUUM_COST_DELAY_MS = 2  # PostgreSQL 12's default; 10 and 11 have 20ms
VACUUM_COST_PAGE_DIRTY = 20  # cost points vacuum pays per page it dirties (vacuum_cost_page_dirty)
PAGE_KB = 8
# Vacuum must keep up with the write rate: it dirties each written heap page again (pruning, freezing) and
# the index pages beside it, so it needs about twice the write rate.
VACUUM_REWRITE_FACTOR = 2
LOG_AUTOVACUUM_MIN_DURATION_MS = 1000  # every autovacuum run longer than 1s is logged (15's default: 10min)


def autovacuum_vacuum_scale_factor(i: Inputs) -> Rule | None:
    if i.workload not in AUTOVACUUM_SCALE_FACTORS:
        return None
    return Rule(AUTOVACUUM_SCALE_FACTORS[i.workload][0],
                f"vacuum {i.workload} tables at this share of dead rows, not 20%: less bloat on hot tables",
                {"workload": i.workload})


def autovacuum_analyze_scale_factor(i: Inputs) -> Rule | None:
    if i.workload not in AUTOVACUUM_SCALE_FACTORS:
        return None
    return Rule(AUTOVACUUM_SCALE_FACTORS[i.workload][1],
                f"analyze {i.workload} tables at this share of changed rows, not 10%: fresher plans",
                {"workload": i.workload})


def autovacuum_naptime(i: Inputs) -> Rule | None:
    if i.workload not in AUTOVACUUM_NAPTIME_MS:
        return None
    return Rule(AUTOVACUUM_NAPTIME_MS[i.workload], f"check {i.workload} tables more often than every 1min",
                {"workload": i.workload})


def autovacuum_vacuum_cost_delay(i: Inputs) -> Rule | None:
    if i.version >= 12:
        return None
    return Rule(AUTOVACUUM_COST_DELAY_MS, "PostgreSQL 12's 2ms: 10 and 11 sleep 20ms, a tenth of the vacuum I/O",
                {"version": i.version})


def autovacuum_vacuum_cost_limit(i: Inputs) -> Rule | None:
    base = AUTOVACUUM_COST_LIMIT[i.storage]
    value, rule = base or PG_VACUUM_COST_LIMIT, f"{i.storage} storage"
    inputs: dict[str, Any] = {"storage": i.storage}
    if i.write_rate_kb:
        # pages dirtied per second x cost per page x delay rounds: the budget that keeps up with the writes
        needed = math.ceil(VACUUM_REWRITE_FACTOR * i.write_rate_kb / PAGE_KB * VACUUM_COST_PAGE_DIRTY
                           * AUTOVACUUM_COST_DELAY_MS / 1000)
        inputs["write_rate_kb"] = i.write_rate_kb
        if needed > value:
            value, rule = needed, (f"keep up with the write rate: {VACUUM_REWRITE_FACTOR} x write_rate / 8kB x "
                                   f"{VACUUM_COST_PAGE_DIRTY} per dirtied page x {AUTOVACUUM_COST_DELAY_MS}ms delay")
    if value > PG_VACUUM_COST_LIMIT_MAX:
        value, rule = PG_VACUUM_COST_LIMIT_MAX, rule + f", capped at PostgreSQL's {PG_VACUUM_COST_LIMIT_MAX}"
    if value == PG_VACUUM_COST_LIMIT:
        return None  # hdd at a low write rate: the server default is right
    return Rule(value, rule, inputs)


def log_autovacuum_min_duration(i: Inputs) -> Rule:
    return Rule(LOG_AUTOVACUUM_MIN_DURATION_MS, "log autovacuum runs over 1s: which tables bloat, and how fast", {})


# ---------------------------------------------------------------- query observability
PG_STAT_STATEMENTS_MAX = 10000  # distinct statements kept (default 5000: an ORM's variety evicts the history)
# timestamp, pid, then (for sessions) user@database, application and client: what pgBadger and a reader need.
LOG_LINE_PREFIX = "%m [%p] %q%u@%d app=%a client=%h "
LOG_TEMP_FILES_DW_KB = 1024 * 1024  # dw spills by design: log only spills of 1GB and more


def shared_preload_libraries(i: Inputs) -> Rule:
    return Rule("pg_stat_statements", "load pg_stat_statements at start: per-query time, calls and I/O", {})


def pg_stat_statements_max(i: Inputs) -> Rule:
    return Rule(PG_STAT_STATEMENTS_MAX, "keep 10000 distinct statements, not 5000", {})


def track_io_timing(i: Inputs) -> Rule:
    return Rule("on", "time each block read and write (cheap on a TSC clock: pg_test_timing)", {})


def log_lock_waits(i: Inputs) -> Rule:
    return Rule("on", "log a lock wait longer than deadlock_timeout (1s), with the blocking process", {})


def log_temp_files(i: Inputs) -> Rule:
    if i.workload == "dw":
        return Rule(LOG_TEMP_FILES_DW_KB, "dw sorts spill by design: log temporary files of 1GB and more",
                    {"workload": i.workload})
    return Rule(0, "log every temporary file: a short query that spills needs more work_mem or an index",
                {"workload": i.workload})


def log_line_prefix(i: Inputs) -> Rule:
    return Rule(LOG_LINE_PREFIX, "time, pid, user@database, application and client on every line", {})


# ---------------------------------------------------------------- WAL and checkpoints, from the disk and the write rate
# checkpoint_timeout: 5min (the default) writes every hot page in full again after each checkpoint
# (full_page_writes). 15min writes a third of that WAL; crash recovery replays at most that interval,
# which flash storage does in seconds; a spinning disk replays slowly, so 10min there.
CHECKPOINT_TIMEOUT_MS = {"hdd": 600_000, "ssd": 900_000, "san": 900_000, "nvme": 900_000}
PG_CHECKPOINT_TIMEOUT_MIN_MS = 30_000  # the least PostgreSQL accepts
# max_wal_size is a soft limit: PostgreSQL exceeds it under a write burst, while a checkpoint is spread over
# checkpoint_completion_target of the interval, and for replication slots and wal_keep_size. Half the WAL
# disk for it keeps the other half for those.
WAL_DISK_SHARE = (1, 2)
MIN_WAL_SHARE = 4  # min_wal_size at most a quarter of max_wal_size (pgtune's oltp ratio: 2GB / 8GB)


def _wal_budget_kb(i: Inputs) -> int | None:
    if not i.wal_disk_kb:
        return None
    num, den = WAL_DISK_SHARE
    return i.wal_disk_kb * num // den // MB_KB * MB_KB  # whole MB: max_wal_size's unit


def max_wal_size_dba(i: Inputs) -> Rule | None:
    """max_wal_size from the WAL disk and the write rate; pgtune's value when neither is given."""
    if not i.wal_disk_kb and not i.write_rate_kb:
        return None
    pgtune_kb = max_wal_size(i).value
    value, rule = pgtune_kb, f"pgtune's {units.format_size_pg(pgtune_kb)} for {i.workload}"
    inputs: dict[str, Any] = {"workload": i.workload}
    timeout = CHECKPOINT_TIMEOUT_MS[i.storage]
    if i.write_rate_kb:
        per_checkpoint = math.ceil(i.write_rate_kb * timeout / 1000 / MB_KB) * MB_KB
        inputs["write_rate_kb"] = i.write_rate_kb
        if per_checkpoint > value:
            value = per_checkpoint
            rule = (f"write_rate x checkpoint_timeout {units.format_duration_pg(timeout)}: checkpoints come from "
                    "the timer, not from WAL volume")
    budget = _wal_budget_kb(i)
    if budget is not None:
        inputs["wal_disk_kb"] = i.wal_disk_kb
        if value > budget:
            num, den = WAL_DISK_SHARE
            value, rule = budget, rule + f", capped at {num}/{den} of the WAL disk"
    return Rule(value, rule, inputs)


def min_wal_size_dba(i: Inputs) -> Rule | None:
    top = max_wal_size_dba(i)
    pgtune_kb = min_wal_size(i).value
    if top is None or pgtune_kb * MIN_WAL_SHARE <= top.value:
        return None
    value = max(32 * MB_KB, top.value // MIN_WAL_SHARE // MB_KB * MB_KB)  # PostgreSQL's least: 2 WAL segments
    return Rule(value, f"a quarter of max_wal_size {units.format_size_pg(top.value)} (pgtune gave "
                f"{units.format_size_pg(pgtune_kb)})", {"max_wal_size_kb": top.value})


def checkpoint_timeout(i: Inputs) -> Rule:
    value = CHECKPOINT_TIMEOUT_MS[i.storage]
    rule = f"{i.storage}: fewer full-page writes than 5min, recovery bounded by one interval"
    inputs: dict[str, Any] = {"storage": i.storage}
    top = max_wal_size_dba(i)
    if i.write_rate_kb and top is not None and i.write_rate_kb * value / 1000 > top.value:
        # max_wal_size is capped by the WAL disk: checkpoint as often as that much WAL is written
        fill_ms = top.value * 1000 // i.write_rate_kb
        value = max(PG_CHECKPOINT_TIMEOUT_MIN_MS, fill_ms // 60_000 * 60_000 if fill_ms >= 60_000 else
                    fill_ms // 1000 * 1000)
        rule = "the time the write rate takes to fill max_wal_size (capped by the WAL disk), so the timer triggers"
        inputs.update(write_rate_kb=i.write_rate_kb, max_wal_size_kb=top.value)
    return Rule(value, rule, inputs)


# ---------------------------------------------------------------- huge pages
HUGE_PAGE_KB = 2048
# PostgreSQL's shared memory beyond shared_buffers (measured on PostgreSQL 15 with `postgres -C
# shared_memory_size`: 2.2% of shared_buffers for its descriptors and checkpoint queue, ~27MB fixed with
# 16MB of wal_buffers, ~46kB per connection): an upper bound, rounded up to 2MB pages.
SHARED_MEMORY_SHARE = 1.025
SHARED_MEMORY_FIXED_KB = 16 * MB_KB
SHARED_MEMORY_PER_CONNECTION_KB = 48


def nr_hugepages(shared_buffers_kb: int, wal_buffers_kb: int, connections: int) -> int:
    """2MB huge pages PostgreSQL's shared memory takes: the vm.nr_hugepages the host needs."""
    total = (shared_buffers_kb * SHARED_MEMORY_SHARE + wal_buffers_kb + SHARED_MEMORY_FIXED_KB
             + SHARED_MEMORY_PER_CONNECTION_KB * connections)
    return math.ceil(total / HUGE_PAGE_KB)


def huge_pages_dba(i: Inputs) -> Rule | None:
    pg = huge_pages(i)
    if pg.value != "try":
        return None
    pages = nr_hugepages(shared_buffers(i).value, wal_buffers(i).value, max_connections(i).value)
    inputs = {"shared_buffers_kb": shared_buffers(i).value, "vm.nr_hugepages": pages}
    if i.platform == "cloudnativepg":
        return Rule("on", f"CloudNativePG: the pod requests hugepages-2Mi for {pages} pages, so a missing huge "
                    "page fails loudly instead of falling back to 4kB pages (pgtune gave try)", inputs)
    return Rule("try", f"shared_buffers >= 2GB; set vm.nr_hugepages = {pages} on the host, or PostgreSQL falls back "
                "to 4kB pages without a word (page tables of every backend then map shared_buffers)", inputs)


# ---------------------------------------------------------------- workers, replication and I/O
PG_MAX_LOGICAL_REPLICATION_WORKERS = 4  # PostgreSQL's default; apply and table-sync workers come from it
LOGICAL_REPLICATION_LAUNCHER = 1


def max_worker_processes_dba(i: Inputs) -> Rule | None:
    if not i.logical_replication:
        return None
    pg = max_worker_processes(i)
    base = pg.value if pg else DEFAULT_WORKER_PROCESSES
    headroom = PG_MAX_LOGICAL_REPLICATION_WORKERS + LOGICAL_REPLICATION_LAUNCHER
    return Rule(base + headroom, f"{base} (pgtune's parallel workers) + {PG_MAX_LOGICAL_REPLICATION_WORKERS} "
                "logical replication workers + 1 launcher: parallel queries must not take their slots",
                {"cpus": i.cpus, "logical_replication": True})


def wal_level_dba(i: Inputs) -> Rule | None:
    if not i.logical_replication:
        return None
    return Rule("logical", "postgres.logical_replication: publications need logical decoding",
                {"logical_replication": True})


def io_method_dba(i: Inputs) -> Rule | None:
    pg = io_method(i)
    if pg is None or pg.value != "io_uring" or i.platform != "cloudnativepg":
        return None
    return Rule("worker", "CloudNativePG runs PostgreSQL under the RuntimeDefault seccomp profile, which blocks "
                "io_uring (pgtune gave io_uring)", {"version": i.version, "platform": i.platform})


# The DBA rules in the order they are written, each with its kind; `name` is the parameter (a rule that
# replaces a pgtune setting is named <setting>_dba).
DBA_RULES: list[tuple[RuleFunction, str, str]] = [
    (autovacuum_vacuum_scale_factor, "autovacuum_vacuum_scale_factor", "real"),
    (autovacuum_analyze_scale_factor, "autovacuum_analyze_scale_factor", "real"),
    (autovacuum_naptime, "autovacuum_naptime", "ms"),
    (autovacuum_vacuum_cost_delay, "autovacuum_vacuum_cost_delay", "ms"),
    (autovacuum_vacuum_cost_limit, "autovacuum_vacuum_cost_limit", "int"),
    (log_autovacuum_min_duration, "log_autovacuum_min_duration", "ms"),
    (shared_preload_libraries, "shared_preload_libraries", "list"),
    (pg_stat_statements_max, "pg_stat_statements.max", "int"),
    (track_io_timing, "track_io_timing", "enum"),
    (log_lock_waits, "log_lock_waits", "enum"),
    (log_temp_files, "log_temp_files", "kb"),
    (log_line_prefix, "log_line_prefix", "enum"),
    (checkpoint_timeout, "checkpoint_timeout", "ms"),
    (max_wal_size_dba, "max_wal_size", "kb"),
    (min_wal_size_dba, "min_wal_size", "kb"),
    (huge_pages_dba, "huge_pages", "enum"),
    (max_worker_processes_dba, "max_worker_processes", "int"),
    (wal_level_dba, "wal_level", "enum"),
    (io_method_dba, "io_method", "enum"),
]

# DBA-rule settings an override may write in forms parse_override does not read (2.5ms): kept as written.
_FREE_FORM = frozenset({"autovacuum_vacuum_cost_delay"})
PROFILE_DURATIONS = ["statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
                     "log_min_duration_statement"]
# Set per application role (ALTER ROLE ... SET), not server-wide: the PostgreSQL docs advise against a global
# statement_timeout (it cancels maintenance, migrations and pg_dump too), and lock_timeout goes with it.
ROLE_DURATIONS = ["statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"]
# The kind of every managed setting, so a `postgres.settings` override of one is read in the same unit.
MANAGED_KINDS: dict[str, str] = {
    **{function.__name__: kind for function, kind in PGTUNE_RULES},
    **{name: kind for _, name, kind in DBA_RULES if kind != "list" and name not in _FREE_FORM},
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
# The unit PostgreSQL reads a bare number in, for the managed durations (ms unless listed).
BARE_DURATION_UNIT_MS = {"checkpoint_timeout": 1000, "autovacuum_naptime": 1000}


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
        factor_ms = _PG_DURATION_MS[unit] if unit else BARE_DURATION_UNIT_MS.get(name, 1)
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
        return "0" if value == 0 else units.format_size_pg(value)  # 0 (log_temp_files: every file) has no unit
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
    """Every managed PostgreSQL setting: pgtune's rules, the DBA rules, the profile's keys, then overrides."""
    i = Inputs.from_profile(profile)
    out: dict[str, Setting] = {}
    for function, kind in PGTUNE_RULES:
        rule = function(i)
        if rule is None:
            continue
        key = function.__name__
        out[key] = Setting(TARGET, key, rule.value, format_value(rule.value, kind), f"pgtune: {rule.rule}",
                           rule.inputs)
    for function, key, kind in DBA_RULES:
        rule = function(i)
        if rule is None:
            continue
        previous = out.get(key)
        why = f"DBA: {rule.rule}"
        if previous is not None and previous.text != format_value(rule.value, kind) and "pgtune gave" not in why:
            why += f" (pgtune gave {previous.text})"
        out[key] = Setting(TARGET, key, rule.value, format_value(rule.value, kind), why, rule.inputs)
    out["superuser_reserved_connections"] = Setting(
        TARGET, "superuser_reserved_connections", profile.postgres.superuser_reserved_connections,
        str(profile.postgres.superuser_reserved_connections), "given by postgres.superuser_reserved_connections",
        {"superuser_reserved_connections": profile.postgres.superuser_reserved_connections})
    roles = ", ".join(profile.postgres.app_roles)
    for key in PROFILE_DURATIONS:
        ms = getattr(profile.postgres, key)
        per_role = key in ROLE_DURATIONS
        out[key] = Setting(TARGET, key, ms, format_value(ms, "ms"),
                           f"given by postgres.{key}" + (f", set on role(s) {roles} (roles.sql)" if per_role else ""),
                           {key: units.format_duration(ms)}, "role" if per_role else "server")
    for key, value in sorted(profile.postgres.settings.items()):
        name = key.lower()
        previous = out.get(name)
        why = "override in postgres.settings" + (f" (rule gave {previous.text})" if previous else "")
        out[name] = Setting(TARGET, name, parse_override(name, value), _override_text(value), why, {name: value})
    return list(out.values())


def server_settings(items: list[Setting]) -> list[Setting]:
    """The settings postgresql.conf, ALTER SYSTEM and the operator carry (not the per-role ones)."""
    return [s for s in items if s.scope == "server"]


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
    """ALTER SYSTEM's (and ALTER ROLE ... SET's) value: E'' literals, safe whatever standard_conforming_strings
    is; a list parameter (pgversions.LIST_PARAMETERS) as one literal per element (formats.pg_sql_value)."""
    return formats.pg_sql_value(setting.key, setting.text)


# ALTER SYSTEM refuses a setting of an extension that is not loaded yet until PostgreSQL 17 ("unrecognized
# configuration parameter"): up to 16 those come after the restart that loads shared_preload_libraries.
ALTER_SYSTEM_PLACEHOLDERS_SINCE = 17
AFTER_RESTART_MARK = "-- After the restart that loads shared_preload_libraries"


def alter_system_sections(profile: Profile, items: list[Setting]) -> tuple[list[Setting], list[Setting]]:
    """The settings ALTER SYSTEM can take now, and the extensions' settings that must wait for the restart."""
    if profile.postgres.version >= ALTER_SYSTEM_PLACEHOLDERS_SINCE:
        return items, []
    return [s for s in items if "." not in s.key], [s for s in items if "." in s.key]


def offers_alter_system(profile: Profile) -> bool:
    """ALTER SYSTEM needs a superuser: a database the service runs (rds, cloudsql, azure) takes parameter groups
    or flags instead."""
    return not (profile.kubernetes.postgres == "external" and profile.postgres.managed != "self-managed")


def role_statements(profile: Profile, items: list[Setting]) -> list[tuple[str, Setting]]:
    """(role, setting) for each application role and per-role setting: roles.sql's `ALTER ROLE ... SET`."""
    return [(role, s) for role in profile.postgres.app_roles for s in items if s.scope == "role"]


def render(profile: Profile) -> Part:
    i = Inputs.from_profile(profile)
    items = settings(profile)
    server = server_settings(items)
    found = warnings(i)
    conf = render_template("postgresql.conf.j2", profile=profile, settings=server, warnings=found,
                           inputs=i.describe(), conf_value=conf_value, comment=comment, pg_name=formats.pg_name,
                           text_comment=formats.comment)
    files = {paths.POSTGRESQL_CONF: conf}
    if offers_alter_system(profile):
        now, later = alter_system_sections(profile, server)
        files[paths.ALTER_SYSTEM_SQL] = render_template(
            "alter_system.sql.j2", profile=profile, settings=now, after_restart=later, mark=AFTER_RESTART_MARK,
            sql_literal=sql_literal, pg_name=formats.pg_name, comment=formats.comment)
    files[paths.ROLES_SQL] = render_template("roles.sql.j2", profile=profile, statements=role_statements(profile, items),
                                             sql_literal=sql_literal, pg_name=formats.pg_name,
                                             pg_identifier=formats.pg_identifier, comment=formats.comment)
    managed_files, managed_warnings, left_out = postgres_managed.render(profile, items, MANAGED_KINDS)
    files.update(managed_files)
    found = found + managed_warnings
    huge = next((s for s in items if s.key == "huge_pages"), None)
    derived = {"nr_hugepages": huge.inputs.get("vm.nr_hugepages") if huge else None,
               "role_settings": [s.key for s in items if s.scope == "role"],
               "managed_refused": left_out}
    return Part(settings=items, files=files, warnings=found, derived=derived)


# ---------------------------------------------------------------- the README's sizing table
# Three hosts the README shows side by side (generated here, checked by tests/test_dba.py): the rules
# respond to memory, storage, the WAL disk and the write rate.
SIZING_HOSTS: list[tuple[str, dict[str, Any]]] = [
    ("1 GiB, hdd", {"memory": "1GiB", "cpus": 1, "storage": "hdd", "wal_disk": "4GiB", "write_rate": "5MB/s"}),
    ("16 GiB, ssd", {"memory": "16GiB", "cpus": 8, "storage": "ssd", "wal_disk": "64GiB", "write_rate": "50MB/s"}),
    ("512 GiB, nvme", {"memory": "512GiB", "cpus": 64, "storage": "nvme", "wal_disk": "500GiB",
                       "write_rate": "400MB/s"}),
]
SIZING_KEYS = ["max_connections", "shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem",
               "huge_pages", "max_wal_size", "min_wal_size", "checkpoint_timeout", "autovacuum_vacuum_cost_limit",
               "random_page_cost", "effective_io_concurrency", "max_worker_processes"]


def sizing_table(version: int = 16, workload: str = "web") -> str:
    """A Markdown table of the key settings for SIZING_HOSTS (PostgreSQL `version`, `workload`, external)."""
    columns = []
    for _, hardware in SIZING_HOSTS:
        profile = Profile.model_validate({"environment": "sizing", "hardware": {
            "postgres": hardware, "redis": {"memory": "1GiB"}}, "postgres": {"version": version, "workload": workload}})
        by_key = {s.key: s for s in settings(profile)}
        column = {key: by_key[key].text if key in by_key else "(default)" for key in SIZING_KEYS}
        pages = by_key["huge_pages"].inputs.get("vm.nr_hugepages")
        if pages:
            column["huge_pages"] += f" (vm.nr_hugepages {pages})"
        columns.append(column)
    rows = [["setting", *(name for name, _ in SIZING_HOSTS)], ["---"] * (len(SIZING_HOSTS) + 1)]
    inputs = ["inputs", *(", ".join(f"{k} {v}" for k, v in hw.items() if k not in ("memory", "storage"))
                          for _, hw in SIZING_HOSTS)]
    rows.append(inputs)
    rows += [[f"`{key}`", *(c[key] for c in columns)] for key in SIZING_KEYS]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows) + "\n"
