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


def _model(name: str, dtype: str = "bf16") -> dict[str, Any]:
    return {"llm": {"model": {"name": name, "dtype": dtype}}}


LLAMA_8B = _model("meta-llama/Llama-3.1-8B-Instruct")
LLAMA_70B = _model("meta-llama/Llama-3.1-70B-Instruct")
QWEN_7B = _model("Qwen/Qwen2.5-7B-Instruct")


def deployment(bundle: Bundle) -> dict[str, Any]:
    return next(o for o in bundle.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == LLM_SERVER)


def container(bundle: Bundle) -> dict[str, Any]:
    return deployment(bundle)["spec"]["template"]["spec"]["containers"][0]


# ---------------------------------------------------------------- KV cache per token, published shapes
@pytest.mark.parametrize(("shape", "expected"), [
    (LLAMA_8B, 131072),   # 2 x 32 layers x 8 kv heads x 128 x 2 bytes = 128 KiB
    (LLAMA_70B, 327680),  # 2 x 80 x 8 x 128 x 2 = 320 KiB
    (QWEN_7B, 57344),     # 2 x 28 x 4 x 128 x 2 = 56 KiB
    (_model("google/gemma-2-9b-it"), 344064),  # 2 x 42 x 8 x 256 x 2
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


def test_sliding_window_layers_hold_only_their_window() -> None:
    # Gemma 2 9B: 21 full layers x 8192 tokens + 21 sliding layers x 4096 tokens, 8192 bytes per layer-token.
    profile = variant("prod", _model("google/gemma-2-9b-it"))
    assert llm.kv_bytes_per_sequence(profile, 8192) == 8192 * (21 * 8192 + 21 * 4096)
    assert llm.kv_bytes_per_sequence(profile, 1000) == 8192 * 42 * 1000


# ---------------------------------------------------------------- weights
def test_weight_bytes_use_exact_parameter_counts() -> None:
    assert llm.weight_bytes(variant("prod", {})) == 8_030_261_248 * 2
    assert llm.weight_bytes(variant("prod", LLAMA_70B)) == 70_553_706_496 * 2
    assert llm.weight_bytes(variant("prod", QWEN_7B)) == 7_615_616_512 * 2  # "7B" is 7.62B
    assert llm.weight_bytes(variant("prod", {"llm": {"model": {"name": "meta-llama/Llama-3.1-8B-Instruct",
                                                                "dtype": "fp8"}}})) == 9_081_200_640
    # fp8 packs the 6,979,321,856 linear weights into a byte each; embeddings, lm_head and norms stay bf16.


def test_quantized_weights_keep_embeddings_at_16_bits() -> None:
    # Llama 3.1 8B int4: 6,979,321,856 linear weights at 4 bits, the rest (embeddings, lm_head, norms) at 16.
    profile = variant("dev", {})
    linear = 32 * (4096 * 4096 * 2 + 2 * 4096 * 1024 + 3 * 4096 * 14336)
    assert linear == 6_979_321_856
    assert llm.weight_bytes(profile) == (linear * 4 + (8_030_261_248 - linear) * 16) // 8 == 5_591_539_712


# ---------------------------------------------------------------- vLLM's budget, calibrated
def test_llama_3_8b_on_one_h100_lands_within_5_percent_of_vllms_log() -> None:
    """vLLM logged 53.29 GiB of KV cache for Llama-3-8B on one H100 80GB at gpu_memory_utilization 0.9."""
    profile = variant("prod", {"llm": {"model": {"name": "meta-llama/Meta-Llama-3-8B-Instruct"},
                                       "gpu_memory_utilization": 0.9, "max_num_seqs": 256}})
    b = llm.gpu_budget(profile)
    assert b.gpu_memory == int(79.19 * GIB)  # torch-visible, not the nominal 80 GiB
    assert b.max_num_batched_tokens == 8192
    got = b.kv_cache_bytes / GIB
    assert abs(got - 53.29) / 53.29 < 0.05, got
    assert round(got, 2) == 55.28  # the residual (+3.7 %), stated in the README


def test_llama_70b_on_two_h100s_renders_with_a_concurrency_warning() -> None:
    # 141 GB of weights at 100 MiB/s: a 27-minute cold start, which the scale-down window must outlast.
    profile = variant("prod", {**LLAMA_70B, "hardware": {"gpu": {"count": 2}},
                               "llm": {**LLAMA_70B["llm"], "gpu_memory_utilization": 0.9, "max_model_len": 8192,
                                       "max_num_seqs": 8},
                               "autoscaling": {"llm": {"scale_down_stabilization": "30m"}}, "workers": None})
    b = llm.gpu_budget(profile)
    assert b.weights == 70_553_706_496  # per GPU: 141 GB / 2
    assert b.non_torch == llm.NON_TORCH_TENSOR_PARALLEL
    # Working vLLM's profile through by hand gives 2.6-4.3 GiB per GPU, 17k-28k tokens.
    assert 2.6 * GIB <= b.kv_cache_bytes <= 4.3 * GIB
    assert 17_000 <= b.kv_cache_tokens <= 28_000
    assert b.concurrency == 2
    bundle = render(profile)  # renders: no error
    [warning] = [w for w in bundle.warnings if w.check == "llm_fits_gpu"]
    assert warning.severity == "warning" and "2 sequences of full length fit at once" in warning.message
    assert f"--num-gpu-blocks-override={b.kv_cache_blocks}" in container(bundle)["args"]


def test_a_shape_that_cannot_hold_one_sequence_is_refused() -> None:
    from generators.errors import CheckError
    profile = variant("prod", {**LLAMA_70B, "hardware": {"gpu": {"count": 2}},
                               "llm": {**LLAMA_70B["llm"], "gpu_memory_utilization": 0.9, "max_model_len": 32768}})
    with pytest.raises(CheckError, match="one sequence of llm.max_model_len 32768 tokens needs 5GiB of KV cache per "
                                         "GPU.*vLLM would refuse to start"):
        render(profile)


def test_gpu_memory_utilization_of_one_is_refused() -> None:
    from generators.errors import ProfileError
    with pytest.raises(ProfileError, match="gpu_memory_utilization"):
        variant("prod", {"llm": {"gpu_memory_utilization": 1.0}})


def test_too_little_room_outside_the_share_is_refused() -> None:
    from generators.errors import CheckError
    with pytest.raises(CheckError, match="CUDA graphs"):
        render(variant("prod", {"llm": {"gpu_memory_utilization": 0.99}}))


def test_prod_budget() -> None:
    b = llm.gpu_budget(variant("prod", {}))
    assert b.requested == int(79.19 * GIB) * 8000 // 10_000
    assert b.weights == 16_060_522_496
    # forward at 8192 tokens: 2 x 8192 x 4096 x 2 (stream) + 3 x 8192 x 14336 x 2 (MLP)
    assert b.activation == 2 * 8192 * 4096 * 2 + 3 * 8192 * 14336 * 2
    assert b.sampler == 8192 * 4096 * 2 + 64 * 128256 * 22
    assert b.kv_cache_blocks == (b.requested - b.weights - b.activation - b.non_torch) // (131072 * 16)
    assert b.kv_cache_tokens == b.kv_cache_blocks * 16 == 387_984
    assert b.concurrency == 47


def test_a100_batches_2048_tokens_as_vllm_picks() -> None:
    profile = variant("prod", {"hardware": {"gpu": {"model": "A100", "memory": "80GiB"}}})
    assert llm.max_num_batched_tokens(profile) == 2048
    assert llm.gpu_budget(profile).gpu_memory == int(79.15 * GIB)


def test_unknown_gpu_uses_visible_memory_or_a_stated_share() -> None:
    given = variant("prod", {"hardware": {"gpu": {"model": "B200", "memory": "180GiB", "visible_memory": "178GiB"}}})
    assert llm.gpu_budget(given).gpu_memory == 178 * GIB
    guessed = variant("prod", {"hardware": {"gpu": {"model": "B200", "memory": "180GiB"}}})
    assert llm.gpu_budget(guessed).gpu_memory == int(180 * GIB * 0.97)


def test_explain_shows_each_term_of_kv_cache_tokens() -> None:
    result = run_cli("explain", "prod", "llm.kv_cache_tokens")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "llm.kv_cache_tokens = 387984"
    for term in ("torch_visible_memory=79.19GiB", "gpu_memory_utilization=0.8", "requested=63.35GiB",
                 "weights_per_gpu=14.96GiB", "activation_peak=800MiB", "sampler_peak=", "non_torch_memory=256MiB",
                 "kv_bytes_per_token_per_gpu=131072", "gpu_count=1"):
        assert term in result.stdout, term
    result = run_cli("explain", "prod", "llm.kv_cache_bytes_per_token")
    assert "2 (K and V) x layers 32 x kv_heads 8 x head_dim 128 x 16 bits (bf16) / 8" in result.stdout
    result = run_cli("explain", "prod", "llm.model.architecture")
    assert "hidden 4096, intermediate 14336, 32 layers (32 full-attention layers), 32 attention heads, 8 KV heads " \
           "of 128, vocabulary 128256" in result.stdout
    assert "parameters=8030261248" in result.stdout


# ---------------------------------------------------------------- vLLM
PROD_ARGS = [
    "meta-llama/Llama-3.1-8B-Instruct",
    "--served-model-name=meta-llama/Llama-3.1-8B-Instruct",
    "--dtype=bfloat16",
    "--kv-cache-dtype=auto",
    "--gpu-memory-utilization=0.8",
    "--num-gpu-blocks-override=24249",
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
        "hardware": {"gpu": {"count": 2, "memory": "48GiB", "model": "L40S"}},
        "llm": {"prefix_caching": False, "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "dtype": "fp8"},
                "kv_cache_dtype": "fp8",
                "max_model_len": 4096, "max_num_seqs": 16, "gpu_memory_utilization": "90%", "port": 8080}})))
    assert args == [
        "meta-llama/Llama-3.1-8B-Instruct", "--served-model-name=meta-llama/Llama-3.1-8B-Instruct",
        "--dtype=bfloat16", "--quantization=fp8", "--kv-cache-dtype=fp8", "--gpu-memory-utilization=0.9",
        "--num-gpu-blocks-override=70879", "--max-model-len=4096", "--max-num-seqs=16", "--max-num-batched-tokens=2048", "--tensor-parallel-size=2",
        "--no-enable-prefix-caching", "--block-size=16", "--host=0.0.0.0", "--port=8080"]


def test_quantized_checkpoints_compute_in_float16() -> None:
    args = llm.vllm_args(llm.vllm_settings(variant("prod", _model("meta-llama/Llama-3.1-8B-Instruct", "int4"))))
    assert "--dtype=float16" in args and not any(a.startswith("--quantization") for a in args)


def test_vllm_deployment_keeps_the_model_for_the_pod_life_and_warms_up() -> None:
    bundle = rendered_bundle("prod")
    dep = deployment(bundle)
    c = container(bundle)
    assert "replicas" not in dep["spec"], "the HorizontalPodAutoscaler owns the replica count"
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    # CPU and memory requested (never BestEffort), memory limited at the request.
    assert c["resources"] == {"requests": {"cpu": "6000m", "memory": "24Gi", "nvidia.com/gpu": "1"},
                              "limits": {"cpu": "12000m", "memory": "24Gi", "nvidia.com/gpu": "1"}}
    assert c["image"] == "vllm/vllm-openai:v0.10.2"
    # Startup probe: one real completion request; 2 x load_time (2 x 331 s) in tries of 10 s.
    probe = c["startupProbe"]
    assert probe["periodSeconds"] == 10 and probe["failureThreshold"] == 67
    assert probe["timeoutSeconds"] == 336  # load_time 331 s + slo.llm_latency_p95 5 s
    command = probe["exec"]["command"]
    assert command[0] == "curl" and command[-1] == "http://127.0.0.1:8000/v1/completions"
    assert "--fail" in command and command[command.index("--max-time") + 1] == "336"
    body = json.loads(command[command.index("-d") + 1])
    assert body == {"model": "meta-llama/Llama-3.1-8B-Instruct", "prompt": llm.WARMUP_PROMPT, "max_tokens": 1}
    assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert llm.startup_budget_ms(variant("prod", {})) == 670_000
    spec = dep["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 180  # request_timeout
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}} in spec["volumes"]
    service = next(o for o in bundle.objects if o["kind"] == "Service" and o["metadata"]["name"] == LLM_SERVER)
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert set(service["spec"]["selector"].items()) <= set(dep["spec"]["template"]["metadata"]["labels"].items())


def test_startup_probe_without_warmup_polls_health() -> None:
    probe = llm.startup_probe(variant("prod", {"llm": {"warmup": False}}))
    assert probe == {"periodSeconds": 10, "failureThreshold": 67, "timeoutSeconds": 5,
                     "httpGet": {"path": "/health", "port": "http"}}


def test_startup_timeout_rounds_up_to_whole_tries() -> None:
    assert llm.startup_probe(variant("prod", {"llm": {"startup_timeout": "119s"}}))["failureThreshold"] == 12
    assert llm.startup_probe(variant("prod", {"llm": {"startup_timeout": "5m"}}))["failureThreshold"] == 30


# ---------------------------------------------------------------- Ollama
DEV_ENV = {
    "OLLAMA_CONTEXT_LENGTH": "8192",
    "OLLAMA_FLASH_ATTENTION": "true",
    "OLLAMA_GPU_OVERHEAD": "4730906477",  # torch-visible 22.03 GiB x (1 - 0.80), bytes per GPU
    "OLLAMA_HOST": "0.0.0.0:8000",
    "OLLAMA_KEEP_ALIVE": "-1",  # the pod owns its GPU: never unload
    "OLLAMA_KV_CACHE_TYPE": "f16",
    "OLLAMA_LOAD_TIMEOUT": "322s",  # 2 x load_time 161 s
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
        "max_num_seqs": 2, "max_loaded_models": 2, "max_queue": 64, "flash_attention": False,
        "kv_cache_dtype": "q8_0", "max_model_len": 4096, "load_time": "90s"}}))
    env = {s.key: s.text for s in items}
    assert env["OLLAMA_KEEP_ALIVE"] == "-1"
    assert env["OLLAMA_NUM_PARALLEL"] == "2"
    assert env["OLLAMA_MAX_LOADED_MODELS"] == "2"
    assert env["OLLAMA_MAX_QUEUE"] == "64"
    assert env["OLLAMA_FLASH_ATTENTION"] == "false"
    assert env["OLLAMA_KV_CACHE_TYPE"] == "q8_0"
    assert env["OLLAMA_CONTEXT_LENGTH"] == "4096"
    assert env["OLLAMA_LOAD_TIMEOUT"] == "3m"  # 2 x 90 s
    assert units.format_duration_go(0) == "0s" and units.format_duration_go(150) == "150ms" and units.format_duration_go(90_000) == "90s"


def test_ollama_deployment_loads_on_first_request_and_keeps_the_model() -> None:
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
    assert probe["failureThreshold"] == 33 and probe["timeoutSeconds"] == 171  # 161 s load + 10 s SLO
    assert c["readinessProbe"]["httpGet"]["path"] == "/api/version"


# ---------------------------------------------------------------- config rolls the pods
@pytest.mark.parametrize(("env", "change"), [
    ("dev", {"llm": {"max_num_seqs": 2}}),
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


# ---------------------------------------------------------------- deployable as rendered
def test_the_pod_starts_as_rendered() -> None:
    bundle = rendered_bundle("prod")
    c = container(bundle)
    spec = deployment(bundle)["spec"]["template"]["spec"]
    # the gated model downloads with a token from a Secret reference, never a literal
    assert c["env"] == [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "HF_TOKEN"}}}]
    # weights on a cache that survives restarts: a PVC of twice the weights (16.06 GB -> 30 GiB), shared
    assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": "llm-model-cache"}} in spec["volumes"]
    assert {"name": "model-cache", "mountPath": "/root/.cache/huggingface"} in c["volumeMounts"]
    claim = next(o for o in bundle.objects if o["kind"] == "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "llm-model-cache"
    assert claim["spec"] == {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "30Gi"}}}
    # on the GPU the budget was sized for, by GPU feature discovery's label
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    # one LLM pod at a time through a drain
    pdb = next(o for o in bundle.objects if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == LLM_SERVER)
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": deployment(bundle)["spec"]["selector"]}
    # the positional model argument, not the deprecated --model=
    assert c["command"] == ["vllm", "serve"] and c["args"][0] == "meta-llama/Llama-3.1-8B-Instruct"
    assert not any(a.startswith("--model=") for a in c["args"])


def test_pod_placement_and_cache_follow_the_profile() -> None:
    bundle = render(variant("prod", {
        "hardware": {"gpu": {"model": "A100", "memory": "80GiB", "node_label": "cloud.example.com/accelerator",
                             "product": "a100-80gb"}},
        "llm": {"model_cache": {"kind": "host_path", "path": "/mnt/models"}, "resources": {"cpu": 3, "memory": "40GiB"}},
        "autoscaling": {"llm": {"max_replicas": 1}}, "workers": None}))
    spec = deployment(bundle)["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"cloud.example.com/accelerator": "a100-80gb"}
    assert {"name": "model-cache", "hostPath": {"path": "/mnt/models", "type": "DirectoryOrCreate"}} in spec["volumes"]
    assert not any(o["kind"] == "PersistentVolumeClaim" for o in bundle.objects)
    assert spec["containers"][0]["resources"]["requests"] == {"cpu": "3000m", "memory": "40Gi", "nvidia.com/gpu": "1"}
    assert deployment(bundle)["spec"]["strategy"] == {"type": "Recreate"}


def test_an_open_model_needs_no_token() -> None:
    bundle = render(variant("prod", {"llm": {"model": {"name": "Qwen/Qwen2.5-7B-Instruct"}},
                                     "secrets": {"hf_token": None}}))
    assert "env" not in container(bundle)


def test_load_time_is_a_cold_start_at_the_declared_bandwidth() -> None:
    # 10 GiB image + 16,060,522,496 bytes of weights at 100 MiB/s, read at 1 GiB/s, 60 s engine start
    expected_ms = 10 * 1024 * 1000 // 100 + 16_060_522_496 * 1000 // (100 * MIB) + 16_060_522_496 * 1000 // GIB + 60_000
    assert llm.load_time(variant("prod", {})) == -(-expected_ms // 1000) * 1000 == 331_000
    faster = variant("prod", {"llm": {"download_bandwidth": "1GiB"}})
    assert llm.load_time(faster) == 100_000  # 10 + 15 s of pulls, 15 s of reading, 60 s engine start
    assert llm.load_time(variant("prod", {"llm": {"load_time": "8m"}})) == 480_000
