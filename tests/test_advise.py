"""`perfstack advise` on real servers with planted problems, then again after applying its advice.

PostgreSQL 15 with pg_stat_statements and HypoPG, an orders table of 300,000 rows and a workload with:
a missing index on a filtered column (customer_id, also behind an UPDATE), a partial index's case
(open tasks: `finished_at IS NULL` on 2 % of rows), a query a new index would not help (status: three
values), a duplicate index (created_at twice), a sessions table whose dead tuples outrun autovacuum
(autovacuum held back by a long naptime in the first phase), a sort that spills to temp files, and a
write phase against max_wal_size 32MB. Redis: a cache too small for its working set.
"""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_py

from generators import localservers as ls
from generators import units
from generators.advise import postgres as advise_pg
from generators.advise.edits import merge_changes, write
from generators.advise.model import Edit
from generators.render import render
from generators.validation import load_profile
from tests.conftest import PROFILES, run_cli


def _hypopg_installed() -> bool:
    try:
        return (ls.pg_bin_dir().parent / "lib" / "hypopg.so").exists()
    except ls.ServerError:
        return False


needs_hypopg = pytest.mark.skipif(not _hypopg_installed(),
                                  reason="needs PostgreSQL with HypoPG (postgresql-15-hypopg; scripts/test installs it)")

LAB = """\
# A lab environment for advise's planted problems.
extends: dev
environment: lab
namespace: lab

hardware:
  redis: {memory: 8MiB, cpus: 1}   # a tiny cache: 75% of it is 6MiB

postgres:
  settings:
    max_wal_size: 32MB   # small on purpose: the write phase forces checkpoints
"""
ADVISE_ROLE = "perfstack_advise"
LOCAL_ONLY = "shared_preload_libraries = 'pg_stat_statements'\nautovacuum_naptime = '{naptime}'\n"
CUSTOMERS = 20_000
REDIS_KEYS, REDIS_VALUE, REDIS_LOOKUPS = 4000, 4096, 20_000


def _profiles(tmp: Path) -> Path:
    folder = tmp / "profiles"
    folder.mkdir()
    for name in ("base.yaml", "dev.yaml"):
        (folder / name).write_text((PROFILES / name).read_text())
    (folder / "lab.yaml").write_text(LAB)
    return folder


def _conf(folder: Path, target: str) -> str:
    profile, source = load_profile("lab", folder)
    return render(profile, source).files[target]


def _setup(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE EXTENSION hypopg")
        conn.execute("CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL, "
                     "created_at timestamptz NOT NULL, total numeric(10,2) NOT NULL, shipped_at timestamptz)")
        conn.execute(f"INSERT INTO orders (customer_id, status, created_at, total, shipped_at) "
                     f"SELECT (random() * {CUSTOMERS})::int, (ARRAY['new', 'paid', 'shipped'])[1 + i % 3], "
                     "now() - i * interval '1 minute', (random() * 500)::numeric(10,2), "
                     "CASE WHEN i % 10 = 0 THEN NULL ELSE now() END FROM generate_series(1, 300000) i")
        conn.execute("CREATE INDEX orders_created_at_idx ON orders (created_at)")
        conn.execute("CREATE INDEX orders_created_at_copy ON orders (created_at)")  # the planted duplicate
        conn.execute("CREATE TABLE sessions (id int PRIMARY KEY, token text, seen timestamptz)")
        conn.execute("INSERT INTO sessions SELECT i, md5(i::text), now() FROM generate_series(1, 50000) i")
        conn.execute("CREATE TABLE events (id bigserial PRIMARY KEY, payload text)")
        # tasks: only 2 % are open, and the app only ever looks for open ones: a partial index fits
        conn.execute("CREATE TABLE tasks (id bigserial PRIMARY KEY, owner_id int NOT NULL, finished_at timestamptz)")
        conn.execute("INSERT INTO tasks (owner_id, finished_at) SELECT (random() * 5000)::int, "
                     "CASE WHEN i % 50 = 0 THEN NULL ELSE now() END FROM generate_series(1, 150000) i")
        conn.execute("ANALYZE")
        conn.execute(f"CREATE ROLE {ADVISE_ROLE} LOGIN IN ROLE pg_read_all_stats")
        conn.execute(f"ALTER ROLE {ADVISE_ROLE} SET default_transaction_read_only = on")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {ADVISE_ROLE}")
        _reset(conn)


def _reset(conn: Any) -> None:
    conn.execute("SELECT pg_stat_statements_reset()")
    conn.execute("SELECT pg_stat_reset()")
    conn.execute("SELECT pg_stat_reset_shared('bgwriter')")
    conn.execute("SELECT pg_stat_reset_shared('wal')")


def _workload(dsn: str, churn: bool = True) -> None:
    rng = random.Random(18)
    since = "2020-01-01"
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(60):
            conn.execute("SELECT id, total FROM orders WHERE customer_id = %s", (rng.randint(1, CUSTOMERS),)).fetchall()
            conn.execute("SELECT id, total FROM orders WHERE created_at >= %s::timestamptz ORDER BY created_at LIMIT 20",
                         (since,)).fetchall()
        for _ in range(10):
            conn.execute("SELECT id FROM orders WHERE customer_id = %s AND shipped_at IS NULL",
                         (rng.randint(1, CUSTOMERS),)).fetchall()
        for _ in range(20):
            conn.execute("SELECT id FROM tasks WHERE owner_id = %s AND finished_at IS NULL",
                         (rng.randint(1, 5000),)).fetchall()
        for _ in range(10):  # planned as its SELECT: the advise role may not write
            conn.execute("UPDATE orders SET total = total + 1 WHERE customer_id = %s", (rng.randint(1, CUSTOMERS),))
        for _ in range(4):
            conn.execute("SELECT count(*) FROM orders WHERE status = %s", ("paid",)).fetchall()
        for _ in range(3):  # a full sort of 300,000 numerics: several MB, more than work_mem 5MB
            conn.execute("SELECT sum(total) FROM (SELECT total FROM orders ORDER BY total * customer_id OFFSET %s) s", (10,)).fetchall()
        if churn:
            conn.execute("UPDATE sessions SET seen = now() WHERE id % 5 < 3")
        for _ in range(5):  # the write phase: about 100MB of WAL
            conn.execute("INSERT INTO events (payload) SELECT repeat(md5(i::text), 8) FROM generate_series(1, 60000) i")


def _redis_workload(url: str) -> None:
    client = redis_py.Redis.from_url(url)
    rng = random.Random(18)
    value = b"x" * REDIS_VALUE
    for _ in range(REDIS_LOOKUPS // 200):
        keys = [f"q:{rng.randrange(REDIS_KEYS)}" for _ in range(200)]
        found = client.mget(keys)
        pipe = client.pipeline(transaction=False)
        for key, hit in zip(keys, found, strict=True):
            if hit is None:
                pipe.set(key, value)
        pipe.execute()
    client.close()


def _advise(folder: Path, pg: ls.Postgres, rd: ls.Redis, tmp: Path, *extra: str) -> tuple[int, dict[str, Any], Path]:
    sql = tmp / f"advice-{time.monotonic_ns()}.sql"
    result = run_cli("--profiles-dir", folder, "advise", "lab", "--postgres", pg.dsn(ADVISE_ROLE, "app"),
                     "--redis", rd.url, "--format", "json", "--sql", sql, *extra)
    return result.exit_code, json.loads(result.stdout), sql


def _by_kind(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for target in report["targets"]:
        assert target["error"] is None, target
        for finding in target["findings"]:
            kinds.setdefault(finding["kind"], []).append(finding)
    return kinds


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("advise")
    folder = _profiles(tmp)
    pg = ls.start_postgres(_conf(folder, "postgres/postgresql.conf"), extra_conf=LOCAL_ONLY.format(naptime="1h"))
    rd = None
    try:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE app")
        _setup(pg.dsn(dbname="app"))
        rd = ls.start_redis(_conf(folder, "redis/redis.conf"))
        _workload(pg.dsn(dbname="app"))
        _redis_workload(rd.url)
        yield folder, pg, rd, tmp
    finally:
        if rd:
            rd.cleanup()
        pg.cleanup()


@needs_hypopg
def test_advise_finds_planted_problems_then_nothing_after_applying(lab: Any) -> None:
    folder, pg, rd, tmp = lab
    original = (folder / "lab.yaml").read_text()
    code, report, sql_path = _advise(folder, pg, rd, tmp, "--write")
    assert code == 1, report
    kinds = _by_kind(report)

    # The missing index, proven with HypoPG; none for the status query (three values: a scan stays cheaper).
    creates = sorted((f["index"] for f in kinds["missing_index"]), key=lambda c: c["table"])
    assert [c["sql"] for c in creates] == [
        "CREATE INDEX CONCURRENTLY orders_customer_id_idx ON public.orders (customer_id);",
        # the partial index serves the open-task lookup as well as a full one, at a fraction of the size
        "CREATE INDEX CONCURRENTLY tasks_owner_id_partial_idx ON public.tasks (owner_id) WHERE finished_at IS NULL;"]
    assert any(s.startswith("SELECT id, total FROM orders WHERE customer_id = $1") for s in creates[0]["statements"])
    assert any(s.startswith("UPDATE orders SET total = total +") for s in creates[0]["statements"])
    assert not any("status" in s for c in creates for s in c["statements"])
    assert creates[0]["cost_reduction"] >= 0.5 and creates[0]["size_bytes"] > 1_000_000
    # The duplicate: of the two equal indexes the planner used one; the other (no scans) is dropped.
    (duplicate,) = kinds["duplicate_index"]
    pair = {"orders_created_at_idx", "orders_created_at_copy"}
    dropped = duplicate["index"]["index"]
    assert dropped in pair and duplicate["evidence"]["kept"] == (pair - {dropped}).pop()
    assert duplicate["evidence"]["scans"] == 0
    assert duplicate["index"]["sql"] == f"DROP INDEX CONCURRENTLY public.{dropped};"
    assert "unused_index" not in kinds  # the unused copy is reported once, as the duplicate
    # Dead tuples, checkpoints and temp files become profile edits the checks accept.
    (dead,) = kinds["dead_tuples"]
    assert dead["subject"] == "public.sessions" and dead["proposal"] == "proposed"
    edits = {e["key"]: e["value"] for e in report["edits"]}
    # the server runs the DBA rule's 0.1 for web (postgres.autovacuum_vacuum_scale_factor): the next step is 0.05
    assert edits["postgres.settings.autovacuum_vacuum_scale_factor"] == 0.05
    assert units.parse_size(edits["postgres.settings.max_wal_size"]) > 32 * units.MIB
    assert kinds["checkpoints"][0]["evidence"]["checkpoints_requested"] >= 3
    # with the companion max_connections that keeps work_mem x connections within the host (postgres_fits_memory)
    assert kinds["work_mem"][0]["proposal"] in ("proposed", "proposed-with-companions")
    # Redis: too small for its working set; a bigger maxmemory needs a bigger host, proposed together.
    (cache,) = kinds["cache_too_small"]
    assert cache["evidence"]["evicted_keys"] > 0 and cache["evidence"]["hit_ratio"] < 0.7
    assert cache["proposal"] == "proposed-with-companions"
    assert edits["redis.maxmemory"] == "32MiB" and edits["hardware.redis.memory"] == "64MiB"
    # perfstack ran none of the SQL: no real index was created.
    with psycopg.connect(pg.dsn(dbname="app")) as conn:
        assert conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_customer_id_idx'").fetchone()[0] == 0
    sql = sql_path.read_text()
    assert "CREATE INDEX CONCURRENTLY orders_customer_id_idx" in sql and "VACUUM (ANALYZE) public.sessions;" in sql

    # --write kept the file's comments and layout, and the edited profile validates.
    written = (folder / "lab.yaml").read_text()
    for line in original.splitlines():
        if line.startswith("#") or "small on purpose" in line:
            assert line.split("#")[-1] in written
    assert "perfstack advise:" in written and "max_wal_size: 32MB" not in written
    assert run_cli("--profiles-dir", folder, "validate", "lab").exit_code == 0

    # Apply: run the reviewed SQL, re-render and reload, let autovacuum run, reset the statistics, run again.
    with psycopg.connect(pg.dsn(dbname="app"), autocommit=True) as conn:
        for line in sql.splitlines():  # one statement a line; CONCURRENTLY needs autocommit
            if line.strip() and not line.startswith("--"):
                conn.execute(line)
    ls.configure_postgres(pg, _conf(folder, "postgres/postgresql.conf"), LOCAL_ONLY.format(naptime="1s"))
    pg.ctl("reload")
    client = redis_py.Redis.from_url(rd.url)
    maxmemory = re.search(r"^maxmemory (\S+)$", _conf(folder, "redis/redis.conf"), re.MULTILINE)[1]  # type: ignore[index]
    client.config_set("maxmemory", maxmemory)
    client.config_resetstat()
    client.close()
    with psycopg.connect(pg.dsn(dbname="app"), autocommit=True) as conn:
        _reset(conn)
    _workload(pg.dsn(dbname="app"))
    _redis_workload(rd.url)
    _wait_for_autovacuum(pg.dsn(dbname="app"))
    code, report, _ = _advise(folder, pg, rd, tmp)
    assert _by_kind(report) == {} and report["edits"] == [], report
    assert code == 0


def _wait_for_autovacuum(dsn: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT n_dead_tup, autovacuum_count FROM pg_stat_user_tables "
                               "WHERE relname = 'sessions'").fetchone()
            if row and row[1] > 0 and row[0] < 5000:
                return
            time.sleep(0.5)
    raise AssertionError(f"autovacuum did not process sessions within {timeout_s}s: {row}")


@needs_hypopg
def test_advise_role_is_read_only_and_bounded(lab: Any) -> None:
    folder, pg, _rd, _tmp = lab
    with advise_pg.connect(pg.dsn(ADVISE_ROLE, "app")) as conn, conn.transaction(force_rollback=True), \
            conn.cursor() as cur:
        advise_pg.bound(cur)
        assert cur.execute("SHOW transaction_read_only").fetchone()[0] == "on"
        assert cur.execute("SHOW statement_timeout").fetchone()[0] == advise_pg.STATEMENT_TIMEOUT
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            cur.execute("CREATE TABLE nope (x int)")


def test_merge_keeps_untouched_multiline_flow_mappings() -> None:
    original = ("# top\nllm:\n  model: {name: x,   # kept\n          layers: 32}\napp:\n"
                "  db_pool: {size: 20, max_overflow: 10}  # pool\n")
    path = Path("/tmp") / f"perfstack-advise-{time.monotonic_ns()}.yaml"
    path.write_text(original)
    try:
        text = write(path, [Edit("app.db_pool.size", 40, 20, "pool busy")])
    finally:
        path.unlink()
    assert "  model: {name: x,   # kept\n          layers: 32}\n" in text
    assert "db_pool: {size: 40, max_overflow: 10}" in text and "# perfstack advise: pool busy (was 20)" in text
    assert merge_changes("a: 1\n", "a: 1\n", "a: 2\n") == "a: 2\n"


def test_advise_needs_a_target_and_a_valid_window(profile_folder: Path) -> None:
    result = run_cli("--profiles-dir", profile_folder, "advise", "dev", catch_exceptions=True)
    assert result.exit_code == 2 and "needs at least one live system" in result.stderr
    result = run_cli("--profiles-dir", profile_folder, "advise", "dev", "--redis", "redis://127.0.0.1:1/0",
                     "--since", "soon", catch_exceptions=True)
    assert result.exit_code == 2 and "--since" in result.stderr


class _Metrics:
    """A scrape target that plays the app, vLLM and kube-state-metrics: counters advance on every scrape."""

    def __init__(self, namespace: str) -> None:
        import http.server
        import threading

        self.scrapes = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                outer.scrapes += 1
                n = outer.scrapes
                body = "\n".join([
                    f'app_cache_requests_total{{cache="query",result="hit"}} {3 * n}',
                    f'app_cache_requests_total{{cache="query",result="miss"}} {7 * n}',
                    f'app_cache_requests_total{{cache="llm",result="hit"}} {9 * n}',
                    f'app_cache_requests_total{{cache="llm",result="miss"}} {1 * n}',
                    "app_db_pool_connections_in_use 29",
                    # API requests: 10 % under 0.5 s, the rest under 10 s (p95 above dev's 5 s SLO) ...
                    f'http_request_duration_seconds_bucket{{le="0.5"}} {n}',
                    f'http_request_duration_seconds_bucket{{le="10"}} {10 * n}',
                    f'http_request_duration_seconds_bucket{{le="+Inf"}} {10 * n}',
                    # ... and DB round trips all under 100 ms (within dev's 500 ms)
                    f'app_db_query_duration_seconds_bucket{{le="0.1"}} {5 * n}',
                    f'app_db_query_duration_seconds_bucket{{le="+Inf"}} {5 * n}',
                    "vllm:num_requests_waiting 5",
                    'kube_horizontalpodautoscaler_status_current_replicas{horizontalpodautoscaler="api"} 4',
                    'kube_horizontalpodautoscaler_spec_max_replicas{horizontalpodautoscaler="api"} 4', ""]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_advise_from_prometheus_proposes_cache_pool_and_autoscaling_edits(profile_folder: Path) -> None:
    profile, _ = load_profile("dev", profile_folder)
    target = _Metrics(profile.namespace)
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": profile.app.deployment, "static_configs": [
                  {"targets": [f"127.0.0.1:{target.port}"], "labels": {"namespace": profile.namespace}}]}]}
    prometheus = ls.start_prometheus(json.dumps(config))
    try:
        deadline = time.monotonic() + 30
        while target.scrapes < 4 and time.monotonic() < deadline:
            time.sleep(0.25)
        time.sleep(1.5)  # the last scrape ingested
        args = ("--profiles-dir", profile_folder, "advise", "dev", "--prometheus", prometheus.url, "--since", "1m")
        result = run_cli(*args, "--format", "json")
        markdown = run_cli(*args, "--format", "markdown").stdout
    finally:
        target.server.shutdown()
        prometheus.cleanup()
    report = json.loads(result.stdout)
    assert result.exit_code == 1, report
    kinds = _by_kind(report)
    assert set(kinds) == {"query_cache", "db_pool", "llm_queue", "hpa_at_max", "latency"}, kinds  # LLM cache: 90%
    assert [f["subject"] for f in kinds["latency"]] == ["api_latency_p95"]  # not db_query_p95
    assert kinds["latency"][0]["evidence"]["p95_s"] > 5
    edits = {e["key"]: (e["current"], e["value"]) for e in report["edits"]}
    assert edits == {"app.query_cache.size": (2000, 4000), "app.db_pool.size": (20, 27),
                     "autoscaling.api.max_replicas": (4, 6)}
    assert "| `app.db_pool.size` | 20 | **27** |" in markdown and "## perfstack advise: dev" in markdown
    assert (profile_folder / "dev.yaml").read_text() == (PROFILES / "dev.yaml").read_text()  # no --write: untouched


def test_an_edit_the_checks_refuse_is_not_proposed_unless_its_companions_fix_it() -> None:
    from generators.advise.edits import validate
    from generators.advise.model import Finding

    profile, source = load_profile("dev", PROFILES)
    alone = Finding("redis", "cache_too_small", "redis.maxmemory", "too small",
                    edits=[Edit("redis.maxmemory", "2GiB", "75%", "evicting")])
    helped = Finding("redis", "cache_too_small", "redis.maxmemory", "too small",
                     edits=[Edit("redis.maxmemory", "2GiB", "75%", "evicting")],
                     companions=[Edit("hardware.redis.memory", "4GiB", "1GiB", "room")])
    accepted, _ = validate([alone], source, profile.environment)
    assert accepted == [] and alone.proposal == "refused"
    assert any("redis_fits_memory" in p and "redis.maxmemory" in p for p in alone.refused_because), alone.refused_because
    accepted, _ = validate([helped], source, profile.environment)
    assert helped.proposal == "proposed-with-companions"
    assert [(e.key, e.value) for e in accepted] == [("redis.maxmemory", "2GiB"), ("hardware.redis.memory", "4GiB")]


def test_candidates_from_a_plan_composite_in_selectivity_order_and_partial() -> None:
    from generators.advise.indexes import Candidate, candidates, usages

    plan = {"Node Type": "Limit", "Plans": [{"Node Type": "Sort", "Sort Key": ["o.created_at DESC"], "Plans": [
        {"Node Type": "Seq Scan", "Relation Name": "orders", "Schema": "public", "Alias": "o",
         "Filter": "((o.shipped_at IS NULL) AND ((o.status)::text = $1) AND (o.customer_id = $2) "
                   "AND (o.total > $3) AND (x.other = $4))"}]}]}
    (usage,) = usages(plan)
    assert (usage.equality, usage.ranges, usage.sorts) == (["status", "customer_id"], ["total"], ["created_at"])
    assert usage.null_predicates == ["shipped_at IS NULL"]  # x.other belongs to another relation
    columns = {"status", "customer_id", "total", "created_at", "shipped_at"}
    found = candidates(usage, columns, {"status": 3, "customer_id": 20000, "total": -0.5})
    assert Candidate("public", "orders", ("customer_id", "status", "total")) in found  # most distinct first
    assert Candidate("public", "orders", ("customer_id", "status", "created_at")) in found
    assert Candidate("public", "orders", ("customer_id",), "shipped_at IS NULL") in found
    assert all(c.columns != ("shipped_at",) for c in found)
    assert found[0].definition() == "ON public.orders (customer_id)" and len(found) <= 8


def test_bad_profile_or_unreachable_target_exit_2_and_nothing_is_written(profile_folder: Path, tmp_path: Path) -> None:
    (profile_folder / "broken.yaml").write_text("extends: dev\nenvironment: broken\nredis:\n  maxmemry: 1GiB\n")
    sql = tmp_path / "advice.sql"
    before = (profile_folder / "dev.yaml").read_text()
    result = run_cli("--profiles-dir", profile_folder, "advise", "broken", "--redis", "redis://127.0.0.1:1/0",
                     "--sql", sql, "--write", catch_exceptions=True)
    assert result.exit_code == 2 and "broken.yaml:4:3: redis.maxmemry: unknown key" in result.stderr, result.stderr
    assert not sql.exists()
    port = ls.free_port()  # nothing listens there
    result = run_cli("--profiles-dir", profile_folder, "advise", "dev", "--redis", f"redis://:s3cret@127.0.0.1:{port}/0",
                     "--sql", sql, "--write", "--format", "json")
    report = json.loads(result.stdout)
    assert result.exit_code == 2 and report["targets"][0]["error"] and "s3cret" not in result.stdout
    assert not sql.exists() and (profile_folder / "dev.yaml").read_text() == before


def test_simple_updates_and_deletes_are_planned_as_their_select() -> None:
    from generators.advise.indexes import as_select

    assert (as_select("UPDATE orders o SET total = total + $1, note = coalesce($2, 'a,b') WHERE o.customer_id = $3")
            == "SELECT (total = total + $1), (note = coalesce($2, 'a,b')) FROM orders o WHERE o.customer_id = $3")
    assert as_select("DELETE FROM events WHERE id < $1") == "SELECT 1 FROM events WHERE id < $1"
    assert as_select("UPDATE t SET a = $1 WHERE b = $2 RETURNING a") is None
    assert as_select("DELETE FROM t USING u WHERE t.a = u.a") is None
    assert as_select("SELECT 1") is None
