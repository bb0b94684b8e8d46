"""PostgreSQL: what the statistics views say about how the database really runs.

One connection, one READ ONLY transaction that is rolled back, a short connect timeout, a statement and
lock timeout on every statement, and bounded result sizes (the top statements, the largest tables). Read:

- pg_stat_statements: the top statements by total and by mean time (calls, rows, temp blocks,
  shared blocks hit/read); the slowest feed the index advisor (indexes.py, HypoPG).
- pg_stat_user_tables: sequential scans on large tables, dead tuples against the autovacuum trigger.
- pg_stat_user_indexes with pg_index: unused indexes and duplicate (or left-prefix redundant) ones.
- pg_stat_database: cache hit ratio, temp files, deadlocks.
- pg_stat_bgwriter (pg_stat_checkpointer on 17+) and pg_stat_wal: checkpoints requested vs timed.
- pg_stat_activity against max_connections.

The role (README "perfstack advise"): pg_read_all_stats to see every statement and backend, SELECT on
the application's tables (EXPLAIN needs it), default_transaction_read_only on.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..drift.postgres import redact
from ..profile import Profile
from ..units import MIB, format_size_human, format_size_pg
from .model import Edit, Finding, IndexAdvice, TargetResult

TARGET = "postgres"
CONNECT_TIMEOUT_S = 3
STATEMENT_TIMEOUT = "5s"
LOCK_TIMEOUT = "1s"
TOP_STATEMENTS = 20  # read from pg_stat_statements, by total and by mean time
MAX_TABLES = 200
LARGE_TABLE_BYTES = 8 * MIB  # sequential scans below this are cheap and not reported
UNUSED_INDEX_MIN_BYTES = 1 * MIB
DEAD_TUPLES_MIN = 1000
DEAD_OUTRUN_FACTOR = 2.0  # dead tuples above this many times the autovacuum trigger: autovacuum is behind
CHECKPOINTS_MIN_REQUESTED = 3
CHECKPOINTS_REQUESTED_SHARE = 0.25
MAX_WAL_SIZE_CAP_KB = 64 * 1024 * 1024  # 64GB
MAX_WAL_SIZE_STEP = 8  # at most 8x today's max_wal_size from one run: a short, busy window must not propose 64GB
TEMP_SHARE_MIN = 0.05  # a statement spilling to disk that takes at least this share of the time
WORK_MEM_CAP_KB = 1024 * 1024  # 1GB: above that a statement needs rewriting, not memory
CONNECTIONS_SHARE_MAX = 0.80
CACHE_HIT_MIN_BLOCKS = 10_000
SCALE_FACTOR_STEPS = (0.1, 0.05, 0.02, 0.01)


@dataclass
class Statement:
    queryid: int
    query: str
    calls: int
    total_ms: float
    mean_ms: float
    rows: int
    shared_hit: int
    shared_read: int
    temp_read: int
    temp_written: int

    @property
    def short(self) -> str:
        text = " ".join(self.query.split())
        return text if len(text) <= 120 else text[:117] + "..."


@dataclass
class Table:
    schema: str
    name: str
    seq_scan: int
    seq_tup_read: int
    idx_scan: int
    live: int
    dead: int
    size: int
    last_autovacuum: Any
    autovacuum_count: int
    options: dict[str, str]
    reltuples: float = 0.0  # what autovacuum's trigger uses (n_live_tup restarts at a statistics reset)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass
class Index:
    oid: int
    schema: str
    table: str
    name: str
    scans: int
    size: int
    unique: bool
    constraint: str | None
    keys: str  # indkey, e.g. "2 3"
    opclasses: str
    expressions: str | None
    predicate: str | None
    definition: str

    @property
    def columns(self) -> list[str]:
        return self.keys.split()


@dataclass
class PgStats:
    version: int
    database: str
    settings: dict[str, tuple[str, str | None]]  # name -> (setting, unit)
    statements: list[Statement] | None  # None: pg_stat_statements is not installed in this database
    tables: list[Table]
    indexes: list[Index]
    database_stats: dict[str, Any]
    checkpoints: dict[str, Any]
    wal: dict[str, Any] | None
    connections: int
    notes: list[str] = field(default_factory=list)

    def setting_kb(self, name: str) -> float:
        value, unit = self.settings[name]
        return float(value) * _unit_kb(unit)

    def number(self, name: str) -> float:
        return float(self.settings[name][0])


def _unit_kb(unit: str | None) -> float:
    return {"8kB": 8, "kB": 1, "MB": 1024, "16MB": 16 * 1024, "B": 1 / 1024}.get(unit or "", 1)


SETTINGS = ("max_connections", "superuser_reserved_connections", "max_wal_size", "checkpoint_timeout",
            "checkpoint_completion_target", "work_mem", "autovacuum", "autovacuum_vacuum_scale_factor",
            "autovacuum_vacuum_threshold", "shared_buffers", "block_size")


def connect(dsn: str) -> Any:
    """A psycopg connection for reading: read-only sessions, short connect timeout."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    params: dict[str, Any] = {}
    if "connect_timeout" not in conninfo_to_dict(dsn):
        params["connect_timeout"] = CONNECT_TIMEOUT_S
    conn = psycopg.connect(dsn, application_name="perfstack-advise", prepare_threshold=None, **params)
    conn.read_only = True
    return conn


def bound(cur: Any) -> None:
    cur.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
    cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")


def _rows(cur: Any, query: str, params: Any = None) -> list[dict[str, Any]]:
    cur.execute(query, params)
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _pgss_schema(cur: Any) -> str | None:
    cur.execute("SELECT extnamespace::regnamespace::text FROM pg_catalog.pg_extension WHERE extname = 'pg_stat_statements'")
    row = cur.fetchone()
    return row[0] if row else None


STATEMENT_COLUMNS = ("s.queryid, s.query, s.calls, s.total_exec_time, s.mean_exec_time, s.rows, s.shared_blks_hit, "
                     "s.shared_blks_read, s.temp_blks_read, s.temp_blks_written")
# Our own reads, catalog queries and utility statements are not the application's workload.
STATEMENT_FILTER = ("s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) "
                    "AND s.userid <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) "
                    "AND s.query ~* '^\\s*(select|with|update|delete)\\s' "
                    "AND s.query !~* '\\m(pg_catalog|information_schema|pg_stat_\\w+|hypopg\\w*)\\M'")


def read_statements(cur: Any, schema: str) -> list[Statement]:
    ident = '"' + schema.replace('"', '""') + '"'
    top = (f"(SELECT {STATEMENT_COLUMNS} FROM {ident}.pg_stat_statements s WHERE {STATEMENT_FILTER} "
           f"ORDER BY {{order}} DESC LIMIT {TOP_STATEMENTS})")
    query = (f"SELECT DISTINCT ON (queryid) * FROM ({top.format(order='s.total_exec_time')} UNION ALL "
             f"{top.format(order='s.mean_exec_time')}) t")
    rows = _rows(cur, f"SELECT * FROM ({query}) u ORDER BY total_exec_time DESC")
    return [Statement(int(r["queryid"] or 0), r["query"], int(r["calls"]), float(r["total_exec_time"]),
                      float(r["mean_exec_time"]), int(r["rows"]), int(r["shared_blks_hit"]),
                      int(r["shared_blks_read"]), int(r["temp_blks_read"]), int(r["temp_blks_written"]))
            for r in rows]


def read(cur: Any) -> PgStats:
    """Everything advise reads, in the caller's (read-only, bounded) transaction."""
    version = int(_rows(cur, "SELECT current_setting('server_version_num')::int AS v")[0]["v"])
    database = _rows(cur, "SELECT current_database() AS d")[0]["d"]
    settings = {r["name"]: (r["setting"], r["unit"]) for r in _rows(
        cur, "SELECT name, setting, unit FROM pg_catalog.pg_settings WHERE name = ANY(%s)", (list(SETTINGS),))}
    notes: list[str] = []
    statements: list[Statement] | None = None
    schema = _pgss_schema(cur)
    if schema is None:
        notes.append("pg_stat_statements is not installed in this database (shared_preload_libraries = "
                     "'pg_stat_statements' and CREATE EXTENSION pg_stat_statements): no statement or index advice")
    else:
        statements = read_statements(cur, schema)
    tables = [Table(r["schemaname"], r["relname"], int(r["seq_scan"] or 0), int(r["seq_tup_read"] or 0),
                    int(r["idx_scan"] or 0), int(r["n_live_tup"] or 0), int(r["n_dead_tup"] or 0), int(r["size"] or 0),
                    r["last_autovacuum"], int(r["autovacuum_count"] or 0),
                    dict(o.split("=", 1) for o in (r["reloptions"] or []) if "=" in o), max(0.0, float(r["reltuples"])))
              for r in _rows(cur, "SELECT t.schemaname, t.relname, t.seq_scan, t.seq_tup_read, t.idx_scan, "
                             "t.n_live_tup, t.n_dead_tup, t.last_autovacuum, t.autovacuum_count, c.reloptions, c.reltuples, "
                             "pg_catalog.pg_table_size(t.relid) AS size FROM pg_catalog.pg_stat_user_tables t "
                             "JOIN pg_catalog.pg_class c ON c.oid = t.relid "
                             f"ORDER BY size DESC LIMIT {MAX_TABLES}")]
    indexes = [Index(int(r["indexrelid"]), r["schemaname"], r["relname"], r["indexrelname"], int(r["idx_scan"] or 0),
                     int(r["size"] or 0), bool(r["indisunique"]), r["conname"], r["indkey"], r["indclass"],
                     r["exprs"], r["pred"], r["def"])
               for r in _rows(cur, "SELECT i.indexrelid, i.schemaname, i.relname, i.indexrelname, i.idx_scan, "
                              "pg_catalog.pg_relation_size(i.indexrelid) AS size, x.indisunique, "
                              "x.indkey::text AS indkey, x.indclass::text AS indclass, "
                              "pg_catalog.pg_get_expr(x.indexprs, x.indrelid) AS exprs, "
                              "pg_catalog.pg_get_expr(x.indpred, x.indrelid) AS pred, "
                              "pg_catalog.pg_get_indexdef(x.indexrelid) AS def, "
                              "(SELECT conname FROM pg_catalog.pg_constraint WHERE conindid = x.indexrelid "
                              " LIMIT 1) AS conname "
                              "FROM pg_catalog.pg_stat_user_indexes i "
                              "JOIN pg_catalog.pg_index x ON x.indexrelid = i.indexrelid "
                              f"WHERE x.indisvalid ORDER BY size DESC LIMIT {MAX_TABLES * 4}")]
    database_stats = _rows(cur, "SELECT blks_hit, blks_read, temp_files, temp_bytes, deadlocks, stats_reset, "
                           "now() - coalesce(stats_reset, pg_postmaster_start_time()) AS age "
                           "FROM pg_catalog.pg_stat_database WHERE datname = current_database()")[0]
    if version >= 170000:
        checkpoints = _rows(cur, "SELECT num_timed AS timed, num_requested AS requested, stats_reset "
                            "FROM pg_catalog.pg_stat_checkpointer")[0]
    else:
        checkpoints = _rows(cur, "SELECT checkpoints_timed AS timed, checkpoints_req AS requested, stats_reset "
                            "FROM pg_catalog.pg_stat_bgwriter")[0]
    wal = None
    if version >= 140000:
        wal = _rows(cur, "SELECT wal_bytes, stats_reset, extract(epoch FROM now() - coalesce(stats_reset, "
                    "pg_postmaster_start_time())) AS seconds FROM pg_catalog.pg_stat_wal")[0]
    connections = int(_rows(cur, "SELECT count(*) AS n FROM pg_catalog.pg_stat_activity "
                            "WHERE backend_type = 'client backend'")[0]["n"])
    return PgStats(version, database, settings, statements, tables, indexes, database_stats, checkpoints, wal,
                   connections, notes)


# ---------------------------------------------------------------- findings
def _pow2_kb(kb: float) -> int:
    """Round a size in kB up to a power of two MB (at least 1MB)."""
    mb = max(1.0, kb / 1024)
    return int(2 ** math.ceil(math.log2(mb))) * 1024


def _settings_value(profile: Profile, name: str, live: str) -> Any:
    """What the key gives today: the profile's override, else the value the server runs (rendered by a rule)."""
    return profile.postgres.settings.get(name, live)


def checkpoint_findings(stats: PgStats, profile: Profile) -> list[Finding]:
    timed, requested = int(stats.checkpoints["timed"] or 0), int(stats.checkpoints["requested"] or 0)
    total = timed + requested
    if requested < CHECKPOINTS_MIN_REQUESTED or requested / total < CHECKPOINTS_REQUESTED_SHARE:
        return []
    current_kb = stats.setting_kb("max_wal_size")
    timeout_s = stats.number("checkpoint_timeout")
    target = stats.number("checkpoint_completion_target")
    evidence: dict[str, Any] = {"checkpoints_requested": requested, "checkpoints_timed": timed,
                                "max_wal_size": format_size_pg(int(current_kb)),
                                "checkpoint_timeout_s": timeout_s}
    wanted_kb = 2 * current_kb
    if stats.wal and stats.wal["seconds"] and float(stats.wal["seconds"]) > 0:
        rate_kb_s = int(stats.wal["wal_bytes"] or 0) / 1024 / float(stats.wal["seconds"])
        # A checkpoint starts when WAL since the last one reaches about max_wal_size / (1 + completion target):
        # size it so one checkpoint_timeout of WAL at the observed rate fits.
        needed_kb = rate_kb_s * timeout_s * (1 + target)
        evidence["wal_rate"] = f"{format_size_human(int(rate_kb_s * 1024))}/s"
        wanted_kb = max(wanted_kb, needed_kb)
    new_kb = min(_pow2_kb(wanted_kb), MAX_WAL_SIZE_CAP_KB, _pow2_kb(MAX_WAL_SIZE_STEP * current_kb))
    if new_kb <= current_kb:
        return []
    value = format_size_pg(new_kb)
    reason = (f"{requested} of {total} checkpoints were requested (WAL reached max_wal_size "
              f"{format_size_pg(int(current_kb))}) instead of timed")
    return [Finding(TARGET, "checkpoints", "max_wal_size",
                    f"{reason}: raise max_wal_size to {value} so checkpoints follow checkpoint_timeout",
                    evidence, edits=[Edit("postgres.settings.max_wal_size", value,
                                          _settings_value(profile, "max_wal_size", format_size_pg(int(current_kb))), reason)])]


def _trigger(stats: PgStats, table: Table) -> tuple[float, int, float]:
    scale = float(table.options.get("autovacuum_vacuum_scale_factor", stats.number("autovacuum_vacuum_scale_factor")))
    threshold = int(table.options.get("autovacuum_vacuum_threshold", stats.number("autovacuum_vacuum_threshold")))
    return scale, threshold, threshold + scale * max(table.reltuples, table.live)


def dead_tuple_findings(stats: PgStats, profile: Profile) -> list[Finding]:
    findings = []
    behind = []
    for table in stats.tables:
        scale, threshold, trigger = _trigger(stats, table)
        if table.dead < DEAD_TUPLES_MIN or table.dead < DEAD_OUTRUN_FACTOR * trigger:
            continue
        behind.append((table, scale, trigger))
    if not behind:
        return []
    global_scale = stats.number("autovacuum_vacuum_scale_factor")
    smaller = [s for s in SCALE_FACTOR_STEPS if s <= global_scale / 2] or [global_scale / 2]
    new_scale = smaller[0]
    for table, scale, trigger in behind:
        ratio = table.dead / max(1, table.live + table.dead)
        evidence = {"dead_tuples": table.dead, "live_tuples": table.live, "dead_ratio": round(ratio, 3),
                    "autovacuum_trigger": int(trigger), "scale_factor": scale,
                    "last_autovacuum": str(table.last_autovacuum) if table.last_autovacuum else None,
                    "autovacuum_count": table.autovacuum_count}
        reason = (f"{table.qualified}: {table.dead} dead tuples, {table.dead / max(1.0, trigger):.1f}x the autovacuum "
                  f"trigger ({threshold_text(trigger)}) at scale factor {scale:g}")
        sql = [f"VACUUM (ANALYZE) {_quote_qualified(table.schema, table.name)};  -- clears the backlog now"]
        finding = Finding(TARGET, "dead_tuples", table.qualified,
                          f"{reason}: autovacuum is not keeping up" + (
                              "" if "autovacuum_vacuum_scale_factor" in table.options else
                              f"; lower autovacuum_vacuum_scale_factor to {new_scale:g}"),
                          evidence, sql=sql)
        if "autovacuum_vacuum_scale_factor" in table.options:
            finding.sql.append(f"ALTER TABLE {_quote_qualified(table.schema, table.name)} SET "
                               f"(autovacuum_vacuum_scale_factor = {min(scale / 2, new_scale):g});")
        elif stats.settings["autovacuum"][0] != "on":
            finding.message = f"{reason}: autovacuum is off; turn it on"
            finding.edits = [Edit("postgres.settings.autovacuum", "on", _settings_value(profile, "autovacuum", "off"),
                                  reason)]
        else:
            finding.edits = [Edit("postgres.settings.autovacuum_vacuum_scale_factor", new_scale,
                                  _settings_value(profile, "autovacuum_vacuum_scale_factor", f"{global_scale:g}"),
                                  reason)]
        findings.append(finding)
    return findings


def threshold_text(trigger: float) -> str:
    return f"{int(trigger)} dead tuples"


def work_mem_findings(stats: PgStats, profile: Profile) -> list[Finding]:
    if not stats.statements:
        return []
    total_ms = sum(s.total_ms for s in stats.statements) or 1.0
    block_kb = stats.number("block_size") / 1024
    current_kb = stats.setting_kb("work_mem")
    spilling = [s for s in stats.statements if s.temp_written and s.calls and s.total_ms / total_ms >= TEMP_SHARE_MIN]
    if not spilling:
        return []
    worst = max(spilling, key=lambda s: s.temp_written / s.calls)
    spill_kb = worst.temp_written * block_kb / worst.calls
    # An in-memory sort or hash needs roughly two to three times the bytes it writes to temp files.
    new_kb = min(_pow2_kb(max(2 * current_kb, 3 * spill_kb)), WORK_MEM_CAP_KB)
    if new_kb <= current_kb:
        return []
    value = format_size_pg(new_kb)
    reason = (f"{len(spilling)} top statement(s) spill to temp files; the largest writes "
              f"{format_size_human(int(spill_kb * 1024))} per call with work_mem {format_size_pg(int(current_kb))}")
    evidence = {"statements": [{"query": s.short, "calls": s.calls, "temp_blocks_written": s.temp_written,
                                "share_of_time": round(s.total_ms / total_ms, 3)} for s in spilling],
                "work_mem": format_size_pg(int(current_kb)), "temp_files": stats.database_stats["temp_files"],
                "temp_bytes": stats.database_stats["temp_bytes"]}
    return [Finding(TARGET, "work_mem", worst.short, f"{reason}: raise work_mem to {value}", evidence,
                    edits=[Edit("postgres.settings.work_mem", value,
                                _settings_value(profile, "work_mem", format_size_pg(int(current_kb))), reason)],
                    companions=_connections_for_work_mem(profile, new_kb))]


def _connections_for_work_mem(profile: Profile, work_mem_kb: int) -> list[Edit]:
    """A larger work_mem x max_connections may not fit the host (checks.postgres_fits_memory): the
    max_connections that fits it with the new work_mem, when that still covers PgBouncer's pools."""
    from ..checks import postgres_memory
    from ..render import config_parts

    parts = config_parts(profile)
    pg = parts.postgres
    fits = (profile.hardware.postgres.memory // 1024 - postgres_memory(pg).fixed) // work_mem_kb
    needed = parts.pgbouncer.derived["server_connections"] + pg.value("superuser_reserved_connections")
    current = pg.value("max_connections")
    if fits >= current or fits < needed:
        return []
    return [Edit("postgres.max_connections", int(fits), current,
                 f"work_mem {format_size_pg(work_mem_kb)} x max_connections must fit the host's memory with "
                 f"shared_buffers and maintenance memory; {fits} still covers PgBouncer's {needed}")]


def database_findings(stats: PgStats, profile: Profile) -> list[Finding]:
    findings = []
    db = stats.database_stats
    hit, read_ = int(db["blks_hit"] or 0), int(db["blks_read"] or 0)
    minimum = profile.alerts.postgres_cache_hit_ratio_min
    if hit + read_ >= CACHE_HIT_MIN_BLOCKS and hit / (hit + read_) < minimum:
        findings.append(Finding(TARGET, "cache_hit_ratio", stats.database,
                                f"buffer cache hit ratio {hit / (hit + read_):.1%} is under "
                                f"alerts.postgres_cache_hit_ratio_min {minimum:.0%}: the working set does not fit "
                                f"shared_buffers ({format_size_pg(int(stats.setting_kb('shared_buffers')))}); "
                                "more memory (hardware.postgres.memory) or fewer blocks read per statement",
                                {"blks_hit": hit, "blks_read": read_}))
    if int(db["deadlocks"] or 0) > 0:
        findings.append(Finding(TARGET, "deadlocks", stats.database,
                                f"{db['deadlocks']} deadlocks since the statistics were reset: the application "
                                "takes locks in different orders (no setting fixes this)",
                                {"deadlocks": int(db["deadlocks"])}))
    usable = stats.number("max_connections") - stats.number("superuser_reserved_connections")
    if usable > 0 and stats.connections / usable > CONNECTIONS_SHARE_MAX:
        findings.append(Finding(TARGET, "connections", stats.database,
                                f"{stats.connections} client connections of {int(usable)} usable "
                                f"({stats.connections / usable:.0%}): route clients through PgBouncer or lower "
                                "pgbouncer.default_pool_size x replicas",
                                {"connections": stats.connections, "max_connections": int(stats.number("max_connections"))}))
    return findings


def _quote(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'


def _quote_qualified(schema: str, name: str) -> str:
    return f"{_quote(schema)}.{_quote(name)}"


def index_findings(stats: PgStats) -> list[Finding]:
    """Duplicate (or left-prefix redundant) and unused indexes, each with its DROP INDEX CONCURRENTLY."""
    findings: list[Finding] = []
    reported: set[int] = set()
    by_table: dict[tuple[str, str], list[Index]] = {}
    for index in stats.indexes:
        by_table.setdefault((index.schema, index.table), []).append(index)
    for group in by_table.values():
        for index in sorted(group, key=lambda i: i.oid):
            if index.oid in reported or index.constraint:
                continue
            for other in group:
                if other.oid == index.oid or other.oid in reported:
                    continue
                if index.expressions != other.expressions or index.predicate != other.predicate:
                    continue
                same = index.keys == other.keys and index.opclasses == other.opclasses
                prefix = (len(index.columns) < len(other.columns) and other.columns[:len(index.columns)] == index.columns
                          and other.opclasses.split()[:len(index.columns)] == index.opclasses.split())
                if not (same or prefix) or (index.unique and not (same and other.unique)):
                    continue
                if same and (other.constraint is None and (other.scans, -other.oid) < (index.scans, -index.oid)):
                    continue  # of two equal ones, keep the one with more scans (the older on a tie)
                why = "the same columns as" if same else "a leading part of"
                sql = f"DROP INDEX CONCURRENTLY {_quote_qualified(index.schema, index.name)};"
                advice = IndexAdvice("drop", f"{index.schema}.{index.table}", sql, index.size, index=index.name,
                                     why=f"{why} {other.name}")
                findings.append(Finding(TARGET, "duplicate_index", f"{index.schema}.{index.name}",
                                        f"{index.name} ({format_size_human(index.size)}, {index.scans} scans) indexes "
                                        f"{why} {other.name}: drop it",
                                        {"size_bytes": index.size, "scans": index.scans, "kept": other.name,
                                         "definition": index.definition, "kept_definition": other.definition},
                                        sql=[sql], index=advice))
                reported.add(index.oid)
                break
    for index in stats.indexes:
        if index.oid in reported or index.scans or index.unique or index.constraint:
            continue
        if index.size < UNUSED_INDEX_MIN_BYTES:
            continue
        sql = f"DROP INDEX CONCURRENTLY {_quote_qualified(index.schema, index.name)};"
        since = stats.database_stats["stats_reset"]
        advice = IndexAdvice("drop", f"{index.schema}.{index.table}", sql, index.size, index=index.name, why="unused")
        findings.append(Finding(TARGET, "unused_index", f"{index.schema}.{index.name}",
                                f"{index.name} ({format_size_human(index.size)}) has not been scanned since the "
                                f"statistics were {'reset at ' + str(since) if since else 'started'}: every write "
                                "still maintains it; drop it (check replicas and rare jobs first)",
                                {"size_bytes": index.size, "definition": index.definition}, sql=[sql], index=advice))
    return findings


def seq_scan_notes(stats: PgStats) -> list[str]:
    notes = []
    for table in stats.tables:
        if table.size >= LARGE_TABLE_BYTES and table.seq_scan and table.seq_tup_read / table.seq_scan > 10_000:
            notes.append(f"{table.qualified} ({format_size_human(table.size)}): {table.seq_scan} sequential scans "
                         f"reading {table.seq_tup_read // table.seq_scan} rows each, {table.idx_scan} index scans")
    return notes


def check(profile: Profile, dsn: str, explain_budget: int | None = None) -> TargetResult:
    from . import indexes

    endpoint = redact(dsn)
    result = TargetResult(TARGET, endpoint)
    try:
        with connect(dsn) as conn, conn.transaction(force_rollback=True), conn.cursor() as cur:
            bound(cur)
            stats = read(cur)
            result.notes.extend(stats.notes)
            if stats.statements is not None:
                created, notes = indexes.advise(cur, stats, explain_budget)
                result.findings.extend(created)
                result.notes.extend(notes)
    except Exception as exc:  # noqa: BLE001 - reported; the other targets go on
        result.error = f"{type(exc).__name__}: {str(exc).strip()}"
        return result
    result.findings.extend(index_findings(stats))
    result.findings.extend(dead_tuple_findings(stats, profile))
    result.findings.extend(checkpoint_findings(stats, profile))
    result.findings.extend(work_mem_findings(stats, profile))
    result.findings.extend(database_findings(stats, profile))
    result.notes.extend(seq_scan_notes(stats))
    if stats.statements:
        for s in stats.statements[:5]:
            result.notes.append(f"top statement: {s.calls} calls, {s.total_ms:.0f} ms total, {s.mean_ms:.2f} ms mean, "
                                f"{s.shared_hit} blocks hit / {s.shared_read} read, {s.temp_written} temp blocks "
                                f"written: {s.short}")
    return result
