"""The LLM server generator: the GPU memory budget (exact numbers), vLLM flags, Ollama's environment,
and the Deployment that makes keep-alive and warm-up real."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from generators import llm, units
from generators.bundle import Bundle
from generators.k8s import CHECKSUM_ANNOTATION, LLM_SERVER, checksum_of
from generators.render import render

from .conftest import rendered_bundle, run_cli, variant

GIB = units.GIB
MIB = units.MIB


def _model(name: str, parameters: str, layers: int, kv_heads: int, head_dim: int, dtype: str = "bf16") -> dict[str, Any]:
    return {"llm": {"model": {"name": name, "parameters": parameters, "dtype": dtype, "layers": layers,
                              "kv_heads": kv_heads, "head_dim": head_dim}}}


LLAMA_8B = _model("meta-llama/Llama-3.1-8B-Instruct", "8B", 32, 8, 128)
LLAMA_70B = _model("meta-llama/Llama-3.1-70B-Instruct", "70B", 80, 8, 128)
QWEN_7B = _model("Qwen/Qwen2.5-7B-Instruct", "7B", 28, 4, 128)


def deployment(bundle: Bundle) -> dict[str, Any]:
    return next(o for o in bundle.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == LLM_SERVER)


def container(bundle: Bundle) -> dict[str, Any]:
    return deployment(bundle)["spec"]["template"]["spec"]["containers"][0]


# ---------------------------------------------------------------- KV cache per token, published shapes
@pytest.mark.parametrize(("shape", "expected"), [
    (LLAMA_8B, 131072),   # 2 x 32 layers x 8 kv heads x 128 x 2 bytes = 128 KiB
    (LLAMA_70B, 327680),  # 2 x 80 x 8 x 128 x 2 = 320 KiB
    (QWEN_7B, 57344),     # 2 x 28 x 4 x 128 x 2 = 56 KiB
])
def test_kv_bytes_per_token_of_published_models(shape: dict[str, Any], expected: int) -> None:
    assert llm.kv_bytes_per_token(variant("prod", shape)) == expected


@pytest.mark.parametrize(("kv_cache_dtype", "expected"), [
    ("fp8", 65536),      # 2 x 32 x 8 x 128 = 65536 elements x 1 byte
    ("fp8_e5m2", 65536),
])
def test_vllm_fp8_kv_cache_halves_the_bytes(kv_cache_dtype: str, expected: int) -> None:
    assert llm.kv_bytes_per_token(variant("prod", {"llm": {"kv_cache_dtype": kv_cache_dtype}})) == expected


@pytest.mark.parametrize(("kv_cache_dtype", "expected"), [
    ("auto", 131072),  # Ollama's default f16
    ("f16", 131072),
    ("q8_0", 69632),   # 65536 elements / 32 per block x 34 bytes (32 x int8 + fp16 scale)
    ("q4_0", 36864),   # 65536 / 32 x 18 bytes (32 x 4 bits + fp16 scale)
])
def test_ollama_kv_cache_types(kv_cache_dtype: str, expected: int) -> None:
    assert llm.kv_bytes_per_token(variant("dev", {"llm": {"kv_cache_dtype": kv_cache_dtype}})) == expected


def test_kv_heads_are_replicated_when_tensor_parallelism_exceeds_them() -> None:
    # vLLM keeps at least one KV head per GPU: 16 GPUs, 8 kv heads -> 16 heads stored.
    profile = variant("prod", {"hardware": {"gpu": {"count": 16}}})
    assert llm.kv_bytes_per_token(profile) == 2 * 32 * 16 * 128 * 2
    assert llm.kv_bytes_per_token(variant("prod", {"hardware": {"gpu": {"count": 8}}})) == 131072


# ---------------------------------------------------------------- weights, reserve, budget
def test_weight_bytes() -> None:
    assert llm.weight_bytes(variant("prod", {}).llm) == 16_000_000_000  # 8e9 x 2 bytes
    assert llm.weight_bytes(variant("dev", {}).llm) == 4_000_000_000  # 8e9 x 0.5 byte (int4)
    assert llm.weight_bytes(variant("prod", LLAMA_70B).llm) == 140_000_000_000
    assert llm.weight_bytes(variant("prod", {"llm": {"model": {"dtype": "fp8"}}}).llm) == 8_000_000_000


def test_activation_reserve_rule() -> None:
    # 8B bf16 on one GPU: 16e9 / 10 = 1.6e9 < 2 GiB -> 2 GiB.
    assert llm.activation_reserve(variant("prod", {})) == 2 * GIB
    # 70B bf16 on 4 GPUs: 35e9 per GPU / 10 = 3.5e9 bytes = 3337.86 MiB -> 3338 MiB per GPU, x 4.
    profile = variant("prod", {**LLAMA_70B, "hardware": {"gpu": {"count": 4}}})
    assert llm.activation_reserve(profile) == 4 * 3338 * MIB
    # 8B bf16 on 2 GPUs: 0.8e9 per GPU -> the 2 GiB floor on each.
    assert llm.activation_reserve(variant("prod", {"hardware": {"gpu": {"count": 2}}})) == 4 * GIB
    # An explicit reserve is taken as given (all GPUs together).
    assert llm.activation_reserve(variant("prod", {"llm": {"activation_reserve": "3GiB"}})) == 3 * GIB


def test_prod_budget() -> None:
    b = llm.gpu_budget(variant("prod", {}))
    assert b.budget == 64 * GIB  # 0.80 x 80 GiB x 1
    assert b.kv_cache_bytes == 64 * GIB - 16_000_000_000 - 2 * GIB == 50_571_993_088
    assert b.kv_cache_tokens == 385_833  # 50571993088 // 131072
    assert b.concurrency == 47  # 385833 // 8192
    assert b.tokens_wanted == 64 * 8192


def test_dev_budget() -> None:
    b = llm.gpu_budget(variant("dev", {}))
    assert b.budget == 20_615_843_020  # 0.80 x 24 GiB, rounded down to a byte
    assert b.kv_cache_tokens == (20_615_843_020 - 4_000_000_000 - 2 * GIB) // 131072 == 110_384
    assert b.concurrency == 13


def test_70b_on_four_h100s() -> None:
    profile = variant("prod", {**LLAMA_70B, "hardware": {"gpu": {"count": 4}}})
    b = llm.gpu_budget(profile)
    assert b.budget == 4 * 64 * GIB
    # (256 GiB - 140e9 - 4 x 3338 MiB) / 320 KiB
    assert b.kv_cache_tokens == (256 * GIB - 140_000_000_000 - 4 * 3338 * MIB) // 327680 == 368_888


def test_explain_shows_each_term_of_kv_cache_tokens() -> None:
    result = run_cli("explain", "prod", "llm.kv_cache_tokens")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "llm.kv_cache_tokens = 385833"
    assert "(budget 64GiB - weights 14.90GiB - activation reserve 2GiB) = 47.10GiB (50571993088 bytes) / " \
           "131072 bytes per token, rounded down" in result.stdout
    for term in ("budget=64GiB", "weights=14.90GiB", "activation_reserve=2GiB", "kv_bytes_per_token=131072",
                 "gpu_memory_utilization=0.8", "gpu_memory=80GiB", "gpu_count=1"):
        assert term in result.stdout
    result = run_cli("explain", "prod", "llm.kv_cache_bytes_per_token")
    assert "2 (K and V) x layers 32 x kv_heads 8 x head_dim 128 x 16 bits (bf16) / 8 = 131072 bytes" in result.stdout
    result = run_cli("explain", "prod", "llm.activation_reserve")
    assert "max(2GiB, weights on that GPU / 10)" in result.stdout


# ---------------------------------------------------------------- vLLM
PROD_ARGS = [
    "--model=meta-llama/Llama-3.1-8B-Instruct",
    "--served-model-name=meta-llama/Llama-3.1-8B-Instruct",
    "--dtype=bfloat16",
    "--kv-cache-dtype=auto",
    "--gpu-memory-utilization=0.8",
    "--max-model-len=8192",
    "--max-num-seqs=64",
    "--max-num-batched-tokens=8192",
    "--tensor-parallel-size=1",
    "--enable-prefix-caching",
    "--block-size=16",
    "--host=0.0.0.0",
    "--port=8000",
]


def _args_file_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_prod_vllm_args_pin_every_flag() -> None:
    bundle = rendered_bundle("prod")
    assert "llm/ollama.env" not in bundle.files
    assert _args_file_lines(bundle.files["llm/vllm.args"]) == PROD_ARGS
    assert container(bundle)["command"] == ["vllm", "serve"]
    assert container(bundle)["args"] == PROD_ARGS


def test_vllm_flags_follow_the_profile() -> None:
    args = llm.vllm_args(llm.vllm_settings(variant("prod", {
        "hardware": {"gpu": {"count": 2, "memory": "48GiB"}},
        "llm": {"prefix_caching": False, "model": {"dtype": "fp8"}, "kv_cache_dtype": "fp8",
                "max_model_len": 4096, "max_num_seqs": 16, "gpu_memory_utilization": "90%", "port": 8080}})))
    assert args == [
        "--model=meta-llama/Llama-3.1-8B-Instruct", "--served-model-name=meta-llama/Llama-3.1-8B-Instruct",
        "--dtype=bfloat16", "--quantization=fp8", "--kv-cache-dtype=fp8", "--gpu-memory-utilization=0.9",
        "--max-model-len=4096", "--max-num-seqs=16", "--max-num-batched-tokens=2048", "--tensor-parallel-size=2",
        "--no-enable-prefix-caching", "--block-size=16", "--host=0.0.0.0", "--port=8080"]


def test_quantized_checkpoints_compute_in_float16() -> None:
    args = llm.vllm_args(llm.vllm_settings(variant("prod", {"llm": {"model": {"dtype": "int4"}}})))
    assert "--dtype=float16" in args and not any(a.startswith("--quantization") for a in args)


def test_vllm_deployment_keeps_the_model_for_the_pod_life_and_warms_up() -> None:
    bundle = rendered_bundle("prod")
    dep = deployment(bundle)
    c = container(bundle)
    assert "replicas" not in dep["spec"], "the HorizontalPodAutoscaler owns the replica count"
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert c["resources"] == {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}
    assert c["image"] == "vllm/vllm-openai:v0.10.2"
    # Startup probe: one real completion request; 2 x load_time (240 s) in tries of 10 s.
    probe = c["startupProbe"]
    assert probe["periodSeconds"] == 10 and probe["failureThreshold"] == 24
    assert probe["timeoutSeconds"] == 125  # load_time 120 s + slo.llm_latency_p95 5 s
    command = probe["exec"]["command"]
    assert command[0] == "curl" and command[-1] == "http://127.0.0.1:8000/v1/completions"
    assert "--fail" in command and command[command.index("--max-time") + 1] == "125"
    body = json.loads(command[command.index("-d") + 1])
    assert body == {"model": "meta-llama/Llama-3.1-8B-Instruct", "prompt": llm.WARMUP_PROMPT, "max_tokens": 1}
    assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert llm.startup_budget_ms(variant("prod", {})) == 240_000
    spec = dep["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 180  # request_timeout
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in spec["volumes"]
    service = next(o for o in bundle.objects if o["kind"] == "Service" and o["metadata"]["name"] == LLM_SERVER)
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert set(service["spec"]["selector"].items()) <= set(dep["spec"]["template"]["metadata"]["labels"].items())


def test_startup_probe_without_warmup_polls_health() -> None:
    probe = llm.startup_probe(variant("prod", {"llm": {"warmup": False}}))
    assert probe == {"periodSeconds": 10, "failureThreshold": 24, "timeoutSeconds": 5,
                     "httpGet": {"path": "/health", "port": "http"}}


def test_startup_timeout_rounds_up_to_whole_tries() -> None:
    assert llm.startup_probe(variant("prod", {"llm": {"startup_timeout": "119s"}}))["failureThreshold"] == 12
    assert llm.startup_probe(variant("prod", {"llm": {"startup_timeout": "5m"}}))["failureThreshold"] == 30


# ---------------------------------------------------------------- Ollama
DEV_ENV = {
    "OLLAMA_CONTEXT_LENGTH": "8192",
    "OLLAMA_FLASH_ATTENTION": "true",
    "OLLAMA_GPU_OVERHEAD": str(24 * GIB - 20_615_843_020),  # 24 GiB x (1 - 0.80), bytes per GPU
    "OLLAMA_HOST": "0.0.0.0:8000",
    "OLLAMA_KEEP_ALIVE": "5m",
    "OLLAMA_KV_CACHE_TYPE": "f16",
    "OLLAMA_LOAD_TIMEOUT": "4m",
    "OLLAMA_MAX_LOADED_MODELS": "1",
    "OLLAMA_MAX_QUEUE": "512",
    "OLLAMA_NUM_PARALLEL": "4",
}


def _env_file(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_dev_ollama_env() -> None:
    bundle = rendered_bundle("dev")
    assert "llm/vllm.args" not in bundle.files
    assert _env_file(bundle.files["llm/ollama.env"]) == DEV_ENV
    config = next(o for o in bundle.objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == llm.CONFIG_MAP)
    assert config["data"] == DEV_ENV


def test_ollama_env_follows_the_profile() -> None:
    items = llm.ollama_settings(variant("dev", {"llm": {
        "keep_alive": "1d", "max_num_seqs": 2, "max_loaded_models": 2, "max_queue": 64, "flash_attention": False,
        "kv_cache_dtype": "q8_0", "max_model_len": 4096, "load_time": "90s"}}))
    env = {s.key: s.text for s in items}
    assert env["OLLAMA_KEEP_ALIVE"] == "24h"  # Go durations have no 'd'
    assert env["OLLAMA_NUM_PARALLEL"] == "2"
    assert env["OLLAMA_MAX_LOADED_MODELS"] == "2"
    assert env["OLLAMA_MAX_QUEUE"] == "64"
    assert env["OLLAMA_FLASH_ATTENTION"] == "false"
    assert env["OLLAMA_KV_CACHE_TYPE"] == "q8_0"
    assert env["OLLAMA_CONTEXT_LENGTH"] == "4096"
    assert env["OLLAMA_LOAD_TIMEOUT"] == "3m"  # 2 x 90 s
    assert units.format_duration_go(0) == "0s" and units.format_duration_go(150) == "150ms" and units.format_duration_go(90_000) == "90s"


def test_ollama_deployment_loads_on_first_request_and_unloads_after_keep_alive() -> None:
    bundle = rendered_bundle("dev")
    dep = deployment(bundle)
    c = container(bundle)
    assert dep["spec"]["replicas"] == 1, "Ollama is not autoscaled: min_replicas pods"
    assert dep["spec"]["strategy"] == {"type": "Recreate"}  # one GPU: the old pod frees it first
    assert c["command"] == ["ollama", "serve"] and "args" not in c
    assert c["envFrom"] == [{"configMapRef": {"name": llm.CONFIG_MAP}}]
    assert c["image"] == "ollama/ollama:0.12.3"
    probe = c["startupProbe"]
    assert probe["exec"]["command"] == ["ollama", "run", "llama3.1:8b", llm.WARMUP_PROMPT]
    assert probe["failureThreshold"] == 24 and probe["timeoutSeconds"] == 130  # 120 s load + 10 s SLO
    assert c["readinessProbe"]["httpGet"]["path"] == "/api/version"


# ---------------------------------------------------------------- config rolls the pods
@pytest.mark.parametrize(("env", "change"), [
    ("dev", {"llm": {"keep_alive": "10m"}}),
    ("prod", {"llm": {"max_num_seqs": 32}}),
])
def test_a_config_change_changes_the_pod_template_checksum(env: str, change: dict[str, Any]) -> None:
    before, after = rendered_bundle(env), render(variant(env, change))
    for bundle in (before, after):
        config = next(o for o in bundle.objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == llm.CONFIG_MAP)
        annotation = deployment(bundle)["spec"]["template"]["metadata"]["annotations"][CHECKSUM_ANNOTATION]
        assert annotation == checksum_of(config["data"])
    assert (deployment(before)["spec"]["template"]["metadata"]["annotations"]
            != deployment(after)["spec"]["template"]["metadata"]["annotations"])


def test_no_llm_renders_nothing() -> None:
    bundle = render(variant("prod", {"llm": None}))
    assert not any(path.startswith("llm/") for path in bundle.files)
    assert not any(o["metadata"]["name"] in (LLM_SERVER, llm.CONFIG_MAP) for o in bundle.objects)
    assert not any(s.target == "llm" for s in bundle.settings)


def test_committed_files_match_a_fresh_render() -> None:
    from .conftest import REPO
    for env in ("dev", "prod"):
        bundle = rendered_bundle(env)
        for path, text in bundle.files.items():
            if re.match(r"(llm|app|autoscaling)/", path):
                assert (REPO / "rendered" / env / path).read_text() == text, path
