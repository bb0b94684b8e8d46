"""`perfstack bench`: an end-to-end smoke run on real servers, and the report arithmetic it rests on."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from generators.bench import (
    LoadResult,
    adapt_profile,
    cgroup_cpu_limit,
    cgroup_memory_limit,
    check_slo,
    detect_hardware,
    implied_clients,
    latency_summary,
    meminfo_available,
    meminfo_total,
    parse_pgbench_log,
    parse_pgbench_output,
    parse_redis_benchmark_csv,
    percentile,
)
from generators.render import render
from generators.validation import load_profile

from .conftest import PERFSTACK, worktree_env

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str, profiles_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--profiles-dir", str(profiles_dir)] if profiles_dir else []
    return subprocess.run([*PERFSTACK, *extra, "bench", *args], capture_output=True, text=True, cwd=ROOT, timeout=180,
                          env=worktree_env())


# ---------------------------------------------------------------- end to end, on real servers
SMOKE = ("--local-hardware", "--scale", "1", "--duration", "2", "--clients", "8", "--format", "json")


def test_bench_runs_end_to_end_through_pgbouncer() -> None:
    result = bench("dev", *SMOKE)
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    load = report["pgbench"]
    assert load["clients"] == 8  # capped by --clients; dev implies 4 replicas x 20 = 80
    assert report["implied_clients"] == 80
    assert load["transactions"] > 0 and load["tps"] > 0
    assert load["errors"] == 0 and load["aborted_clients"] == 0 and load["failed_transactions"] == 0
    lat = load["latency_ms"]
    assert lat["count"] == load["transactions"]  # percentiles come from every logged transaction
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert report["hardware"]["postgres"] == report["hardware"]["detected"]  # --local-hardware
    assert {"get", "set"} <= set(report["redis"]) and report["redis"]["get"]["rps"] > 0
    slo = report["slo"]
    assert slo["db_query_p95_ms"] == 500  # profiles/dev.yaml
    assert slo["met"] == (slo["p95_ms"] <= 500 and slo["error_rate"] <= 0.01)
    assert result.returncode == (0 if slo["met"] else 1)
    assert "progress:" in result.stderr  # the live line pgbench -P feeds


def test_bench_exits_1_when_the_db_query_slo_is_missed(tmp_path: Path) -> None:
    for name in ("base.yaml", "dev.yaml"):
        shutil.copy(ROOT / "profiles" / name, tmp_path / name)
    dev = tmp_path / "dev.yaml"
    text, count = re.subn(r"db_query_p95: \S+", "db_query_p95: 1ms", dev.read_text())
    assert count == 1
    # the reserve pool must open within the query SLO (reserve_pool_within_query_slo)
    text, count = re.subn(r"\npgbouncer:\n", "\npgbouncer:\n  reserve_pool_timeout: 1ms\n", text)
    assert count == 1
    # a latency SLO is one of the histogram's bucket bounds (latency_slos_within_buckets)
    text, count = re.subn(r"\napp:\n", "\napp:\n  latency_buckets: {db_query: [1ms, 5ms, 10ms, 100ms, 1s, 5s]}\n", text)
    assert count == 1
    dev.write_text(text)
    # 1 ms for a 7-statement TPC-B transaction through a pooler on loopback, 8 clients on this machine: not met.
    result = bench("dev", "--scale", "1", "--duration", "1", "--clients", "8", "--script", "tpcb-like",
                   profiles_dir=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"slo\.db_query_p95 1ms: p95 [\d.]+ms -> MISSED", result.stdout), result.stdout
    assert "tps" in result.stdout


def test_bench_bad_input_exits_2() -> None:
    assert bench("no-such-env", *SMOKE).returncode == 2
    assert bench("dev", "--clients", "0").returncode == 2


# ---------------------------------------------------------------- percentiles and reports
def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)  # rank 49.5: halfway between 50 and 51
    assert percentile(values, 95) == pytest.approx(95.05)  # rank 94.05
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1 and percentile(values, 100) == 100
    assert percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_latency_summary_sorts_and_orders_percentiles() -> None:
    summary = latency_summary([10.0, 1.0, 4.0, 3.0, 2.0])
    assert summary == {"count": 5, "mean": 4.0, "p50": 3.0, "p95": 8.8, "p99": 9.76, "max": 10.0}
    # 95th: rank 3.8 between 4 and 10 -> 4 + 0.8 * 6 = 8.8; 99th: rank 3.96 -> 4 + 0.96 * 6 = 9.76
    assert latency_summary([])["count"] == 0


def test_parse_pgbench_log_reads_microseconds_failures_and_skips() -> None:
    lines = ["0 1 2381 0 1795437646 421235", "1 1 1127 0 1795437646 422372", "1 2 failed 0 1795437646 422999",
             "0 2 skipped 0 1795437646 423000", "", "garbage"]
    log = parse_pgbench_log(lines)
    assert log.latencies_ms == [2.381, 1.127]
    assert (log.failed, log.skipped) == (1, 1)


PGBENCH_STDOUT = """pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: TPC-B (sort of)>
number of transactions actually processed: 2304
number of failed transactions: 3 (0.130%)
latency average = 0.867 ms
tps = 2307.680751 (without initial connection time)
"""


def test_parse_pgbench_output_counts_failed_transactions_and_aborted_clients() -> None:
    stderr = ("pgbench: error: client 4 aborted in command 1 (SQL) of script 0; ...\n"
              "pgbench: error: client 7 aborted while establishing connection\n")
    summary = parse_pgbench_output(PGBENCH_STDOUT, stderr)
    assert (summary.processed, summary.failed, summary.aborted_clients) == (2304, 3, 2)
    assert summary.tps == pytest.approx(2307.680751)


def test_parse_redis_benchmark_csv() -> None:
    text = ('"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",'
            '"max_latency_ms"\n"SET","76923.08","0.396","0.040","0.175","2.559","4.311","4.439"\n'
            '"LPUSH (needed to benchmark LPOP)","5000","1","1","1","2","3","4"\n')
    result = parse_redis_benchmark_csv(text)
    assert result["set"] == {"rps": 76923.08, "p50": 0.175, "p95": 2.559, "p99": 4.311, "max": 4.439}
    assert set(result) == {"set", "lpush"}


def _load(p95: float, transactions: int = 1000, failed: int = 0, aborted: int = 0) -> LoadResult:
    return LoadResult(clients=8, duration_s=1, script="tpcb-like", transactions=transactions, tps=1000.0,
                      errors=failed + aborted, failed_transactions=failed, aborted_clients=aborted,
                      latency_ms={"count": transactions, "mean": 1.0, "p50": 1.0, "p95": p95, "p99": p95, "max": p95},
                      exit_code=0)


def test_check_slo_against_db_query_p95_and_error_rate() -> None:
    profile, _ = load_profile("prod", ROOT / "profiles")  # db_query_p95 200ms, error_rate 1%
    assert check_slo(profile, _load(200.0))["met"] is True  # at the threshold is within it
    missed = check_slo(profile, _load(200.5))
    assert missed["met"] is False and missed["db_query_p95_met"] is False and missed["error_rate_met"] is True
    errors = check_slo(profile, _load(5.0, transactions=980, failed=20))  # 20 of 1000 attempted = 2%
    assert errors["error_rate"] == 0.02 and errors["error_rate_met"] is False and errors["met"] is False
    assert check_slo(profile, _load(0.0, transactions=0))["met"] is False  # no transactions proves nothing


# ---------------------------------------------------------------- hardware detection
def test_detect_hardware_matches_proc_and_os() -> None:
    hardware = detect_hardware()
    total = meminfo_total(Path("/proc/meminfo").read_text())
    assert total is not None
    # sysconf and MemTotal count the same pages; a cgroup limit and what is available now can only lower it
    assert 0 < hardware.memory <= total
    available = meminfo_available(Path("/proc/meminfo").read_text())
    assert available is not None and hardware.memory <= available * 1.05  # MemAvailable moves between reads
    assert 1 <= hardware.cpus <= (os.cpu_count() or 1)
    assert hardware.cpus <= len(os.sched_getaffinity(0))


def test_meminfo_and_cgroup_parsers() -> None:
    assert meminfo_total("MemTotal:       24684084 kB\nMemFree: 1 kB\n") == 24684084 * 1024
    assert meminfo_total("nothing here") is None
    assert meminfo_available("MemTotal: 9 kB\nMemAvailable:   1024 kB\n") == 1024 * 1024
    assert meminfo_available("MemTotal: 9 kB\n") is None
    assert cgroup_memory_limit("max\n") is None
    assert cgroup_memory_limit("2147483648\n") == 2 * 2**30
    assert cgroup_memory_limit("9223372036854771712\n") is None  # cgroup v1's "unlimited"
    assert cgroup_cpu_limit("max 100000\n") is None
    assert cgroup_cpu_limit("150000 100000\n") == 2  # 1.5 CPUs of quota: round up
    assert cgroup_cpu_limit("200000 100000") == 2


def test_local_hardware_rerenders_postgres_for_this_machine() -> None:
    from generators.bench import LocalHardware

    profile, _ = load_profile("dev", ROOT / "profiles")  # 4GiB, 2 cpus, version 16
    local = LocalHardware(memory=8 * 2**30, cpus=3)
    adapted, changes = adapt_profile(profile, local, postgres_version=15)
    assert adapted.hardware.postgres.memory == 8 * 2**30 and adapted.hardware.postgres.cpus == 3
    assert adapted.hardware.redis.memory == 8 * 2**30
    assert adapted.postgres.version == 15
    assert changes == {"hardware.postgres.memory": [4 * 2**30, 8 * 2**30], "hardware.postgres.cpus": [2, 3],
                       "hardware.redis.memory": [2**30, 8 * 2**30], "postgres.version": [16, 15],
                       # the server started here is self-managed, not a CloudNativePG pod, and it is this host
                       "kubernetes.postgres": ["cloudnativepg", "external"],
                       "pgbouncer.server_host": [None, "127.0.0.1"]}
    conf = render(adapted).files["postgres/postgresql.conf"]
    assert re.search(r"^shared_buffers = 2GB", conf, re.MULTILINE)  # pgtune: RAM / 4
    # CloudNativePG's huge_pages on (its pod requests hugepages-2Mi) would not start on a host without them
    assert re.search(r"^huge_pages = '?try'?  #", conf, re.MULTILINE)
    assert render(profile.model_copy(update={"hardware": adapted.hardware})).files[
        "postgres/postgresql.conf"].count("huge_pages = on") == 1
    assert profile.hardware.postgres.memory == 4 * 2**30  # the loaded profile is left as it was
    prod, _ = load_profile("prod", ROOT / "profiles")  # external already
    same, none = adapt_profile(prod, None, postgres_version=17)  # a newer local server changes nothing
    assert same is prod and none == {}


def test_implied_clients_is_max_replicas_times_pool_size() -> None:
    assert implied_clients(load_profile("dev", ROOT / "profiles")[0]) == 4 * 20
    assert implied_clients(load_profile("prod", ROOT / "profiles")[0]) == 20 * 20
