"""pgtune's rules (le0pard/pgtune, 2026 revision), one test per rule and branch, exact numbers.

Sizes are kB, as in pgtune; 1 GB = 1048576 kB. The arithmetic is in the comments, pgtune-style.
See ../shared/reference/pgtune-rules.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from generators import postgres
from generators.postgres import Inputs
from generators.profile import Profile
from generators.units import GIB

GB = 1024 * 1024  # kB
MB = 1024  # kB


def inputs(**changes: Any) -> Inputs:
    """pgtune's worked example (PG 18, linux, web, 16 GB, 8 CPUs, ssd), with changes."""
    base = Inputs(version=18, os="linux", workload="web", ram_kb=16 * GB, cpus=8, connections=None,
                  storage="ssd", db_size="mid_ram")
    return dataclasses.replace(base, **changes)


def value(rule: str, **changes: Any) -> Any:
    result = getattr(postgres, rule)(inputs(**changes))
    return None if result is None else result.value


def profile(postgres_section: dict[str, Any] | None = None, **hardware: Any) -> Profile:
    hw = {"memory": "16GiB", "cpus": 8, "storage": "ssd", "os": "linux", **hardware}
    return Profile.model_validate({
        "environment": "test", "hardware": {"postgres": hw, "redis": {"memory": "1GiB"}},
        "postgres": {"version": 18, "workload": "web", **(postgres_section or {})}})


def texts(p: Profile) -> dict[str, str]:
    return {s.key: s.text for s in postgres.settings(p)}


# ---------------------------------------------------------------- the worked example, through the profile
def test_worked_example_from_the_profile() -> None:
    # PG 18, linux, web, 16 GB, 8 CPUs, ssd (pgtune-rules.md): RAM = 16777216 kB
    got = texts(profile())
    assert got["max_connections"] == "200"                  # web default
    assert got["shared_buffers"] == "4GB"                   # 16777216 / 4 = 4194304 kB
    assert got["effective_cache_size"] == "12GB"            # 16777216 * 3 / 4 = 12582912 kB
    assert got["maintenance_work_mem"] == "1GB"             # 16777216 / 16 = 1048576 kB
    assert got["wal_buffers"] == "16MB"                     # 3 * 4194304 / 100 = 125829 > 16384 -> 16384
    assert got["work_mem"] == "20164kB"                     # (16777216 - 4194304) / ((200 + 8) * 3) = 20164.9
    assert got["huge_pages"] == "try"                       # shared_buffers 4GB >= 2GB
    assert got["max_parallel_workers_per_gather"] == "4"    # ceil(8 / 2) = 4
    assert got["checkpoint_completion_target"] == "0.9"
    assert got["default_statistics_target"] == "100"
    assert got["random_page_cost"] == "1.1"
    assert got["effective_io_concurrency"] == "200"
    assert got["min_wal_size"] == "1GB"
    assert got["max_wal_size"] == "4GB"
    assert got["jit"] == "off"
    assert got["wal_compression"] == "lz4"
    assert got["io_method"] == "io_uring"
    assert got["max_worker_processes"] == "8"
    assert got["max_parallel_workers"] == "8"
    assert got["max_parallel_maintenance_workers"] == "4"  # min(4, ceil(8 / 2))
    # Omitted, as pgtune omits them: the server default stays.
    for absent in ("wal_level", "max_wal_senders", "autovacuum_max_workers", "autovacuum_work_mem", "io_workers"):
        assert absent not in got


def test_profile_keys_map_to_pgtune_inputs() -> None:
    p = profile({"version": 14, "workload": "oltp", "max_connections": 150}, memory="64GiB", cpus=12,
                storage="nvme", os="windows", data_size="10GiB")
    assert Inputs.from_profile(p) == Inputs(version=14, os="windows", workload="oltp", ram_kb=64 * GB, cpus=12,
                                            connections=150, storage="nvme", db_size="less_ram")


# ---------------------------------------------------------------- dbSize from hardware.postgres.data_size
@pytest.mark.parametrize(("data_size", "expected"), [
    (None, "mid_ram"),             # absent: pgtune's default
    (8 * GIB, "less_ram"),         # 8GiB < 16GiB
    (16 * GIB, "mid_ram"),         # equal to RAM: 1x
    (48 * GIB, "mid_ram"),         # exactly 3x RAM is still mid
    (48 * GIB + 1, "greater_ram"),  # above 3x RAM
])
def test_db_size(data_size: int | None, expected: str) -> None:
    assert postgres.db_size(16 * GIB, data_size) == expected


# ---------------------------------------------------------------- max_connections
def test_max_connections_given() -> None:
    assert value("max_connections", connections=150) == 150


@pytest.mark.parametrize(("workload", "expected"), [("web", 200), ("oltp", 300), ("dw", 40), ("desktop", 20),
                                                    ("mixed", 100)])
def test_max_connections_default_per_workload(workload: str, expected: int) -> None:
    assert value("max_connections", workload=workload) == expected


# ---------------------------------------------------------------- shared_buffers, effective_cache_size
def test_shared_buffers_quarter_of_ram() -> None:
    assert value("shared_buffers") == 4194304                     # 16777216 / 4
    assert value("shared_buffers", ram_kb=1000003) == 250000      # floor(250000.75)


def test_shared_buffers_desktop_sixteenth() -> None:
    assert value("shared_buffers", workload="desktop") == 1048576  # 16777216 / 16


def test_effective_cache_size_three_quarters() -> None:
    assert value("effective_cache_size") == 12582912                 # 16777216 * 3 / 4
    assert value("effective_cache_size", ram_kb=1000003) == 750002  # floor(750002.25)


def test_effective_cache_size_desktop_quarter() -> None:
    assert value("effective_cache_size", workload="desktop") == 4194304  # 16777216 / 4


# ---------------------------------------------------------------- maintenance_work_mem
def test_maintenance_work_mem_sixteenth() -> None:
    assert value("maintenance_work_mem") == 1048576  # 16777216 / 16


def test_maintenance_work_mem_dw_eighth() -> None:
    assert value("maintenance_work_mem", workload="dw") == 2097152  # 16777216 / 8


def test_maintenance_work_mem_capped_at_8gb() -> None:
    assert value("maintenance_work_mem", ram_kb=256 * GB) == 8388608                # 268435456 / 16 = 16GB -> 8GB
    assert value("maintenance_work_mem", ram_kb=128 * GB, workload="dw") == 8388608  # 134217728 / 8 = 16GB -> 8GB


def test_maintenance_work_mem_windows_up_to_17_capped_below_2gb() -> None:
    # 64GB / 16 = 4194304 >= 2097152 -> 2GB - 1MB = 2096128 (2GB itself fails on Windows)
    assert value("maintenance_work_mem", os="windows", version=17, ram_kb=64 * GB) == 2096128
    # exactly at the cap: dw 16GB / 8 = 2097152 >= 2097152 -> 2096128
    assert value("maintenance_work_mem", os="windows", version=17, workload="dw") == 2096128
    # below the cap nothing changes: 16GB / 16 = 1048576
    assert value("maintenance_work_mem", os="windows", version=17) == 1048576


def test_maintenance_work_mem_windows_18_uses_the_8gb_cap() -> None:
    assert value("maintenance_work_mem", os="windows", version=18, ram_kb=64 * GB) == 4194304   # 64GB / 16
    assert value("maintenance_work_mem", os="windows", version=18, ram_kb=256 * GB) == 8388608  # 16GB -> 8GB


# ---------------------------------------------------------------- checkpoint_completion_target, wal_buffers
def test_checkpoint_completion_target() -> None:
    assert value("checkpoint_completion_target") == 0.9


def test_wal_buffers_capped_at_16mb() -> None:
    assert value("wal_buffers") == 16384  # 3 * 4194304 / 100 = 125829 > 16384


def test_wal_buffers_near_16mb_rounds_up() -> None:
    # 2GB RAM: shared_buffers 524288; 3 * 524288 / 100 = 15728, between 14336 and 16384 -> 16384
    assert value("wal_buffers", ram_kb=2 * GB) == 16384


def test_wal_buffers_at_14mb_stays() -> None:
    # shared_buffers 1911468 / 4 = 477867; 3 * 477867 / 100 = 14336.01 -> 14336, not > 14336: unchanged
    assert value("wal_buffers", ram_kb=1911468) == 14336


def test_wal_buffers_three_percent() -> None:
    # 1GB RAM: shared_buffers 262144; 3 * 262144 / 100 = 7864.32 -> 7864
    assert value("wal_buffers", ram_kb=1 * GB) == 7864


def test_wal_buffers_minimum_32kb() -> None:
    # 4000 kB RAM: shared_buffers 1000; 3 * 1000 / 100 = 30 < 32 -> 32
    assert value("wal_buffers", ram_kb=4000) == 32


# ---------------------------------------------------------------- default_statistics_target
@pytest.mark.parametrize(("workload", "expected"), [("dw", 500), ("web", 100), ("oltp", 100), ("desktop", 100),
                                                    ("mixed", 100)])
def test_default_statistics_target(workload: str, expected: int) -> None:
    assert value("default_statistics_target", workload=workload) == expected


# ---------------------------------------------------------------- random_page_cost (first match wins)
def test_random_page_cost_data_in_ram_beats_hdd() -> None:
    assert value("random_page_cost", db_size="less_ram", storage="hdd", workload="dw") == 1.1


def test_random_page_cost_hdd() -> None:
    assert value("random_page_cost", storage="hdd") == 4


def test_random_page_cost_dw_on_flash() -> None:
    assert value("random_page_cost", workload="dw", storage="nvme", db_size="greater_ram") == 4


@pytest.mark.parametrize("storage", ["ssd", "san", "nvme"])
def test_random_page_cost_flash(storage: str) -> None:
    assert value("random_page_cost", storage=storage) == 1.1


# ---------------------------------------------------------------- effective_io_concurrency (Linux only)
@pytest.mark.parametrize(("storage", "expected"), [("hdd", 2), ("ssd", 200), ("san", 300), ("nvme", 1000)])
def test_effective_io_concurrency_linux(storage: str, expected: int) -> None:
    assert value("effective_io_concurrency", storage=storage) == expected


@pytest.mark.parametrize("os", ["windows", "mac"])
def test_effective_io_concurrency_omitted_off_linux(os: str) -> None:
    assert value("effective_io_concurrency", os=os) is None


# ---------------------------------------------------------------- parallel settings (cpus >= 4)
@pytest.mark.parametrize("cpus", [None, 1, 2, 3])
def test_parallel_settings_omitted_below_4_cpus(cpus: int | None) -> None:
    for rule in ("max_worker_processes", "max_parallel_workers_per_gather", "max_parallel_workers",
                 "max_parallel_maintenance_workers"):
        assert value(rule, cpus=cpus) is None


def test_parallel_settings_4_cpus() -> None:
    assert value("max_worker_processes", cpus=4) == 4
    assert value("max_parallel_workers_per_gather", cpus=4) == 2    # ceil(4 / 2)
    assert value("max_parallel_workers", cpus=4) == 4
    assert value("max_parallel_maintenance_workers", cpus=4) == 2   # min(4, ceil(4 / 2))


def test_parallel_workers_per_gather_rounds_up() -> None:
    assert value("max_parallel_workers_per_gather", cpus=5) == 3  # ceil(2.5)


def test_parallel_workers_per_gather_capped_at_4_unless_dw() -> None:
    assert value("max_parallel_workers_per_gather", cpus=16) == 4                  # ceil(16 / 2) = 8 -> 4
    assert value("max_parallel_workers_per_gather", cpus=16, workload="dw") == 8  # dw keeps 8


def test_parallel_maintenance_workers_capped_at_4() -> None:
    assert value("max_parallel_maintenance_workers", cpus=16) == 4                 # min(4, 8)
    assert value("max_parallel_maintenance_workers", cpus=16, workload="dw") == 4  # even for dw


def test_parallel_maintenance_workers_need_version_11() -> None:
    assert value("max_parallel_maintenance_workers", version=10) is None
    assert value("max_parallel_maintenance_workers", version=11) == 4
    assert value("max_parallel_workers", version=10) == 8  # max_parallel_workers exists from 10


# ---------------------------------------------------------------- work_mem
def test_work_mem_web_with_parallel_workers() -> None:
    # (16777216 - 4194304) / ((200 + 8 cpus) * 3) = 20164.92 -> 20164
    assert value("work_mem") == 20164


def test_work_mem_without_parallel_settings_uses_8_workers() -> None:
    # 4GB, 2 CPUs: (4194304 - 1048576) / ((200 + 8 default) * 3) = 5041.23 -> 5041
    assert value("work_mem", ram_kb=4 * GB, cpus=2) == 5041


def test_work_mem_oltp() -> None:
    # (16777216 - 4194304) / ((300 + 8) * 3) = 13617.87 -> 13617
    assert value("work_mem", workload="oltp") == 13617


def test_work_mem_dw_halves() -> None:
    # (16777216 - 4194304) / ((40 + 8) * 3) = 87381.33; / 2 = 43690.67 -> 43690
    assert value("work_mem", workload="dw") == 43690


def test_work_mem_mixed_halves() -> None:
    # (16777216 - 4194304) / ((100 + 8) * 3) = 38836.15; / 2 = 19418.07 -> 19418
    assert value("work_mem", workload="mixed") == 19418


def test_work_mem_desktop_sixth() -> None:
    # shared_buffers = RAM / 16 = 1048576; (16777216 - 1048576) / ((20 + 8) * 3) = 187245.71; / 6 -> 31207
    assert value("work_mem", workload="desktop") == 31207


def test_work_mem_data_in_ram_raised_30_percent() -> None:
    assert value("work_mem", db_size="less_ram") == 26213  # floor(20164 * 1.3) = floor(26213.2)


def test_work_mem_data_over_3x_ram_lowered_10_percent() -> None:
    assert value("work_mem", db_size="greater_ram") == 18147  # floor(20164 * 0.9) = floor(18147.6)


def test_work_mem_minimum_4mb() -> None:
    # pgtune's own case: 4GB, 9999 connections, 4 CPUs: (4194304 - 1048576) / ((9999 + 4) * 3) = 104.8 -> 4096
    assert value("work_mem", ram_kb=4 * GB, connections=9999, cpus=4, version=15) == 4096


def test_work_mem_windows_up_to_17_capped() -> None:
    # 256GB, 20 connections, 4 CPUs: (268435456 - 67108864) / ((20 + 4) * 3) = 2796202.67 -> cap 2096128
    assert value("work_mem", ram_kb=256 * GB, connections=20, cpus=4, os="windows", version=17) == 2096128


def test_work_mem_windows_18_not_capped() -> None:
    assert value("work_mem", ram_kb=256 * GB, connections=20, cpus=4, os="windows", version=18) == 2796202


# ---------------------------------------------------------------- min_wal_size / max_wal_size
@pytest.mark.parametrize(("workload", "low", "high"), [
    ("web", 1 * GB, 4 * GB), ("mixed", 1 * GB, 4 * GB), ("oltp", 2 * GB, 8 * GB), ("dw", 4 * GB, 16 * GB),
    ("desktop", 100 * MB, 2 * GB),
])
def test_wal_sizes(workload: str, low: int, high: int) -> None:
    assert value("min_wal_size", workload=workload) == low
    assert value("max_wal_size", workload=workload) == high


# ---------------------------------------------------------------- huge_pages
def test_huge_pages_try_from_2gb_shared_buffers() -> None:
    assert value("huge_pages", ram_kb=8 * GB) == "try"  # shared_buffers 8GB / 4 = 2097152 >= 2097152


def test_huge_pages_off_below_2gb_shared_buffers() -> None:
    assert value("huge_pages", ram_kb=8 * GB - 4) == "off"  # shared_buffers 2097151 < 2097152
    assert value("huge_pages", workload="desktop") == "off"  # 16GB / 16 = 1GB


def test_huge_pages_windows_follows_shared_buffers() -> None:
    assert value("huge_pages", os="windows") == "try"


def test_huge_pages_off_on_mac() -> None:
    assert value("huge_pages", os="mac", ram_kb=64 * GB) == "off"  # shared_buffers 16GB, still off


# ---------------------------------------------------------------- desktop: wal_level, max_wal_senders
def test_desktop_wal_level_minimal() -> None:
    assert value("wal_level", workload="desktop") == "minimal"
    assert value("max_wal_senders", workload="desktop") == 0  # required by wal_level = minimal


@pytest.mark.parametrize("workload", ["web", "oltp", "dw", "mixed"])
def test_wal_level_left_alone_elsewhere(workload: str) -> None:
    assert value("wal_level", workload=workload) is None
    assert value("max_wal_senders", workload=workload) is None


# ---------------------------------------------------------------- jit
@pytest.mark.parametrize("workload", ["web", "oltp", "mixed"])
def test_jit_off_for_short_queries_from_12(workload: str) -> None:
    assert value("jit", workload=workload, version=12) == "off"


@pytest.mark.parametrize(("workload", "version"), [("web", 11), ("web", 10), ("dw", 15), ("desktop", 18)])
def test_jit_omitted(workload: str, version: int) -> None:
    assert value("jit", workload=workload, version=version) is None


# ---------------------------------------------------------------- wal_compression
@pytest.mark.parametrize(("version", "expected"), [(10, "on"), (14, "on"), (15, "lz4"), (17, "lz4"), (18, "lz4")])
def test_wal_compression(version: int, expected: str) -> None:
    assert value("wal_compression", version=version) == expected


# ---------------------------------------------------------------- autovacuum
@pytest.mark.parametrize(("cpus", "expected"), [(64, 5), (32, 5), (31, 4), (16, 4), (15, None), (8, None),
                                                (None, None)])
def test_autovacuum_max_workers(cpus: int | None, expected: int | None) -> None:
    assert value("autovacuum_max_workers", cpus=cpus) == expected


def test_autovacuum_work_mem_capped_at_2gb_when_maintenance_is_bigger() -> None:
    assert value("autovacuum_work_mem", ram_kb=32 * GB) == 2097152   # maintenance 32GB / 16 = 2GB >= 2GB
    assert value("autovacuum_work_mem", ram_kb=256 * GB) == 2097152  # maintenance 8GB -> autovacuum 2GB


def test_autovacuum_work_mem_omitted_below_2gb() -> None:
    assert value("autovacuum_work_mem", ram_kb=31 * GB) is None  # maintenance 31GB / 16 = 1.94GB


def test_autovacuum_work_mem_windows() -> None:
    # Windows <= 17: maintenance capped at 2096128 < 2GB, so autovacuum_work_mem stays the default
    assert value("autovacuum_work_mem", ram_kb=256 * GB, os="windows", version=17) is None
    assert value("autovacuum_work_mem", ram_kb=256 * GB, os="windows", version=18) == 2097152


# ---------------------------------------------------------------- PostgreSQL 18: io_method, io_workers
def test_io_method() -> None:
    assert value("io_method", version=17) is None
    assert value("io_method", version=18) == "io_uring"
    assert value("io_method", version=18, os="windows") == "worker"
    assert value("io_method", version=18, os="mac") == "worker"


@pytest.mark.parametrize(("cpus", "expected"), [(32, 8), (64, 16), (256, 32), (16, 4), (15, None), (8, None),
                                                (None, None)])
def test_io_workers_off_linux(cpus: int | None, expected: int | None) -> None:
    # min(32, max(3, floor(cpus / 4))), written only above the default 3
    assert value("io_workers", version=18, os="windows", cpus=cpus) == expected


def test_io_workers_not_on_linux_or_before_18() -> None:
    assert value("io_workers", version=18, os="linux", cpus=64) is None  # io_uring does not use io workers
    assert value("io_workers", version=17, os="windows", cpus=64) is None


# ---------------------------------------------------------------- every version 10-18 renders its own set
@pytest.mark.parametrize("version", range(10, 19))
def test_version_branches(version: int) -> None:
    got = texts(profile({"version": version}))
    assert ("max_parallel_maintenance_workers" in got) == (version >= 11)
    assert ("jit" in got) == (version >= 12)
    assert got["wal_compression"] == ("lz4" if version >= 15 else "on")
    assert ("io_method" in got) == (version >= 18)
    assert got["shared_buffers"] == "4GB"  # the memory rules do not depend on the version on Linux


# ---------------------------------------------------------------- warnings
def messages(**changes: Any) -> list[str]:
    return [w.check for w in postgres.warnings(inputs(**changes))]


def test_no_warnings_for_standard_configuration() -> None:
    assert messages(version=14) == []


def test_warning_low_memory() -> None:
    assert messages(version=14, ram_kb=128 * MB) == ["pgtune.memory"]
    assert messages(version=14, ram_kb=256 * MB) == []  # 256MB itself is fine


def test_warning_high_memory() -> None:
    assert messages(version=14, ram_kb=256 * GB) == ["pgtune.memory"]
    assert messages(version=14, ram_kb=100 * GB) == []


def test_warning_lz4_and_io_uring() -> None:
    assert messages(version=15) == ["pgtune.lz4"]
    assert messages(version=18) == ["pgtune.lz4", "pgtune.io_uring"]
    assert messages(version=18, os="windows") == ["pgtune.lz4"]  # worker needs no special build


def test_warning_dw_on_flash_with_data_beyond_ram() -> None:
    assert "pgtune.dw_storage" in messages(version=14, workload="dw", storage="ssd")
    assert "pgtune.dw_storage" not in messages(version=14, workload="dw", storage="hdd")
    assert "pgtune.dw_storage" not in messages(version=14, workload="dw", storage="ssd", db_size="less_ram")


def test_warnings_are_printed_in_postgresql_conf_and_bundle() -> None:
    part = postgres.render(profile())
    conf = part.files["postgres/postgresql.conf"]
    assert "# WARNING: io_method = io_uring needs" in conf
    assert [w.check for w in part.warnings] == ["pgtune.lz4", "pgtune.io_uring"]


# ---------------------------------------------------------------- the profile's own settings and overrides
def test_timeouts_and_slow_query_log_from_the_profile() -> None:
    got = texts(profile({"statement_timeout": "30s", "lock_timeout": "10s",
                         "idle_in_transaction_session_timeout": "60s", "log_min_duration_statement": "200ms"}))
    assert got["statement_timeout"] == "30s"
    assert got["lock_timeout"] == "10s"
    assert got["idle_in_transaction_session_timeout"] == "1min"  # as PostgreSQL's SHOW prints 60s
    assert got["log_min_duration_statement"] == "200ms"


def test_overrides_win_over_rules() -> None:
    p = profile({"settings": {"shared_buffers": "2GB", "work_mem": "64MB", "jit": True, "random_page_cost": 1.5,
                              "pg_stat_statements.max": 10000, "Max_Connections": 150}})
    by_key = {s.key: s for s in postgres.settings(p)}
    assert by_key["shared_buffers"].text == "2GB"
    assert by_key["shared_buffers"].rule == "override in postgres.settings (rule gave 4GB)"
    assert by_key["work_mem"].text == "64MB"
    assert by_key["jit"].text == "on"                      # YAML booleans become on/off
    assert by_key["random_page_cost"].text == "1.5"
    assert by_key["pg_stat_statements.max"].text == "10000"
    assert by_key["max_connections"].text == "150"          # names are case-insensitive, written lower-case
    assert "Max_Connections" not in by_key
    conf = postgres.render(p).files["postgres/postgresql.conf"]
    assert "\nshared_buffers = 2GB  # override in postgres.settings (rule gave 4GB)" in conf
    assert conf.count("\nshared_buffers = ") == 1


def test_every_conf_line_names_rule_and_inputs() -> None:
    conf = postgres.render(profile()).files["postgres/postgresql.conf"]
    lines = [line for line in conf.splitlines() if line and not line.startswith("#")]
    assert len(lines) == len(postgres.server_settings(postgres.settings(profile())))  # per-role ones: roles.sql
    for line in lines:
        assert "  # " in line, line
    assert "work_mem = 20164kB  # pgtune: (RAM - shared_buffers) / ((max_connections + max_worker_processes) * 3) " \
           "[memory=16GB, shared_buffers=4GB, max_connections=200, max_worker_processes=8, workload=web, " \
           "db_size=mid_ram]" in conf


def test_alter_system_carries_the_same_settings() -> None:
    p = profile({"settings": {"application_name": "it's"}})
    sql = postgres.render(p).files["postgres/alter_system.sql"]
    statements = [line for line in sql.splitlines() if line.startswith("ALTER SYSTEM SET")]
    assert len(statements) == len(postgres.server_settings(postgres.settings(p)))
    assert "ALTER SYSTEM SET shared_buffers = E'4GB';" in sql
    assert "ALTER SYSTEM SET application_name = E'it''s';" in sql  # quotes doubled
    assert sql.rstrip().endswith("SELECT pg_reload_conf();")
