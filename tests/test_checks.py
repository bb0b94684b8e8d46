"""Cross-component checks: for each, a profile one step over the line fails with that check's message
(the numbers on both sides), and one exactly at the line passes. dev and prod pass.

Profiles are the example profiles with a few keys overridden (merged as `extends:` merges).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from generators import checks
from generators.bundle import Finding
from generators.errors import CheckError, ProfileError
from generators.render import check, render

from .conftest import rendered_bundle, run_checks, run_cli, snapshot, variant


def findings(base: str, overrides: dict[str, Any], name: str) -> list[Finding]:
    return [f for f in run_checks(variant(base, overrides)) if f.check == name]


def errors(base: str, overrides: dict[str, Any], name: str) -> list[Finding]:
    return [f for f in findings(base, overrides, name) if f.severity == "error"]


def test_every_check_is_registered() -> None:
    names = {c.__name__ for c in checks.CHECKS}
    assert names == {
        "pgbouncer_fits_postgres", "app_fits_pgbouncer", "postgres_fits_memory", "redis_fits_memory",
        "postgres_wal_keeps_up", "postgres_io_method_allowed", "postgres_managed_is_external", "postgres_managed_allows",
        "postgres_list_values",
        "redis_queue_keeps_jobs", "llm_needs_gpu", "llm_kv_cache_dtype_supported", "llm_tensor_parallel_fits_heads",
        "llm_fits_gpu", "llm_ollama_fits_gpu", "llm_quantized_kv_needs_flash_attention", "llm_gated_model_has_token",
        "llm_scale_down_covers_load_time", "llm_scale_to_zero", "llm_startup_covers_load_time",
        "llm_autoscaling_has_metric", "hpa_stabilization_within_limit", "timeouts_nest", "latency_slos_within_buckets",
        "workers_fit_database", "visibility_timeout_above_time_limit", "queue_redis_keeps_jobs", "workers_fit_llm",
        "pgbouncer_pool_mode_fits_app", "pgbouncer_server_host", "query_timeout_covers_wait",
        "redis_maxmemory_bounded", "redis_clients_fit"}
    assert [o.check for o in checks.TIMEOUT_ORDER] == [
        "http_timeout_above_query_timeout", "query_timeout_covers_statement_timeout", "llm_timeout_covers_slo",
        "db_query_slo_within_statement_timeout", "lock_timeout_below_statement_timeout",
        "db_pool_timeout_above_query_wait_timeout",
        "http_timeout_above_query_wait_timeout", "reserve_pool_within_query_slo", "redis_health_check_within_idle_timeout",
        "retry_backoff_ordered"]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_examples_pass(env: str) -> None:
    found = run_checks(variant(env, {}))
    assert [f for f in found if f.severity == "error"] == []


def test_prod_warns_that_not_every_full_length_sequence_fits() -> None:
    warnings = [f for f in run_checks(variant("prod", {})) if f.severity == "warning"]
    assert [w.check for w in warnings] == ["llm_fits_gpu"]
    # 64 x 8192 tokens x 128 KiB = 64 GiB wanted per GPU; 0.8 x 79.19 GiB - 14.96 GiB - 800 MiB - 256 MiB = 47.36 GiB.
    assert "llm.max_num_seqs 64 sequences of max_model_len 8192 need 64GiB of KV cache per GPU" in warnings[0].message
    assert "leaves 47.36GiB (387984 tokens)" in warnings[0].message
    assert "47 sequences of full length fit at once" in warnings[0].message
    explained = json.loads(rendered_bundle("prod").files["explain.json"])
    assert {"check": "llm_fits_gpu", "severity": "warning", "message": warnings[0].message} in explained["warnings"]


# ---------------------------------------------------------------- PgBouncer and PostgreSQL
def test_pgbouncer_fits_postgres() -> None:
    # prod: 2 replicas x 1 database x 1 user x (20 + 5) = 50 server connections, + 25 for PgBouncer's own surge pod
    # while it rolls = 75; 78 - 3 reserved = 75 is exactly enough.
    assert errors("prod", {"postgres": {"max_connections": 78}}, "pgbouncer_fits_postgres") == []
    [error] = errors("prod", {"postgres": {"max_connections": 77}}, "pgbouncer_fits_postgres")
    assert "2 replicas x 1 databases x 1 users (one pool per database and user) x (20 + 5) = 50 server connections, " \
        "+ 25 for the surge pod of its own rolling update = 75" in error.message
    assert "postgres.max_connections 77 - 3 reserved leaves 74" in error.message


def test_app_fits_pgbouncer() -> None:
    # prod: (20 api pods + 5 surge: 25% of 20 during a rolling update) x (20 + 40) = 1500 client connections;
    # 2 x 750 = 1500 is exactly enough.
    assert errors("prod", {"pgbouncer": {"max_client_conn": 750}}, "app_fits_pgbouncer") == []
    [error] = errors("prod", {"pgbouncer": {"max_client_conn": 749}}, "app_fits_pgbouncer")
    assert "max_replicas 20 + 5 rolling-update surge (app.max_surge) x (db_pool.size 20 + max_overflow 40) = 1500" \
        in error.message
    assert "2 replicas x max_client_conn 749 = 1498" in error.message


# ---------------------------------------------------------------- Redis
def test_redis_fits_memory_without_persistence() -> None:
    # prod: 8 GiB; 3/4 = 6 GiB without persistence.
    assert errors("prod", {"redis": {"maxmemory": "6GiB"}}, "redis_fits_memory") == []
    [error] = errors("prod", {"redis": {"maxmemory": "6145MiB"}}, "redis_fits_memory")
    assert "redis.maxmemory 6GiB" not in error.message
    assert "(6443499520 bytes) exceeds 3/4 of hardware.redis.memory 8GiB = 6GiB (6442450944 bytes)" in error.message


def test_redis_fits_memory_with_persistence_leaves_half() -> None:
    # With an RDB fork copy-on-write may double memory: 1/2 of 8 GiB = 4 GiB.
    assert errors("prod", {"redis": {"maxmemory": "4GiB", "persistence": "rdb"}}, "redis_fits_memory") == []
    [error] = errors("prod", {"redis": {"maxmemory": "4097MiB", "persistence": "rdb"}}, "redis_fits_memory")
    assert "(4296015872 bytes) exceeds 1/2 of hardware.redis.memory 8GiB = 4GiB (4294967296 bytes)" in error.message
    # The share form: base's 75% is over the line once persistence is on, 50% is on it.
    assert errors("prod", {"redis": {"persistence": "aof"}}, "redis_fits_memory")
    assert errors("prod", {"redis": {"persistence": "aof", "maxmemory": "50%"}}, "redis_fits_memory") == []


def test_redis_queue_keeps_jobs() -> None:
    queue = {"role": "queue", "maxmemory": "50%", "maxmemory_policy": "noeviction", "persistence": "aof"}
    assert errors("prod", {"redis": queue}, "redis_queue_keeps_jobs") == []
    [error] = errors("prod", {"redis": {**queue, "maxmemory_policy": "allkeys-lru"}}, "redis_queue_keeps_jobs")
    assert error.message == "redis.role queue must never evict or lose a job, so it needs maxmemory_policy " \
                            "noeviction (is allkeys-lru)"
    [error] = errors("prod", {"redis": {**queue, "persistence": "rdb"}}, "redis_queue_keeps_jobs")
    assert "persistence aof (is rdb)" in error.message
    assert errors("prod", {"redis": {"role": "cache"}}, "redis_queue_keeps_jobs") == []


# ---------------------------------------------------------------- LLM
def test_llm_fits_gpu_error_when_not_one_sequence_fits() -> None:
    # prod: 24249 blocks x 16 = 387984 tokens of KV cache per GPU.
    at_line = {"llm": {"max_model_len": 387984, "max_num_seqs": 1}}
    assert findings("prod", at_line, "llm_fits_gpu") == []
    [error] = errors("prod", {"llm": {"max_model_len": 387985, "max_num_seqs": 1}}, "llm_fits_gpu")
    assert "one sequence of llm.max_model_len 387985 tokens needs 47.36GiB of KV cache per GPU" in error.message
    assert "gpu_memory_utilization 0.8 x torch-visible 79.19GiB = 63.35GiB - weights 14.96GiB - activation peak " \
           "800MiB - non-torch 256MiB leaves 47.36GiB (387984 tokens): vLLM would refuse to start" in error.message


def test_llm_fits_gpu_warning_names_the_concurrency_that_fits() -> None:
    # 47 x 8192 = 385024 <= 387984 tokens; 48 x 8192 = 393216 > 387984.
    assert findings("prod", {"llm": {"max_num_seqs": 47}}, "llm_fits_gpu") == []
    [warning] = findings("prod", {"llm": {"max_num_seqs": 48}}, "llm_fits_gpu")
    assert warning.severity == "warning"
    assert "llm.max_num_seqs 48 sequences of max_model_len 8192 need 48GiB" in warning.message
    assert "47 sequences of full length fit at once" in warning.message


def test_llm_ollama_fits_gpu_by_its_own_rules() -> None:
    # dev (Ollama, L4): NUM_PARALLEL x CONTEXT of KV is reserved up front; 7 x 8192 keeps all 32 layers on the
    # GPU, 8 x 8192 spills one layer to the CPU; vLLM's check does not apply to Ollama.
    assert findings("dev", {"llm": {"max_num_seqs": 7}}, "llm_ollama_fits_gpu") == []
    [warning] = findings("dev", {"llm": {"max_num_seqs": 8}}, "llm_ollama_fits_gpu")
    assert warning.severity == "warning"
    assert "OLLAMA_NUM_PARALLEL 8 x OLLAMA_CONTEXT_LENGTH 8192 tokens of KV cache (8GiB) up front" in warning.message
    assert "only 31 of 32 layers fit" in warning.message and "1 run on the CPU" in warning.message
    assert findings("dev", {"llm": {"max_num_seqs": 8}}, "llm_fits_gpu") == []


def test_quantized_kv_needs_flash_attention_on_ollama() -> None:
    assert errors("dev", {"llm": {"kv_cache_dtype": "q8_0"}}, "llm_quantized_kv_needs_flash_attention") == []
    [error] = errors("dev", {"llm": {"kv_cache_dtype": "q4_0", "flash_attention": False}},
                     "llm_quantized_kv_needs_flash_attention")
    assert "silently keeps an f16 KV cache" in error.message
    assert errors("dev", {"llm": {"flash_attention": False}}, "llm_quantized_kv_needs_flash_attention") == []


def test_gated_model_needs_a_token_secret() -> None:
    assert errors("prod", {}, "llm_gated_model_has_token") == []  # base references secrets.hf_token
    [error] = errors("prod", {"secrets": {"hf_token": None}}, "llm_gated_model_has_token")
    assert "meta-llama/Llama-3.1-8B-Instruct is gated" in error.message
    open_model = {"secrets": {"hf_token": None}, "llm": {"model": {"name": "Qwen/Qwen2.5-7B-Instruct"}}}
    assert errors("prod", open_model, "llm_gated_model_has_token") == []


def test_llm_needs_gpu() -> None:
    [error] = errors("prod", {"hardware": {"gpu": None}}, "llm_needs_gpu")
    assert "llm.server vllm needs hardware.gpu" in error.message
    assert errors("prod", {"hardware": {"gpu": None}, "llm": None}, "llm_needs_gpu") == []


def test_llm_kv_cache_dtype_supported() -> None:
    assert errors("prod", {"llm": {"kv_cache_dtype": "fp8"}}, "llm_kv_cache_dtype_supported") == []
    [error] = errors("prod", {"llm": {"kv_cache_dtype": "q8_0"}}, "llm_kv_cache_dtype_supported")
    assert error.message == "llm.kv_cache_dtype q8_0 is not a vllm KV-cache type; vllm takes auto, fp8, fp8_e4m3, fp8_e5m2"
    assert errors("dev", {"llm": {"kv_cache_dtype": "q8_0"}}, "llm_kv_cache_dtype_supported") == []
    assert errors("dev", {"llm": {"kv_cache_dtype": "fp8"}}, "llm_kv_cache_dtype_supported")


def test_llm_tensor_parallel_fits_heads() -> None:
    for count in (1, 2, 4, 8, 16):
        assert errors("prod", {"hardware": {"gpu": {"count": count}}}, "llm_tensor_parallel_fits_heads") == []
    [error] = errors("prod", {"hardware": {"gpu": {"count": 3}}}, "llm_tensor_parallel_fits_heads")
    assert "kv_heads 8 (meta-llama/Llama-3.1-8B-Instruct) across tensor-parallel size 3" in error.message
    assert "(8 % 3 = 2, 3 % 8 = 3)" in error.message


def test_llm_scale_down_covers_load_time() -> None:
    # prod: load_time is a computed cold start of 331 s (10 GiB image + 16.06 GB weights at 100 MiB/s, a read
    # at 1 GiB/s, 60 s engine start); the scale-down window must be at least that.
    assert errors("prod", {"autoscaling": {"llm": {"scale_down_stabilization": "331s"}}},
                  "llm_scale_down_covers_load_time") == []
    [error] = errors("prod", {"autoscaling": {"llm": {"scale_down_stabilization": "330s"}}},
                     "llm_scale_down_covers_load_time")
    assert "scale_down_stabilization 330s (330000 ms) is shorter than llm.load_time 331s (331000 ms)" in error.message
    # a vLLM profile's keep_alive no longer exists to be refused for
    with pytest.raises(ProfileError, match="keep_alive: unknown key"):
        variant("prod", {"llm": {"keep_alive": "20m"}})


def test_llm_startup_covers_load_time() -> None:
    # load_time 331s; the probe tries every 10s: 34 tries cover it, 33 do not.
    assert errors("prod", {"llm": {"startup_timeout": "340s"}}, "llm_startup_covers_load_time") == []
    [error] = errors("prod", {"llm": {"startup_timeout": "330s"}}, "llm_startup_covers_load_time")
    assert "failureThreshold 33 x periodSeconds 10 = 330s but llm.load_time is 331s (331s)" in error.message
    # The default (2 x load_time) always covers it.
    assert errors("prod", {"llm": {"load_time": "7m"}, "autoscaling": {"llm": {"scale_down_stabilization": "7m"}}},
                  "llm_startup_covers_load_time") == []
    # A load_time below the cold start is a warning: a new node pulls the image and the weights first.
    [warning] = findings("prod", {"llm": {"load_time": "2m"}}, "llm_startup_covers_load_time")
    assert warning.severity == "warning" and "below a cold start of 331s" in warning.message


def test_scale_to_zero_needs_keda() -> None:
    [error] = errors("prod", {"autoscaling": {"llm": {"min_replicas": 0}}}, "llm_scale_to_zero")
    assert "needs autoscaling.llm.scaler keda" in error.message
    keda = {"autoscaling": {"llm": {"min_replicas": 0, "scaler": "keda"}}}
    assert errors("prod", keda, "llm_scale_to_zero") == []
    [warning] = findings("prod", keda, "llm_scale_to_zero")  # request_timeout 3m < a 331 s cold start
    assert warning.severity == "warning" and "the first LLM call waits for a cold start" in warning.message
    assert findings("prod", {**keda, "llm": {"request_timeout": "6m"}}, "llm_scale_to_zero") == []


def test_llm_autoscaling_has_metric() -> None:
    assert findings("dev", {}, "llm_autoscaling_has_metric") == []  # dev: max_replicas 1
    [warning] = findings("dev", {"autoscaling": {"llm": {"max_replicas": 2}}}, "llm_autoscaling_has_metric")
    assert warning.severity == "warning"
    assert "autoscaling.llm (min 1, max 2) cannot scale on requests" in warning.message
    assert findings("prod", {}, "llm_autoscaling_has_metric") == []


def test_hpa_stabilization_within_limit() -> None:
    at_line = {"autoscaling": {"api": {"scale_down_stabilization": "1h"}, "llm": {"scale_down_stabilization": "1h"}}}
    assert errors("prod", at_line, "hpa_stabilization_within_limit") == []
    [error] = errors("prod", {"autoscaling": {"llm": {"scale_down_stabilization": "3601s"}}},
                     "hpa_stabilization_within_limit")
    assert "autoscaling.llm.scale_down_stabilization 3601s (3601s) exceeds the HorizontalPodAutoscaler's limit " \
           "of 3600s" in error.message
    assert errors("prod", {"autoscaling": {"api": {"scale_down_stabilization": "3601s"}}},
                  "hpa_stabilization_within_limit")


# ---------------------------------------------------------------- timeouts nest
def test_http_timeout_above_query_timeout() -> None:
    # prod: pgbouncer.query_timeout 35s; the client must wait strictly longer.
    assert errors("prod", {"app": {"http": {"timeout": "35001ms"}}}, "http_timeout_above_query_timeout") == []
    [error] = errors("prod", {"app": {"http": {"timeout": "35s"}}}, "http_timeout_above_query_timeout")
    assert "app.http.timeout 35s (35000 ms) must be above pgbouncer.query_timeout 35s (35000 ms)" in error.message


def test_query_timeout_covers_statement_timeout() -> None:
    # prod: postgres.statement_timeout 30s.
    assert errors("prod", {"pgbouncer": {"query_timeout": "30s"}}, "query_timeout_covers_statement_timeout") == []
    [error] = errors("prod", {"pgbouncer": {"query_timeout": "29999ms"}}, "query_timeout_covers_statement_timeout")
    assert "pgbouncer.query_timeout 29999ms (29999 ms) is below postgres.statement_timeout 30s (30000 ms)" \
           in error.message
    # 0 is "no limit" on both sides.
    assert errors("prod", {"pgbouncer": {"query_timeout": 0}}, "query_timeout_covers_statement_timeout") == []
    assert errors("prod", {"postgres": {"statement_timeout": 0}}, "query_timeout_covers_statement_timeout")


def test_llm_timeout_covers_slo() -> None:
    # prod: slo.llm_latency_p95 5s.
    assert errors("prod", {"llm": {"request_timeout": "5s"}}, "llm_timeout_covers_slo") == []
    [error] = errors("prod", {"llm": {"request_timeout": "4999ms"}}, "llm_timeout_covers_slo")
    assert "llm.request_timeout 4999ms (4999 ms) is below slo.llm_latency_p95 5s (5000 ms)" in error.message


def test_db_query_slo_within_statement_timeout() -> None:
    assert errors("prod", {"slo": {"db_query_p95": "30s"}}, "db_query_slo_within_statement_timeout") == []
    [error] = errors("prod", {"slo": {"db_query_p95": "30001ms"}}, "db_query_slo_within_statement_timeout")
    assert "postgres.statement_timeout 30s (30000 ms) is below slo.db_query_p95 30001ms (30001 ms)" in error.message


def test_retry_backoff_ordered() -> None:
    # base: backoff_base 100ms.
    assert errors("prod", {"app": {"retry": {"backoff_max": "100ms"}}}, "retry_backoff_ordered") == []
    [error] = errors("prod", {"app": {"retry": {"backoff_max": "99ms"}}}, "retry_backoff_ordered")
    assert "app.retry.backoff_max 99ms (99 ms) is below app.retry.backoff_base 100ms (100 ms)" in error.message


# ---------------------------------------------------------------- through render and the CLI
def test_render_refuses_a_profile_over_the_line() -> None:
    profile = variant("prod", {"postgres": {"max_connections": 77}})  # 75 needed with PgBouncer's surge pod
    with pytest.raises(CheckError) as caught:
        render(profile)
    assert "pgbouncer_fits_postgres" in str(caught.value)
    assert check(variant("prod", {"postgres": {"max_connections": 78}}))  # only warnings: a list, no raise


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text + f"\nnamespace: {name}\n")  # a child of prod states its own namespace
    return path


def test_cli_validate_names_the_check_file_and_line(profile_folder: Path) -> None:
    _write(profile_folder, "tight", "extends: prod\nenvironment: tight\n\npgbouncer:\n  query_timeout: 29s\n")
    result = run_cli("--profiles-dir", profile_folder, "validate", "tight")
    assert result.exit_code == 2
    assert "tight.yaml:5:3: pgbouncer.query_timeout: query_timeout_covers_statement_timeout: " \
           "pgbouncer.query_timeout 29s (29000 ms) is below postgres.statement_timeout 30s (30000 ms)" in result.stderr


def test_cli_validate_passes_at_the_line_and_prints_warnings(profile_folder: Path) -> None:
    # At the line: query_timeout 31s = query_wait_timeout 1s + statement_timeout 30s.
    _write(profile_folder, "edge", "extends: prod\nenvironment: edge\npgbouncer:\n  query_timeout: 31s\n"
           "  query_wait_timeout: 1s\n")
    result = run_cli("--profiles-dir", profile_folder, "validate", "edge", "dev")
    assert result.exit_code == 0, result.stderr
    assert "edge: ok" in result.stdout and "dev: ok" in result.stdout
    assert "edge: warning: llm_fits_gpu:" in result.stderr


def test_cli_validate_reports_the_gpu_budget_error(profile_folder: Path) -> None:
    _write(profile_folder, "long", "extends: prod\nenvironment: long\nllm:\n  max_num_seqs: 1\n"
                                   "  max_model_len: 387985\n")
    result = run_cli("--profiles-dir", profile_folder, "validate", "long")
    assert result.exit_code == 2
    assert "long.yaml:5:3: llm.max_model_len: llm_fits_gpu: one sequence of llm.max_model_len 387985 tokens" \
           in result.stderr


def test_cli_render_writes_nothing_when_a_check_fails(profile_folder: Path, tmp_path: Path) -> None:
    _write(profile_folder, "small", "extends: prod\nenvironment: small\npostgres:\n  max_connections: 52\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("untouched")
    before = snapshot(out)
    result = run_cli("--profiles-dir", profile_folder, "render", "small", "--out", out)
    assert result.exit_code == 2
    assert "small.yaml:4:3: postgres.max_connections: pgbouncer_fits_postgres" in result.stderr
    assert snapshot(out) == before
