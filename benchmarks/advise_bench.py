"""What `perfstack advise` buys: the planted workload's p95 and TPS before and after applying its advice.

    python3 benchmarks/advise_bench.py [--rows 300000] [--duration 10] [--clients 4] [--quick]

1. PostgreSQL from a lab profile (dev with max_wal_size 32MB), pg_stat_statements and HypoPG, an orders
   table (customer_id unindexed, created_at indexed twice) and a sessions table with dead tuples.
2. Before: pgbench (custom scripts, per-transaction logs) runs the slow statements (an order lookup by
   customer, the same with `shipped_at IS NULL`) and the mixed workload (those, the latest orders, a
   status count, a sort that spills to temp files, a write).
3. `advise` (the library call the CLI makes) reads the server as a read-only role; its SQL for review is
   run (CREATE INDEX CONCURRENTLY, DROP INDEX CONCURRENTLY, VACUUM) and its profile edits are written,
   re-rendered and reloaded.
4. After: the same pgbench runs. Prints the figures as JSON (benchmarks/run.py puts them in the README).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators import localservers as ls  # noqa: E402
from generators.advise import Sources, advise  # noqa: E402
from generators.advise.edits import write  # noqa: E402
from generators.advise.report import sql_file  # noqa: E402
from generators.bench import TransactionLog, latency_summary, parse_pgbench_log, parse_pgbench_output  # noqa: E402
from generators.render import render  # noqa: E402
from generators.validation import load_profile  # noqa: E402

LAB = """\
extends: dev
environment: lab
namespace: lab
postgres:
  settings:
    max_wal_size: 32MB   # small on purpose: writes force checkpoints
"""
ROLE = "perfstack_advise"
SCRIPTS = {
    "lookup": "\\set c random(1, 20000)\nSELECT id, total FROM orders WHERE customer_id = :c;\n",
    "open_orders": "\\set c random(1, 20000)\nSELECT id FROM orders WHERE customer_id = :c AND shipped_at IS NULL;\n",
    "recent": "SELECT id, total FROM orders WHERE created_at >= now() - interval '1 hour' ORDER BY created_at LIMIT 20;\n",
    "status": "SELECT count(*) FROM orders WHERE status = 'paid';\n",
    "sort": "SELECT sum(total) FROM (SELECT total FROM orders ORDER BY total * customer_id OFFSET 10) s;\n",
    "write": "\\set c random(1, 50000)\nUPDATE sessions SET seen = now() WHERE id = :c;\n"
             "INSERT INTO events (payload) SELECT repeat(md5(i::text), 8) FROM generate_series(1, 200) i;\n",
}
RUNS = {"slow statements": {"lookup": 1, "open_orders": 1},
        "mixed workload": {"lookup": 20, "open_orders": 10, "recent": 20, "status": 1, "sort": 1, "write": 10}}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pgbench(server: ls.Postgres, folder: Path, weights: dict[str, int], clients: int, duration: int) -> dict[str, Any]:
    logs = Path(tempfile.mkdtemp(prefix="perfstack-advise-bench-"))
    try:
        files = []
        for name, weight in weights.items():
            script = folder / f"{name}.sql"
            script.write_text(SCRIPTS[name])
            files += ["-f", f"{script}@{weight}"]
        command = [str(server.bin_dir / "pgbench"), "-n", *files, "-c", str(clients), "-j", str(min(clients, 2)),
                   "-T", str(duration), "-l", f"--log-prefix={logs / 'tx'}", "-h", "127.0.0.1", "-p", str(server.port),
                   "-U", "postgres", "app"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
        summary = parse_pgbench_output(done.stdout, done.stderr)
        if done.returncode != 0:
            raise RuntimeError(f"pgbench failed: {done.stderr[-2000:]}")
        log = TransactionLog()
        for path in sorted(logs.iterdir()):
            with open(path) as handle:
                parse_pgbench_log(handle, log)
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    latency = latency_summary(log.latencies_ms)
    return {"tps": round(summary.tps, 1), "p50_ms": latency["p50"], "p95_ms": latency["p95"],
            "transactions": summary.processed, "failed": log.failed}


def setup(server: ls.Postgres, rows: int) -> None:
    import psycopg

    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE app")
    with psycopg.connect(server.dsn(dbname="app"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE EXTENSION hypopg")
        conn.execute("CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL, "
                     "created_at timestamptz NOT NULL, total numeric(10,2) NOT NULL, shipped_at timestamptz)")
        conn.execute("INSERT INTO orders (customer_id, status, created_at, total, shipped_at) "
                     "SELECT (random() * 20000)::int, (ARRAY['new', 'paid', 'shipped'])[1 + i % 3], "
                     "now() - i * interval '1 minute', (random() * 500)::numeric(10,2), "
                     f"CASE WHEN i % 10 = 0 THEN NULL ELSE now() END FROM generate_series(1, {int(rows)}) i")
        conn.execute("CREATE INDEX orders_created_at_idx ON orders (created_at)")
        conn.execute("CREATE INDEX orders_created_at_copy ON orders (created_at)")
        conn.execute("CREATE TABLE sessions (id int PRIMARY KEY, token text, seen timestamptz)")
        conn.execute("INSERT INTO sessions SELECT i, md5(i::text), now() FROM generate_series(1, 50000) i")
        conn.execute("CREATE TABLE events (id bigserial PRIMARY KEY, payload text)")
        conn.execute("ANALYZE")
        conn.execute("UPDATE sessions SET seen = now() WHERE id % 5 < 3")
        conn.execute(f"CREATE ROLE {ROLE} LOGIN IN ROLE pg_read_all_stats")
        conn.execute(f"ALTER ROLE {ROLE} SET default_transaction_read_only = on")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {ROLE}")


def measure(server: ls.Postgres, folder: Path, clients: int, duration: int) -> dict[str, Any]:
    out = {}
    for name, weights in RUNS.items():
        say(f"pgbench {name}: {clients} clients, {duration}s")
        out[name] = pgbench(server, folder, weights, clients, duration)
    return out


def run(rows: int = 300_000, duration: int = 10, clients: int = 4) -> dict[str, Any]:
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="perfstack-advise-profiles-"))
    for name in ("base.yaml", "dev.yaml"):
        shutil.copy(ROOT / "profiles" / name, folder / name)
    (folder / "lab.yaml").write_text(LAB)
    local = "shared_preload_libraries = 'pg_stat_statements'\nautovacuum_naptime = '1h'\n"

    def conf() -> str:
        profile, source = load_profile("lab", folder)
        return render(profile, source).files["postgres/postgresql.conf"]

    server = ls.start_postgres(conf(), extra_conf=local)
    try:
        say(f"loading {rows} orders")
        setup(server, rows)
        before = measure(server, folder, clients, duration)
        say("perfstack advise")
        profile, source = load_profile("lab", folder)
        began = time.perf_counter()
        advice = advise(profile, source, Sources(postgres=server.dsn(ROLE, "app")), "lab.yaml")
        advise_s = time.perf_counter() - began
        import psycopg

        statements = [line for line in sql_file(advice).splitlines() if line.strip() and not line.startswith("--")]
        with psycopg.connect(server.dsn(dbname="app"), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)
        write(folder / "lab.yaml", advice.edits)
        ls.configure_postgres(server, conf(), local)
        server.ctl("reload")
        after = measure(server, folder, clients, duration)
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
    return {"rows": rows, "clients": clients, "duration_s": duration, "advise_s": round(advise_s, 2),
            "findings": sorted({f.kind for f in advice.findings}), "sql": statements,
            "edits": {e.key: e.value for e in advice.edits}, "before": before, "after": after,
            "total_s": round(time.perf_counter() - started, 1)}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"| `perfstack advise` on the planted workload ({result['rows']} orders, pgbench {result['clients']} "
             f"clients x {result['duration_s']} s) | TPS before | TPS after | p95 ms before | p95 ms after |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name in result["before"]:
        b, a = result["before"][name], result["after"][name]
        lines.append(f"| {name} | {b['tps']:.0f} | {a['tps']:.0f} | {b['p95_ms']:.1f} | {a['p95_ms']:.1f} |")
    edits = ", ".join(f"{k} = {v}" for k, v in result["edits"].items())
    creates = [s for s in result["sql"] if s.startswith(("CREATE", "DROP"))]
    lines += ["", f"Applied: {' '.join(creates)} Profile edits {edits} (advise itself: {result['advise_s']:.2f} s)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="3 s runs: checks the script works")
    args = parser.parse_args()
    if not 1000 <= args.rows <= 5_000_000 or not 1 <= args.clients <= 64 or not 1 <= args.duration <= 600:
        parser.error("--rows 1000..5000000, --clients 1..64, --duration 1..600")
    result = run(args.rows, 3 if args.quick else args.duration, args.clients)
    print(json.dumps(result, indent=2, sort_keys=True))
    print(markdown(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

