"""What perfstack's settings buy, measured on real servers in one run on one machine.

    python3 benchmarks/run.py [--env prod] [--quick] [--readme]      (or: make bench)

1. PostgreSQL with its defaults vs the rendered settings (ENV re-rendered for this machine's memory and
   CPUs): pgbench read-write (tpcb-like) and read-only (select-only), same scale, clients and duration,
   the two servers taking turns, round after round.
2. 1,000 concurrent clients straight to PostgreSQL vs through the rendered PgBouncer (an asyncio psycopg
   load generator, bounded in time): errors, TPS and p95. Direct connections fail past max_connections.
3. Redis with the rendered redis.conf vs defaults (redis-benchmark), and the eviction policy under memory
   pressure: a fill to twice maxmemory evicts under allkeys-lru and is refused (OOM) under noeviction.
4. perfstack itself: whole-process `perfstack render ENV` (target < 0.5 s, median of several runs), 100
   generated environments rendered in one process (target < 3 s), and peak memory of each.
5. `perfstack advise` on a planted workload (benchmarks/advise_bench.py): p95 and TPS of the slow
   statements and of a mixed workload before and after applying its index SQL and profile edits.

Writes benchmarks/results/latest.json and latest.png; --readme rewrites the README's figures between its
bench markers. Every load targets servers this script starts on 127.0.0.1, bounded in clients and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from generators import localservers as ls
from generators.bench import (
    Target,
    adapt_profile,
    detect_hardware,
    init_pgbench,
    latency_summary,
    local_pgbouncer_version,
    local_postgres_version,
    run_pgbench,
    run_redis_benchmark,
)
from generators.profile import Hardware
from generators.render import render
from generators.validation import load_profile

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RENDER_TARGET_S = 0.5
MANY_TARGET_S = 3.0
APP_USER = "perfstack_ro"  # in localservers' PgBouncer userlist; a plain role, so it cannot use the reserved slots


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- 4. perfstack itself
def bench_render(env: str, runs: int, many: int) -> dict[str, Any]:
    perfstack = shutil.which("perfstack") or "perfstack"
    out = Path(tempfile.mkdtemp(prefix="perfstack-render-"))
    times = []
    try:
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([perfstack, "render", env, "--out", str(out / env)], cwd=ROOT, check=True,
                           capture_output=True, timeout=60)
            times.append(time.perf_counter() - started)
        # peak memory of one whole render process, measured by the process itself
        probe = ("import resource, sys; from generators.cli import main\n"
                 "try:\n    main(['render', sys.argv[1], '--out', sys.argv[2]])\n"
                 "except SystemExit:\n    pass\n"
                 "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
        probe_run = subprocess.run([sys.executable, "-c", probe, env, str(out / "probe")], cwd=ROOT,
                                   capture_output=True, text=True, timeout=60, check=True)
        peak_one = int(probe_run.stderr.strip().splitlines()[-1]) / 1024
        cli = "import sys; from generators.cli import main; main(sys.argv[1:])"
        importtime = subprocess.run([sys.executable, "-X", "importtime", "-c", cli, "render", env,
                                     "--out", str(out / "imports")], cwd=ROOT, capture_output=True, text=True,
                                    timeout=60)
        startup = statistics.median(_wall([sys.executable, "-c", "pass"]) for _ in range(5))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    many_run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "render_many.py"), str(many), "--env", env],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)
    many_result = json.loads(many_run.stdout)
    phases = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "render_many.py"), "--breakdown", "--env", env],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    median = statistics.median(times)
    return {"env": env, "runs_s": [round(t, 3) for t in times], "median_s": round(median, 3),
            "target_s": RENDER_TARGET_S, "met": median < RENDER_TARGET_S, "peak_rss_mib": round(peak_one, 1),
            "python_startup_ms": round(startup * 1000, 1), "phases_ms": json.loads(phases.stdout),
            "imports": top_imports(importtime.stderr),
            "many": {**many_result, "target_s": MANY_TARGET_S, "met": many_result["seconds"] < MANY_TARGET_S}}


def _wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return time.perf_counter() - started


def top_imports(importtime: str, count: int = 8) -> list[dict[str, Any]]:
    """Import time of a `python -X importtime` trace by top-level package (the sum of its modules' own
    times, in ms), heaviest first, after the total."""
    packages: dict[str, int] = {}
    for line in importtime.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            package = match.group(2).split(".")[0]
            packages[package] = packages.get(package, 0) + int(match.group(1))
    rows: list[dict[str, Any]] = [{"package": name, "ms": round(us / 1000, 1)} for name, us in packages.items()]
    total = round(sum(packages.values()) / 1000, 1)
    return [{"package": "(all imports)", "ms": total}, *sorted(rows, key=lambda r: -r["ms"])[:count]]


# ---------------------------------------------------------------- 1. PostgreSQL defaults vs rendered
def bench_postgres(servers: dict[str, ls.Postgres], dbname: str, clients: int, duration: int, rounds: int,
                   jobs: int) -> dict[str, Any]:
    scripts = {"read-write": "tpcb-like", "read-only": "select-only"}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {mode: {name: [] for name in servers} for mode in scripts}
    for round_no in range(rounds):
        for mode, script in scripts.items():
            order = list(servers) if round_no % 2 == 0 else list(reversed(servers))  # neither always goes first
            for name in order:
                say(f"postgres {mode} round {round_no + 1}/{rounds}: {name}")
                result = run_pgbench(Target(servers[name].port, dbname), clients, duration, script, jobs=jobs,
                                     bin_dir=servers[name].bin_dir)
                runs[mode][name].append({"tps": result.tps, "errors": result.errors, **{
                    k: result.latency_ms[k] for k in ("p50", "p95", "p99")}})
    summary: dict[str, Any] = {"clients": clients, "duration_s": duration, "rounds": rounds, "modes": {}}
    for mode in scripts:
        modes: dict[str, Any] = {}
        for name, results in runs[mode].items():
            modes[name] = {"tps": round(statistics.median(r["tps"] for r in results), 1),
                           "p50_ms": round(statistics.median(r["p50"] for r in results), 3),
                           "p95_ms": round(statistics.median(r["p95"] for r in results), 3),
                           "errors": sum(r["errors"] for r in results), "runs": results}
        modes["tps_ratio"] = round(modes["rendered"]["tps"] / modes["defaults"]["tps"], 3) if modes["defaults"]["tps"] else None
        summary["modes"][mode] = modes
    return summary


# ---------------------------------------------------------------- 2. 1,000 clients direct vs pooled
async def _client_load(dsn: str, clients: int, duration: float, accounts: int) -> dict[str, Any]:
    import psycopg

    latencies: list[float] = []
    errors: dict[str, int] = {}

    def error(exc: Exception) -> None:
        text = str(exc).strip()
        kind = (text.split("FATAL:")[-1].strip() if "FATAL:" in text else text.splitlines()[-1] if text
                else type(exc).__name__)[:80]
        errors[kind] = errors.get(kind, 0) + 1

    async def connect() -> Any:
        try:
            return await psycopg.AsyncConnection.connect(dsn, autocommit=True, prepare_threshold=None)
        except Exception as exc:  # refused (too many clients) or timed out: an error the app would see
            error(exc)
            return None

    connections = await asyncio.gather(*(connect() for _ in range(clients)))
    connected = [c for c in connections if c is not None]
    started = time.perf_counter()
    deadline = started + duration

    async def work(conn: Any) -> None:
        rng = random.Random(id(conn))
        while time.perf_counter() < deadline:
            begun = time.perf_counter()
            try:
                cursor = await conn.execute("SELECT abalance FROM pgbench_accounts WHERE aid = %s",
                                            (rng.randint(1, accounts),))
                await cursor.fetchone()
            except Exception as exc:
                error(exc)
                return
            latencies.append((time.perf_counter() - begun) * 1000)

    await asyncio.gather(*(work(c) for c in connected))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(c.close() for c in connected), return_exceptions=True)
    return {"clients": clients, "connected": len(connected), "queries": len(latencies),
            "tps": round(len(latencies) / elapsed, 1), "errors": sum(errors.values()), "error_kinds": errors,
            "latency_ms": latency_summary(latencies)}


def bench_thousand(postgres: ls.Postgres, pgbouncer: ls.PgBouncer, dbname: str, clients: int, duration: int,
                   accounts: int, max_connections: int) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < clients + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, clients + 1024), hard))
    results = {}
    for name, port in (("direct", postgres.port), ("pgbouncer", pgbouncer.port)):
        say(f"{clients} clients {name} for {duration}s")
        dsn = f"host=127.0.0.1 port={port} user={APP_USER} dbname={dbname} connect_timeout=10"
        results[name] = asyncio.run(asyncio.wait_for(_client_load(dsn, clients, duration, accounts), duration + 120))
    return {"clients": clients, "duration_s": duration, "max_connections": max_connections, **results}


# ---------------------------------------------------------------- 3. Redis
def bench_redis(rendered_conf: str, requests: int, clients: int, rounds: int) -> dict[str, Any]:
    servers = {"defaults": ls.start_redis(""), "rendered": ls.start_redis(rendered_conf)}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    try:
        for round_no in range(rounds):
            order = list(servers) if round_no % 2 == 0 else list(reversed(servers))
            for name in order:
                say(f"redis-benchmark round {round_no + 1}/{rounds}: {name}")
                runs[name].append(run_redis_benchmark(servers[name].port, clients, requests, "set,get,lpush,lpop"))
    finally:
        for server in servers.values():
            server.cleanup()
    summary: dict[str, Any] = {"clients": clients, "requests": requests, "rounds": rounds}
    for name, results in runs.items():
        summary[name] = {test: {"rps": round(statistics.median(r[test]["rps"] for r in results)),
                                "p95_ms": round(statistics.median(r[test]["p95"] for r in results), 3),
                                "p99_ms": round(statistics.median(r[test]["p99"] for r in results), 3)}
                         for test in results[0]}
    return summary


def bench_eviction(profile: Any, memory: int, fill_factor: float = 2.0, value_size: int = 1024) -> dict[str, Any]:
    """Render a cache (allkeys-lru) and a queue (noeviction, aof) Redis on hardware.redis.memory = memory,
    write fill_factor x maxmemory of values into each, and count refusals and evictions."""
    import redis as redis_py

    variants = {"allkeys-lru": {"role": "cache", "maxmemory_policy": "allkeys-lru", "persistence": "none"},
                "noeviction": {"role": "queue", "maxmemory_policy": "noeviction", "persistence": "aof",
                               "maxmemory": 0.5}}  # aof: half the memory stays free for the rewrite fork
    results = {}
    for name, update in variants.items():
        hardware = Hardware.model_validate({**profile.hardware.model_dump(),
                                            "redis": {**profile.hardware.redis.model_dump(), "memory": memory}})
        variant = profile.model_copy(update={"hardware": hardware, "redis": profile.redis.model_copy(update=update)})
        conf = render(variant).files["redis/redis.conf"]
        maxmemory = int(re.search(r"^maxmemory (\d+)mb", conf, re.MULTILINE).group(1)) * 2**20  # type: ignore[union-attr]
        server = ls.start_redis(conf)
        try:
            say(f"redis eviction: {name}, maxmemory {maxmemory // 2**20}MiB, writing {fill_factor:g}x")
            client = redis_py.Redis(port=server.port)
            value = b"x" * value_size
            keys = int(maxmemory * fill_factor / value_size)
            written = refused = 0
            batch = 500
            for start in range(0, keys, batch):
                pipe = client.pipeline(transaction=False)
                for key in range(start, min(start + batch, keys)):
                    pipe.set(f"key:{key}", value)
                for reply in pipe.execute(raise_on_error=False):
                    if isinstance(reply, Exception):
                        refused += 1
                    else:
                        written += 1
            stats, memory_info = client.info("stats"), client.info("memory")
            results[name] = {"maxmemory_mib": maxmemory // 2**20, "writes": keys, "written": written,
                             "errors": refused, "evicted_keys": int(stats["evicted_keys"]),
                             "keys_kept": int(client.dbsize()),
                             "used_memory_mib": round(int(memory_info["used_memory"]) / 2**20, 1)}
            client.close()
        finally:
            server.cleanup()
    return results


# ---------------------------------------------------------------- the run
def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    started = time.perf_counter()
    hardware = detect_hardware()
    bin_dir = ls.pg_bin_dir()
    version = local_postgres_version(bin_dir)
    profile, _ = load_profile(args.env, ROOT / "profiles")
    local, adjusted = adapt_profile(profile, hardware, version, local_pgbouncer_version())
    bundle = render(local)
    dbname = local.pgbouncer.databases[0]
    scale = 2 if quick else args.scale
    clients = min(16, local.autoscaling.api.max_replicas * local.app.db_pool.size)
    results: dict[str, Any] = {
        "command": "python3 benchmarks/run.py" + (f" --env {args.env}" if args.env != "prod" else "")
                   + (" --quick" if quick else ""),
        "machine": {"cpus": hardware.cpus, "memory_gib": round(hardware.memory / 2**30, 1),
                    "python": platform.python_version(), "postgres": version, "kernel": platform.release()},
        "env": args.env, "adjusted": adjusted,
        "rendered": {k.key: k.text for k in bundle.settings if k.target == "postgres" and k.key in (
            "shared_buffers", "effective_cache_size", "work_mem", "max_wal_size", "max_connections", "random_page_cost")},
    }

    say("perfstack render speed")
    results["render"] = bench_render(args.env, runs=3 if quick else 7, many=20 if quick else 100)

    # PostgreSQL: defaults and rendered side by side; the rendered one also serves the 1,000-client test.
    servers: dict[str, Any] = {}
    try:
        servers["defaults"] = ls.start_postgres("", extra_conf=f"max_connections = {max(100, clients + 10)}\n")
        servers["rendered"] = ls.start_postgres(bundle.files["postgres/postgresql.conf"])
        for name in ("defaults", "rendered"):
            say(f"pgbench -i -s {scale} on {name}")
            with_db = servers[name]
            _create_db_only(with_db, dbname)
            init_pgbench(Target(with_db.port, dbname), scale, bin_dir)
            _grant_app_user(with_db, dbname)
        duration = 3 if quick else args.duration
        results["postgres"] = bench_postgres({"defaults": servers["defaults"], "rendered": servers["rendered"]},
                                             dbname, clients, duration, 1 if quick else args.rounds, hardware.cpus)
        results["postgres"]["scale"] = scale
        servers["defaults"].cleanup()
        del servers["defaults"]
        servers["pgbouncer"] = ls.start_pgbouncer(bundle.files["pgbouncer/pgbouncer.ini"], servers["rendered"])
        results["connections"] = bench_thousand(servers["rendered"], servers["pgbouncer"], dbname, args.clients,
                                                3 if quick else args.load_duration, scale * 100_000,
                                                local.postgres.max_connections or 0)
    finally:
        for server in reversed(list(servers.values())):
            server.cleanup()

    results["redis"] = bench_redis(bundle.files["redis/redis.conf"], 20_000 if quick else 100_000, 50,
                                   1 if quick else 3)
    results["eviction"] = bench_eviction(local, 32 * 2**20 if quick else 64 * 2**20)
    say("perfstack advise: the planted workload before and after its advice")
    import advise_bench  # benchmarks/advise_bench.py, beside this script

    results["advise"] = advise_bench.run(duration=3 if quick else 10)
    say("mutation check of the rendered alert rules (scripts/mutation_check.py)")
    results["mutation"] = mutation_check(["dev", "prod"])
    results["total_s"] = round(time.perf_counter() - started, 1)
    return results


def _create_db_only(server: ls.Postgres, dbname: str) -> None:
    import psycopg

    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
        conn.execute(f'CREATE ROLE "{APP_USER}" LOGIN')


def _grant_app_user(server: ls.Postgres, dbname: str) -> None:
    import psycopg

    with psycopg.connect(server.dsn(dbname=dbname), autocommit=True) as conn:
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{APP_USER}"')


# ---------------------------------------------------------------- chart and README figures
def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    colors = {"defaults": "#9e9e9e", "rendered": "#1f77b4", "direct": "#d62728", "pgbouncer": "#2ca02c"}
    pg = results["postgres"]["modes"]
    modes = list(pg)
    for ax, metric, title in ((axes[0][0], "tps", "PostgreSQL TPS (higher is better)"),
                              (axes[0][1], "p95_ms", "PostgreSQL p95 latency, ms (lower is better)")):
        for offset, name in ((-0.2, "defaults"), (0.2, "rendered")):
            values = [pg[m][name][metric] for m in modes]
            bars = ax.bar([i + offset for i in range(len(modes))], values, 0.4, label=name, color=colors[name])
            ax.bar_label(bars, fmt="%.0f" if metric == "tps" else "%.1f", fontsize=8)
        ax.set_xticks(range(len(modes)), [f"{m}\n(x{pg[m]['tps_ratio']})" if metric == "tps" else m for m in modes])
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    conn = results["connections"]
    ax = axes[0][2]
    names = ["direct", "pgbouncer"]
    bars = ax.bar(names, [conn[n]["tps"] for n in names], color=[colors[n] for n in names])
    ax.bar_label(bars, labels=[f"{conn[n]['tps']:.0f} qps\n{conn[n]['errors']} errors\np95 {conn[n]['latency_ms']['p95']:.0f} ms"
                               for n in names], fontsize=8)
    ax.set_title(f"{conn['clients']} clients: direct vs PgBouncer (max_connections {conn['max_connections']})", fontsize=10)
    ax.margins(y=0.35)
    red = results["redis"]
    tests = list(red["rendered"])
    ax = axes[1][0]
    for offset, name in ((-0.2, "defaults"), (0.2, "rendered")):
        ax.bar([i + offset for i in range(len(tests))], [red[name][t]["rps"] / 1000 for t in tests], 0.4, label=name,
               color=colors[name])
    ax.set_xticks(range(len(tests)), tests)
    ax.set_title("Redis kops/s (redis-benchmark)", fontsize=10)
    ax.legend(fontsize=8)
    ev = results["eviction"]
    ax = axes[1][1]
    policies = list(ev)
    for offset, key, color in ((-0.2, "evicted_keys", "#ff7f0e"), (0.2, "errors", "#d62728")):
        bars = ax.bar([i + offset for i in range(len(policies))], [ev[p][key] for p in policies], 0.4, label=key, color=color)
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(range(len(policies)), [f"{p}\n(maxmemory {ev[p]['maxmemory_mib']} MiB)" for p in policies])
    ax.set_title("Redis filled to 2x maxmemory", fontsize=10)
    ax.legend(fontsize=8)
    ren = results["render"]
    ax = axes[1][2]
    labels = [f"render {ren['env']}\n(whole process)", f"{ren['many']['environments']} envs\n(one process)"]
    values = [ren["median_s"], ren["many"]["seconds"]]
    targets = [ren["target_s"], ren["many"]["target_s"]]
    bars = ax.bar(labels, values, color=["#1f77b4" if v < t else "#d62728" for v, t in zip(values, targets, strict=True)])
    ax.bar_label(bars, fmt="%.2f s", fontsize=8)
    ax.scatter(labels, targets, marker="_", s=3000, color="black", label="target", zorder=3)
    ax.set_title("perfstack render time, s", fontsize=10)
    ax.legend(fontsize=8)
    machine = results["machine"]
    fig.suptitle(f"perfstack benchmarks: {results['env']} profile on {machine['cpus']} CPUs, {machine['memory_gib']} GiB, "
                 f"PostgreSQL {machine['postgres']}", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def mutation_check(envs: list[str]) -> list[dict[str, Any]]:
    """The share of mutated alert rules the generated promtool proofs catch, per environment."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "mutation_check.py"), *envs, "--format", "json"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    found: list[dict[str, Any]] = json.loads(done.stdout)
    for r in found:
        kinds = ", ".join(f"{k} {v['caught']}/{v['mutants']}" for k, v in r["by_kind"].items())
        print(f"mutation check {r['environment']}: {r['caught']} of {r['mutants']} mutants caught "
              f"({r['share']:.1%}; {kinds}; {r.get('equivalent', 0)} equivalent, not counted)", flush=True)
    return found


def figures_markdown(results: dict[str, Any]) -> str:
    """The README's figures, written from a results file."""
    m = results["machine"]
    pg = results["postgres"]
    conn = results["connections"]
    red = results["redis"]
    ev = results["eviction"]
    ren = results["render"]
    lines = [f"Latest run: `{results['command']}` on {m['cpus']} CPUs / {m['memory_gib']} GiB, PostgreSQL "
             f"{m['postgres']}, profile `{results['env']}` re-rendered for this machine "
             f"({', '.join(f'{k} = {v}' for k, v in results['rendered'].items())}); {results['total_s']:.0f} s in all. "
             "Raw numbers: `benchmarks/results/latest.json`; chart: `benchmarks/results/latest.png`.", "",
             f"| PostgreSQL, pgbench scale {pg['scale']}, {pg['clients']} clients, {pg['rounds']} x {pg['duration_s']} s "
             "alternating | defaults TPS | rendered TPS | ratio | defaults p95 ms | rendered p95 ms |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for mode, values in pg["modes"].items():
        d, r = values["defaults"], values["rendered"]
        lines.append(f"| {mode} | {d['tps']:.0f} | {r['tps']:.0f} | {values['tps_ratio']:.2f} | {d['p95_ms']:.1f} | "
                     f"{r['p95_ms']:.1f} |")
    lines += ["", f"| {conn['clients']} concurrent clients, {conn['duration_s']} s (max_connections "
                  f"{conn['max_connections']}) | connected | errors | queries/s | p50 ms | p95 ms |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name in ("direct", "pgbouncer"):
        c = conn[name]
        lines.append(f"| {'straight to PostgreSQL' if name == 'direct' else 'through the rendered PgBouncer'} | "
                     f"{c['connected']} | {c['errors']} | {c['tps']:.0f} | {c['latency_ms']['p50']:.1f} | "
                     f"{c['latency_ms']['p95']:.1f} |")
    lines += ["", f"| Redis, redis-benchmark -c {red['clients']} -n {red['requests']} | defaults ops/s | rendered ops/s "
                  "| defaults p99 ms | rendered p99 ms |", "| --- | ---: | ---: | ---: | ---: |"]
    for test in red["rendered"]:
        d, r = red["defaults"][test], red["rendered"][test]
        lines.append(f"| {test} | {d['rps']} | {r['rps']} | {d['p99_ms']} | {r['p99_ms']} |")
    lines += ["", "| Redis filled to 2x maxmemory | maxmemory | errors | evicted keys | keys kept |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for policy, e in ev.items():
        lines.append(f"| {policy} | {e['maxmemory_mib']} MiB | {e['errors']} | {e['evicted_keys']} | {e['keys_kept']} |")
    many = ren["many"]
    lines += ["", "| perfstack | measured | target | peak memory |", "| --- | ---: | ---: | ---: |",
              f"| `perfstack render {ren['env']}`, whole process, median of {len(ren['runs_s'])} | {ren['median_s']:.2f} s | "
              f"< {ren['target_s']} s {'(met)' if ren['met'] else '(missed)'} | {ren['peak_rss_mib']:.0f} MiB |",
              f"| {many['environments']} generated environments, one process | {many['seconds']:.2f} s | "
              f"< {many['target_s']} s {'(met)' if many['met'] else '(missed)'} | {many['peak_rss_mib']:.0f} MiB |"]
    phases = ren["phases_ms"]
    per_target = sorted(((k.removeprefix("render."), v) for k, v in phases.items() if k.startswith("render.")),
                        key=lambda kv: -kv[1])[:3]
    imports = ", ".join(f"{r['package']} {r['ms']:.0f}" for r in ren["imports"][1:5])
    lines += ["", f"Where one `perfstack render {ren['env']}` goes (ms): Python start-up {ren['python_startup_ms']:.0f}, "
                  f"imports {phases['imports']:.0f} (by package: {imports}), loading the profile "
                  f"{phases['load_profile']:.0f}, rendering {phases['render']:.0f} (of which "
                  + ", ".join(f"{k} {v:.0f}" for k, v in per_target) + f"), writing {phases['write']:.0f}."]
    if "advise" in results:
        import advise_bench

        lines += ["", advise_bench.markdown(results["advise"]).rstrip("\n")]
    if "mutation" in results:
        lines += ["", "| mutation check (scripts/mutation_check.py) | mutants | caught | share |",
                  "| --- | ---: | ---: | ---: |"]
        lines += [f"| {r['environment']} | {r['mutants']} | {r['caught']} | {r['share']:.1%} |"
                  for r in results["mutation"]]
    return "\n".join(lines) + "\n"


START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def update_readme(markdown: str, readme: Path = ROOT / "README.md") -> bool:
    """Replace the figures between the README's bench markers (re-read right before writing)."""
    text = readme.read_text()
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{markdown}{END}{tail}")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="prod", help="profile to benchmark (default: prod)")
    parser.add_argument("--scale", type=int, default=20, help="pgbench scale (default: 20, about 300 MB)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per pgbench run (default: 10)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per configuration (default: 5)")
    parser.add_argument("--clients", type=int, default=1000, help="clients of the connection test (default: 1000)")
    parser.add_argument("--load-duration", type=int, default=15, help="seconds of the connection test (default: 15)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script works, figures mean little")
    parser.add_argument("--readme", action="store_true", help="write the figures into README.md's bench section")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.clients > 5000:
        parser.error("--clients is bounded at 5000")
    results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    chart(results, args.out / "latest.png")
    markdown = figures_markdown(results)
    print(markdown)
    if args.readme and not update_readme(markdown):
        say(f"README.md has no {START} ... {END} section; figures not written")
    say(f"wrote {args.out / 'latest.json'} and {args.out / 'latest.png'} in {results['total_s']:.0f}s")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
