"""Cross-component checks for workers: each refuses one over its line, with the numbers, and passes at it."""

from __future__ import annotations

from pathlib import Path

import pytest

from generators import workers
from generators.bundle import Finding

from .conftest import run_checks, run_cli, variant


def _errors(overrides: dict, check: str, base: str = "prod") -> list[Finding]:
    return [f for f in run_checks(variant(base, overrides)) if f.check == check and f.severity == "error"]


def _pool(**fields: object) -> dict:
    return {"workers": {"pools": {"default": fields}}}


def test_prod_and_dev_pass_every_worker_check() -> None:
    for env in ("dev", "prod"):
        names = {f.check for f in run_checks(variant(env, {})) if f.severity == "error"}
        assert not names


def test_visibility_timeout_must_exceed_prefetch_times_time_limit() -> None:
    # prod's default pool: prefetch_multiplier 1 x time_limit 10m.
    at = _errors(_pool(visibility_timeout="10m"), "visibility_timeout_above_time_limit")
    assert len(at) == 1
    assert "visibility_timeout 10m (600000 ms) must be above prefetch_multiplier 1 x time_limit 10m" in at[0].message
    assert at[0].keys[0] == "workers.pools.default.visibility_timeout"
    assert not _errors(_pool(visibility_timeout="600001ms"), "visibility_timeout_above_time_limit")
    # Prefetched jobs wait behind the running one: 2 x 10m.
    assert _errors(_pool(prefetch_multiplier=2, visibility_timeout="20m"), "visibility_timeout_above_time_limit")
    assert not _errors(_pool(prefetch_multiplier=2, visibility_timeout="1201s"), "visibility_timeout_above_time_limit")


def test_visibility_timeout_must_exceed_the_longest_retry_countdown() -> None:
    found = _errors(_pool(retry_backoff_max="1h"), "visibility_timeout_above_time_limit")
    assert found and "retry_backoff_max 1h (3600000 ms)" in found[0].message
    assert not _errors(_pool(retry_backoff_max="3599999ms"), "visibility_timeout_above_time_limit")


def test_worker_db_pools_count_against_pgbouncer_with_the_app() -> None:
    # app (20 + 5 surge) x (20 + 40) = 1500 + default 10 x 4 x 2 = 80 + agents 16 x 8 x 1 = 128: 1708 clients.
    at = {"pgbouncer": {"max_client_conn": 854}}  # 2 replicas x 854 = 1708
    assert not _errors(at, "workers_fit_pgbouncer")
    over = _errors({"pgbouncer": {"max_client_conn": 853}}, "workers_fit_pgbouncer")
    assert len(over) == 1
    assert ("app (20 + 5 surge) x (20 + 40) = 1500 + workers.pools.default 10 replicas x concurrency 4 x (2 + 0) = 80 + "
            "workers.pools.agents 16 replicas x concurrency 8 x (1 + 0) = 128 = 1708 client connections but "
            "pgbouncer allows 2 replicas x max_client_conn 853 = 1706") in over[0].message
    # The app alone (1500) still fits: only the workers' connections push it over.
    assert not _errors({"pgbouncer": {"max_client_conn": 853}}, "app_fits_pgbouncer")


def test_session_pooling_counts_worker_connections_against_postgres() -> None:
    session = {"pgbouncer": {"pool_mode": "session"}}
    at = _errors({**session, "postgres": {"max_connections": 1711}}, "workers_fit_postgres")  # 1711 - 3 = 1708
    assert not at
    over = _errors({**session, "postgres": {"max_connections": 1710}}, "workers_fit_postgres")
    assert len(over) == 1 and "= 1708 but postgres.max_connections 1710 - 3 reserved leaves 1707" in over[0].message
    # Transaction pooling multiplexes: PgBouncer's own pools are what PostgreSQL sees.
    assert not _errors({"postgres": {"max_connections": 1410}}, "workers_fit_postgres")


def test_llm_calling_workers_fit_the_llm_server() -> None:
    # prod: agents 16 replicas x 8 = 128 = max_num_seqs 32 x 4 vLLM replicas: at the line.
    assert not _errors({"llm": {"max_num_seqs": 32}}, "workers_fit_llm")
    over = _errors({"llm": {"max_num_seqs": 32}, "workers": {"pools": {"agents": {"max_replicas": 17}}}},
                   "workers_fit_llm")
    assert len(over) == 1
    assert ("workers.pools.agents 17 replicas x concurrency 8 = 136 = 136 concurrent LLM requests but the LLM "
            "server runs llm.max_num_seqs 32 x 4 replica(s) = 128") in over[0].message
    # A profile without an llm (an external one) is not checked, only warned about.
    found = [f for f in run_checks(variant("prod", {"llm": None})) if f.check == "workers_fit_llm"]
    assert [f.severity for f in found] == ["warning"] and "has no llm" in found[0].message
    # Ollama is not autoscaled: its min_replicas (1) x max_num_seqs (4) in dev.
    dev = {"workers": {"pools": {"default": {"calls_llm": True, "concurrency": 2, "max_replicas": 2}}}}
    assert not _errors(dev, "workers_fit_llm", "dev")
    dev["workers"]["pools"]["default"]["concurrency"] = 3
    assert "= 6 concurrent LLM requests" in _errors(dev, "workers_fit_llm", "dev")[0].message


@pytest.mark.parametrize("redis, expected", [
    ({"maxmemory_policy": "allkeys-lru"}, "needs maxmemory_policy noeviction (is allkeys-lru)"),
    ({"persistence": "rdb"}, "needs persistence aof (is rdb)"),
])
def test_the_queue_redis_never_evicts_and_keeps_jobs_on_disk(redis: dict, expected: str) -> None:
    found = _errors({"workers": {"redis": redis}}, "queue_redis_keeps_jobs")
    assert len(found) == 1 and expected in found[0].message
    assert found[0].message.startswith("the queue Redis (workers.redis)")


def test_the_queue_redis_fits_its_memory() -> None:
    # aof: at most half of workers.redis.memory 4GiB = 2GiB.
    assert not _errors({"workers": {"redis": {"maxmemory": "2GiB"}}}, "queue_redis_fits_memory")
    over = _errors({"workers": {"redis": {"maxmemory": "2049MiB"}}}, "queue_redis_fits_memory")
    assert len(over) == 1
    assert ("workers.redis.maxmemory 2.00GiB (2148532224 bytes) exceeds 1/2 of workers.redis.memory 4GiB = 2GiB "
            "(2147483648 bytes)") in over[0].message


def test_workers_on_a_cache_redis_are_refused() -> None:
    found = _errors({"workers": {"redis": None}}, "queue_redis_keeps_jobs")
    assert len(found) == 1 and "whose role is cache" in found[0].message
    shared = {"workers": {"redis": None},
              "redis": {"role": "queue", "maxmemory_policy": "noeviction", "persistence": "aof", "maxmemory": "50%"}}
    assert not [f for f in run_checks(variant("prod", shared)) if f.severity == "error"]
    assert workers.queue_redis_address(variant("prod", shared)) == ("redis", 6379)


def test_a_refused_profile_names_file_line_and_key_and_writes_nothing(profile_folder: Path, tmp_path: Path) -> None:
    path = profile_folder / "prod.yaml"
    text = path.read_text().replace("      visibility_timeout: 1h ", "      visibility_timeout: 10m")
    assert text != path.read_text()
    path.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "visibility_timeout: 10m" in t)
    out = tmp_path / "out"
    result = run_cli("--profiles-dir", profile_folder, "render", "prod", "--out", out)
    assert result.exit_code == 2
    assert f"prod.yaml:{line}:" in result.stderr and "workers.pools.default.visibility_timeout" in result.stderr
    assert not out.exists()


def test_a_misspelled_pool_key_gets_a_suggestion(profile_folder: Path) -> None:
    path = profile_folder / "prod.yaml"
    path.write_text(path.read_text().replace("      visibility_timeout: 1h ", "      visiblity_timeout: 1h "))
    result = run_cli("--profiles-dir", profile_folder, "validate", "prod")
    assert result.exit_code == 2
    assert "workers.pools.default.visiblity_timeout: unknown key; did you mean 'visibility_timeout'?" in result.stderr
    assert "prod.yaml:" in result.stderr
