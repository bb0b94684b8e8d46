"""`perfstack bench`: prove a profile under load on real, local servers.

Starts PostgreSQL, PgBouncer and Redis on loopback from the profile's rendered files (optionally
re-rendered for this machine's memory and CPUs), initializes a pgbench data set, runs pgbench through
PgBouncer at the concurrency the profile implies (autoscaling.api.max_replicas x app.db_pool.size,
capped by the caller), and reports TPS, latency percentiles and errors against the profile's SLOs.

This module never imports click: the CLI passes a `progress` callback and formats the report.
Everything here targets only servers it starts itself on 127.0.0.1, bounded in clients and time.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import localservers, paths, serverversions
from .errors import PerfstackError
from .profile import Hardware, Profile

Progress = Callable[[str], None]
BUILTIN_SCRIPTS = ("tpcb-like", "simple-update", "select-only")
# pgbench waits for transactions in flight after -T ends; allow this much before it is killed.
PGBENCH_GRACE_S = 60


class BenchError(PerfstackError):
    """A benchmark that could not run (a server did not start, a tool is missing or failed)."""


# ---------------------------------------------------------------- hardware of this machine
@dataclass(frozen=True)
class LocalHardware:
    memory: int  # bytes usable by this process: physical memory, or the cgroup limit when lower
    cpus: int  # CPUs this process may run on: the affinity mask, or the cgroup quota when lower


def meminfo_total(text: str) -> int | None:
    """MemTotal of a /proc/meminfo text, in bytes."""
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def meminfo_available(text: str) -> int | None:
    """MemAvailable of a /proc/meminfo text, in bytes: what can be allocated now without swapping."""
    match = re.search(r"^MemAvailable:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def cgroup_memory_limit(text: str) -> int | None:
    """A cgroup v2 memory.max (or v1 limit_in_bytes) value in bytes; None when unlimited."""
    value = text.strip()
    if not value.isdigit():
        return None  # "max"
    limit = int(value)
    return limit if limit < 2**60 else None  # v1 writes a huge number for "unlimited"


def cgroup_cpu_limit(text: str) -> int | None:
    """A cgroup v2 cpu.max ("QUOTA PERIOD" or "max PERIOD") as whole CPUs, rounded up; None when unlimited."""
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit() or not parts[1].isdigit() or int(parts[1]) == 0:
        return None
    return max(1, math.ceil(int(parts[0]) / int(parts[1])))


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def detect_hardware() -> LocalHardware:
    """Memory and CPUs of this machine, as PostgreSQL and Redis started here would see them."""
    memory = None
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        text = _read("/proc/meminfo")
        memory = meminfo_total(text) if text else None
    if not memory:
        raise BenchError("cannot detect this machine's memory (os.sysconf and /proc/meminfo failed)")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        text = _read(limit_file)
        limit = cgroup_memory_limit(text) if text else None
        if limit:
            memory = min(memory, limit)
    # The servers started here share the machine with what already runs on it: size them for the memory that
    # is available now, or PostgreSQL's shared memory (a quarter of the total and more) may not be mapped at all.
    text = _read("/proc/meminfo")
    available = meminfo_available(text) if text else None
    if available:
        memory = min(memory, available)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    text = _read("/sys/fs/cgroup/cpu.max")
    quota = cgroup_cpu_limit(text) if text else None
    if quota:
        cpus = min(cpus, quota)
    return LocalHardware(memory=int(memory), cpus=max(1, int(cpus)))


def local_postgres_version(bin_dir: Path) -> int:
    """The major version of the PostgreSQL binaries in bin_dir (`postgres --version`)."""
    result = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"(\d+)(?:\.\d+)?", result.stdout)
    if result.returncode != 0 or not match:
        raise BenchError(f"cannot read the PostgreSQL version from {bin_dir / 'postgres'}: {result.stderr.strip()}")
    return int(match.group(1))


def local_pgbouncer_version() -> str | None:
    try:
        return localservers.pgbouncer_version()
    except (localservers.ServerError, OSError):
        return None


def adapt_profile(profile: Profile, hardware: LocalHardware | None, postgres_version: int | None,
                  pgbouncer_version: str | None = None) -> tuple[Profile, dict[str, Any]]:
    """The profile to benchmark here: hardware.postgres (memory, cpus) and hardware.redis.memory from
    this machine when given, and postgres.version and pgbouncer.version lowered to the local servers' so that
    every rendered setting is one they accept. Returns the profile and what was changed ({key: [from, to]})."""
    changes: dict[str, Any] = {}
    update: dict[str, Any] = {}
    if hardware is not None:
        data = profile.hardware.model_dump()
        for key, value in (("postgres.memory", hardware.memory), ("postgres.cpus", hardware.cpus),
                           ("redis.memory", hardware.memory)):
            component, name = key.split(".")
            if data[component][name] != value:
                changes[f"hardware.{key}"] = [data[component][name], value]
            data[component][name] = value
        update["hardware"] = Hardware.model_validate(data)  # sizes are bytes: validated as given
    if postgres_version is not None and profile.postgres.version > postgres_version:
        changes["postgres.version"] = [profile.postgres.version, postgres_version]
        update["postgres"] = profile.postgres.model_copy(update={"version": postgres_version})
    if (pgbouncer_version is not None and pgbouncer_version in serverversions.PGBOUNCER_VERSIONS
            and serverversions.at_least(profile.pgbouncer.version, pgbouncer_version)
            and profile.pgbouncer.version != pgbouncer_version):
        changes["pgbouncer.version"] = [profile.pgbouncer.version, pgbouncer_version]
        update["pgbouncer"] = profile.pgbouncer.model_copy(update={"version": pgbouncer_version})
    if profile.kubernetes.postgres == "cloudnativepg":
        # The PostgreSQL started here is a server of its own, not a CloudNativePG pod: the rules for a
        # self-managed server apply (huge_pages try, not the pod's hugepages-2Mi request with huge_pages on,
        # which this host, without vm.nr_hugepages, could never map).
        changes["kubernetes.postgres"] = ["cloudnativepg", "external"]
        update["kubernetes"] = profile.kubernetes.model_copy(update={"postgres": "external"})
        if profile.pgbouncer.server_host is None:  # an external server needs its host: it is this machine
            changes["pgbouncer.server_host"] = [None, "127.0.0.1"]
            pgbouncer = update.get("pgbouncer", profile.pgbouncer)
            update["pgbouncer"] = pgbouncer.model_copy(update={"server_host": "127.0.0.1"})
    return (profile.model_copy(update=update) if update else profile), changes


def implied_clients(profile: Profile) -> int:
    """Concurrent database clients the profile implies: every API pod at max_replicas holding its whole pool."""
    return profile.autoscaling.api.max_replicas * profile.app.db_pool.size


# ---------------------------------------------------------------- percentiles and reports
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of sorted values, interpolated linearly between closest ranks
    (numpy's default): p50 of [1, 2, 3, 4] is 2.5."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    rank = (len(values) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def latency_summary(latencies_ms: Iterable[float]) -> dict[str, float | int]:
    """count, mean, p50, p95, p99 and max of latencies in milliseconds (rounded to microseconds)."""
    values = sorted(latencies_ms)
    if not values:
        return {"count": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    return {"count": len(values), "mean": round(sum(values) / len(values), 3),
            "p50": round(percentile(values, 50), 3), "p95": round(percentile(values, 95), 3),
            "p99": round(percentile(values, 99), 3), "max": round(values[-1], 3)}


@dataclass
class TransactionLog:
    latencies_ms: list[float] = field(default_factory=list)
    failed: int = 0
    skipped: int = 0


def parse_pgbench_log(lines: Iterable[str], log: TransactionLog | None = None) -> TransactionLog:
    """pgbench --log lines: `client_id transaction_no time script_no time_epoch time_us [...]`, where
    time is the transaction's latency in microseconds, or `failed` / `skipped`."""
    log = log or TransactionLog()
    for line in lines:
        fields = line.split()
        if len(fields) < 6:
            continue
        value = fields[2]
        if value == "failed":
            log.failed += 1
        elif value == "skipped":
            log.skipped += 1
        else:
            log.latencies_ms.append(int(value) / 1000)
    return log


@dataclass
class PgbenchSummary:
    processed: int = 0
    failed: int = 0
    aborted_clients: int = 0
    tps: float = 0.0


def parse_pgbench_output(stdout: str, stderr: str) -> PgbenchSummary:
    """The end-of-run summary pgbench prints (stdout) and the clients it aborted (stderr)."""
    summary = PgbenchSummary()
    match = re.search(r"number of transactions actually processed: (\d+)", stdout)
    summary.processed = int(match.group(1)) if match else 0
    match = re.search(r"number of failed transactions: (\d+)", stdout)
    summary.failed = int(match.group(1)) if match else 0
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", stdout)
    summary.tps = float(match.group(1)) if match else 0.0
    summary.aborted_clients = len(set(re.findall(r"client (\d+) aborted", stderr)))
    return summary


# ---------------------------------------------------------------- running pgbench and redis-benchmark
@dataclass(frozen=True)
class Target:
    """Where a load tool connects: a loopback host and port, a user and a database."""

    port: int
    dbname: str = "app"
    user: str = "postgres"
    host: str = "127.0.0.1"

    def args(self) -> list[str]:
        return ["-h", self.host, "-p", str(self.port), "-U", self.user]


def _tool(name: str, bin_dir: Path | None) -> str:
    if bin_dir and (bin_dir / name).exists():
        return str(bin_dir / name)
    found = shutil.which(name)
    if not found:
        raise BenchError(f"{name} not found (apt-get install postgresql redis-tools)")
    return found


def _stream(command: list[str], timeout: float, progress: Progress | None, prefix: str,
            env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run a command, passing each stderr line to progress as it comes; kill it after timeout seconds."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    stdout_parts: list[str] = []
    reader = threading.Thread(target=lambda: stdout_parts.append(process.stdout.read() if process.stdout else ""))
    reader.start()
    err_lines: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            err_lines.append(line)
            if progress and line.strip() and not line.startswith("NOTICE:"):
                progress(f"{prefix}{line.strip()}")
        process.wait()
    finally:
        timer.cancel()
        reader.join()
    if process.returncode == -9:
        raise BenchError(f"{Path(command[0]).name} ran past {timeout:.0f}s and was stopped")
    return process.returncode, "".join(stdout_parts), "".join(err_lines)


def init_pgbench(target: Target, scale: int, bin_dir: Path | None = None, progress: Progress | None = None) -> float:
    """pgbench -i at the given scale (100,000 pgbench_accounts rows per unit); returns seconds taken."""
    started = time.monotonic()
    code, out, err = _stream([_tool("pgbench", bin_dir), "-i", "-s", str(scale), "-q", *target.args(), target.dbname],
                             timeout=120 + 30 * scale, progress=progress, prefix="init: ")
    if code != 0:
        raise BenchError(f"pgbench -i failed (exit {code}):\n{err[-2000:]}")
    return time.monotonic() - started


@dataclass
class LoadResult:
    clients: int
    duration_s: int
    script: str
    transactions: int
    tps: float
    errors: int
    failed_transactions: int
    aborted_clients: int
    latency_ms: dict[str, float | int]
    exit_code: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_pgbench(target: Target, clients: int, duration: int, script: str = "tpcb-like", jobs: int | None = None,
                bin_dir: Path | None = None, progress: Progress | None = None, label: str = "") -> LoadResult:
    """pgbench -T duration -c clients with per-transaction logs; percentiles come from every transaction."""
    if script not in BUILTIN_SCRIPTS:
        raise BenchError(f"unknown pgbench script {script!r}; expected one of {', '.join(BUILTIN_SCRIPTS)}")
    jobs = max(1, min(jobs or os.cpu_count() or 1, clients))
    log_dir = Path(tempfile.mkdtemp(prefix="perfstack-pgbench-"))
    try:
        command = [_tool("pgbench", bin_dir), "-n", "-b", script, "-c", str(clients), "-j", str(jobs), "-T", str(duration),
                   "-P", "1", "-l", f"--log-prefix={log_dir / 'tx'}", *target.args(), target.dbname]
        code, out, err = _stream(command, timeout=duration + PGBENCH_GRACE_S, progress=progress,
                                 prefix=f"{label}: " if label else "")
        summary = parse_pgbench_output(out, err)
        if code not in (0, 2) or (code == 2 and not summary.aborted_clients and not summary.processed):
            raise BenchError(f"pgbench failed (exit {code}):\n{err[-2000:]}")
        log = TransactionLog()
        for path in sorted(log_dir.iterdir()):
            with open(path) as handle:
                parse_pgbench_log(handle, log)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    failed = max(summary.failed, log.failed)
    return LoadResult(clients=clients, duration_s=duration, script=script, transactions=summary.processed,
                      tps=round(summary.tps, 1), errors=failed + summary.aborted_clients, failed_transactions=failed,
                      aborted_clients=summary.aborted_clients, latency_ms=latency_summary(log.latencies_ms),
                      exit_code=code)


def parse_redis_benchmark_csv(text: str) -> dict[str, dict[str, float]]:
    """redis-benchmark --csv: one row per test with rps and latency percentiles (ms)."""
    rows = csv.DictReader(io.StringIO(text))
    results: dict[str, dict[str, float]] = {}
    for row in rows:
        name = (row.get("test") or "").split()[0].lower()
        if not name:
            continue
        results[name] = {"rps": float(row["rps"]), "p50": float(row["p50_latency_ms"]),
                         "p95": float(row["p95_latency_ms"]), "p99": float(row["p99_latency_ms"]),
                         "max": float(row["max_latency_ms"])}
    return results


def run_redis_benchmark(port: int, clients: int, requests: int, tests: str = "set,get",
                        pipeline: int = 1, timeout: float = 300) -> dict[str, dict[str, float]]:
    """redis-benchmark against a loopback Redis; {test: {rps, p50, p95, p99, max}}."""
    command = [_tool("redis-benchmark", None), "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
               "-n", str(requests), "-t", tests, "-P", str(pipeline), "--csv"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"redis-benchmark ran past {timeout:.0f}s and was stopped") from None
    if result.returncode != 0:
        raise BenchError(f"redis-benchmark failed (exit {result.returncode}): {result.stderr[-2000:]}")
    return parse_redis_benchmark_csv(result.stdout)


# ---------------------------------------------------------------- the bench command
@dataclass
class BenchOptions:
    scale: int = 10
    duration: int = 30
    clients: int | None = None  # cap on the implied concurrency
    local_hardware: bool = False
    script: str = "tpcb-like"
    redis_requests: int | None = None  # default: 5,000 per second of --duration, at most 200,000


@dataclass
class BenchReport:
    environment: str
    hardware: dict[str, Any]
    adjusted: dict[str, Any]
    postgres_version: int
    scale: int
    implied_clients: int
    pgbench: LoadResult
    redis: dict[str, dict[str, float]]
    slo: dict[str, Any]
    init_s: float

    @property
    def slo_met(self) -> bool:
        return bool(self.slo["met"])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pgbench"] = self.pgbench.to_dict()
        return data


def check_slo(profile: Profile, result: LoadResult) -> dict[str, Any]:
    """p95 transaction latency against slo.db_query_p95, and the error share against slo.error_rate.
    A pgbench transaction runs several statements, so a p95 that meets the query SLO is a conservative pass."""
    p95 = float(result.latency_ms["p95"])
    attempted = result.transactions + result.failed_transactions
    error_rate = result.errors / attempted if attempted else (1.0 if result.errors else 0.0)
    db_ok = result.transactions > 0 and p95 <= profile.slo.db_query_p95
    errors_ok = error_rate <= profile.slo.error_rate
    return {"db_query_p95_ms": profile.slo.db_query_p95, "p95_ms": p95, "db_query_p95_met": db_ok,
            "error_rate": round(error_rate, 6), "error_rate_max": profile.slo.error_rate, "error_rate_met": errors_ok,
            "met": db_ok and errors_ok}


def run_bench(profile: Profile, options: BenchOptions, progress: Progress | None = None) -> BenchReport:
    """Start the servers from the rendered files, load pgbench data, run the load, stop everything."""
    from . import localservers
    from .render import render

    say = progress or (lambda _message: None)
    if options.script not in BUILTIN_SCRIPTS:
        raise BenchError(f"unknown pgbench script {options.script!r}; expected one of {', '.join(BUILTIN_SCRIPTS)}")
    try:
        bin_dir = localservers.pg_bin_dir()
    except localservers.ServerError as exc:
        raise BenchError(str(exc)) from None
    version = local_postgres_version(bin_dir)
    hardware = detect_hardware() if options.local_hardware else None
    profile, adjusted = adapt_profile(profile, hardware, version, local_pgbouncer_version())
    bundle = render(profile)
    implied = implied_clients(profile)
    clients = min(implied, options.clients) if options.clients else implied
    servers: list[Any] = []
    try:
        say("starting PostgreSQL, PgBouncer and Redis from the rendered files")
        postgres = localservers.start_postgres(bundle.files[paths.POSTGRESQL_CONF])
        servers.append(postgres)
        _create_databases(postgres, profile.pgbouncer.databases)
        pgbouncer = localservers.start_pgbouncer(bundle.files[paths.PGBOUNCER_INI], postgres)
        servers.append(pgbouncer)
        redis = localservers.start_redis(bundle.files[paths.REDIS_CONF])
        servers.append(redis)
        dbname = profile.pgbouncer.databases[0]
        say(f"pgbench -i -s {options.scale} ({options.scale * 100_000:,} accounts)")
        init_s = init_pgbench(Target(postgres.port, dbname), options.scale, bin_dir, say)
        say(f"{options.script}: {clients} clients through PgBouncer for {options.duration}s")
        result = run_pgbench(Target(pgbouncer.port, dbname), clients, options.duration, options.script,
                             jobs=hardware.cpus if hardware else None, bin_dir=bin_dir, progress=say,
                             label=options.script)
        requests = options.redis_requests or min(200_000, 5_000 * options.duration)
        say(f"redis-benchmark: {min(clients, 1000)} clients, {requests:,} requests per test")
        redis_result = run_redis_benchmark(redis.port, min(clients, 1000), requests)
    except localservers.ServerError as exc:
        raise BenchError(str(exc)) from None
    finally:
        for server in reversed(servers):
            server.cleanup()
    return BenchReport(environment=profile.environment,
                       hardware={"postgres": {"memory": profile.hardware.postgres.memory,
                                              "cpus": profile.hardware.postgres.cpus},
                                 "redis": {"memory": profile.hardware.redis.memory},
                                 "detected": asdict(hardware) if hardware else None},
                       adjusted=adjusted, postgres_version=version, scale=options.scale, implied_clients=implied,
                       pgbench=result, redis=redis_result, slo=check_slo(profile, result), init_s=round(init_s, 2))


def _create_databases(postgres: Any, names: Iterable[str]) -> None:
    import psycopg

    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        for name in names:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')


def _size(value: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= factor:
            return f"{value / factor:.1f}{unit}"
    return f"{value}B"


def format_report(report: BenchReport) -> str:
    """The text report `perfstack bench` prints."""
    r = report.pgbench
    lat = r.latency_ms
    slo = report.slo
    hw = report.hardware["postgres"]
    lines = [f"perfstack bench {report.environment}: PostgreSQL {report.postgres_version}, "
             f"hardware.postgres memory={_size(hw['memory'])} cpus={hw['cpus']}"
             + (" (this machine)" if report.hardware.get("detected") else "")]
    for key, (old, new) in report.adjusted.items():
        lines.append(f"  adjusted {key}: {old} -> {new}")
    lines += [
        f"pgbench {r.script}, scale {report.scale} (init {report.init_s:.1f}s), {r.clients} clients "
        f"(profile implies {report.implied_clients}) through PgBouncer for {r.duration_s}s",
        f"  transactions {r.transactions}  tps {r.tps:.1f}  errors {r.errors}"
        f" (failed {r.failed_transactions}, aborted clients {r.aborted_clients})",
        f"  latency ms: p50 {lat['p50']:.2f}  p95 {lat['p95']:.2f}  p99 {lat['p99']:.2f}  max {lat['max']:.2f}",
    ]
    for test, values in sorted(report.redis.items()):
        lines.append(f"redis {test}: {values['rps']:.0f} ops/s  p50 {values['p50']:.3f}  p95 {values['p95']:.3f}"
                     f"  p99 {values['p99']:.3f} ms")
    verdict = "met" if slo["db_query_p95_met"] else "MISSED"
    lines.append(f"slo.db_query_p95 {slo['db_query_p95_ms']}ms: p95 {slo['p95_ms']:.2f}ms -> {verdict}")
    verdict = "met" if slo["error_rate_met"] else "MISSED"
    lines.append(f"slo.error_rate {slo['error_rate_max']:.2%}: {slo['error_rate']:.2%} -> {verdict}")
    return "\n".join(lines) + "\n"
