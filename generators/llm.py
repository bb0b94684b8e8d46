"""The LLM inference server: vLLM flags or Ollama's environment, the GPU memory budget, and its Deployment.

The GPU memory budget is an explained computation (`perfstack explain prod llm.kv_cache_tokens`):

    weights            = parameters x bits per weight / 8
    KV bytes per token = 2 (K and V) x layers x kv_heads x head_dim x bytes per KV element
    budget             = gpu_memory_utilization x GPU memory x GPU count
    KV-cache tokens    = (budget - weights - activation reserve) / KV bytes per token
    concurrency        = KV-cache tokens / max_model_len     (sequences that fit at full length)

Keep-alive and warm-up: vLLM keeps its model loaded for the pod's life; Ollama unloads an idle model
after `llm.keep_alive` (OLLAMA_KEEP_ALIVE). With `llm.warmup`, the startup probe *is* one real
completion request, so a pod is Ready only after the model has answered once.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from . import paths, units
from .bundle import Part, Setting
from .profile import Llm, Profile

TARGET = "llm"
CONFIG_MAP = "llm-config"

# Pinned images: flags and env names below are the ones these releases read.
IMAGES = {"vllm": "vllm/vllm-openai:v0.10.2", "ollama": "ollama/ollama:0.12.3"}

# Bits per weight for each model dtype (int4/int8: GPTQ, AWQ or GGUF q4/q8 weights; their small
# per-group scales are left out, as model cards quote sizes).
WEIGHT_BITS = {"fp32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "int4": 4}
# Bits per 32 KV-cache elements: floats are uniform; GGML's q8_0 and q4_0 store each block of 32
# values with one fp16 scale (32 x 8 + 16 = 272 bits, 32 x 4 + 16 = 144 bits).
KV_BITS_PER_32 = {"fp32": 1024, "bf16": 512, "fp16": 512, "f16": 512, "fp8": 256, "fp8_e4m3": 256,
                  "fp8_e5m2": 256, "q8_0": 272, "q4_0": 144}
# vLLM's --dtype is the dtype weights are loaded and activations computed in. Quantized checkpoints
# (GPTQ/AWQ int4/int8) compute in float16; fp8 loads a bf16 checkpoint and quantizes it on load.
VLLM_DTYPE = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "fp8": "bfloat16",
              "int8": "float16", "int4": "float16"}
ACTIVATION_DTYPE = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}

# Activation reserve, per GPU: the peak of vLLM's profiling forward pass plus what lives outside
# PyTorch's allocator (CUDA context, NCCL buffers, CUDA graphs). It grows with the model's width, which
# the profile does not give, so it is taken as a tenth of the weights on that GPU, and never below
# 2 GiB (what an 8B model's context, graphs and an 8192-token prefill step take on one GPU).
ACTIVATION_RESERVE_MIN = 2 * units.GIB
ACTIVATION_RESERVE_WEIGHT_SHARE = 10  # 1/10 of the weights each GPU holds

# Startup probe: one try every PERIOD seconds, as many tries as startup_timeout needs.
STARTUP_PERIOD_S = 10
STARTUP_TIMEOUT_FACTOR = 2  # default startup_timeout: twice load_time (a cold node pulls image and weights)
WARMUP_PROMPT = "Reply with the single word OK."


def _setting(key: str, value: Any, text: str, rule: str, **inputs: Any) -> Setting:
    return Setting(TARGET, key, value, text, rule, inputs)


# ---------------------------------------------------------------- the GPU memory budget
def weight_bytes(llm: Llm) -> int:
    return llm.model.parameters * WEIGHT_BITS[llm.model.dtype] // 8


def vllm_dtype(llm: Llm) -> str:
    return VLLM_DTYPE[llm.model.dtype]


def kv_cache_element(llm: Llm) -> str:
    """The dtype the KV cache is stored in: kv_cache_dtype, or what `auto` means for the server."""
    if llm.kv_cache_dtype != "auto":
        return llm.kv_cache_dtype
    if llm.server == "ollama":
        return "f16"  # OLLAMA_KV_CACHE_TYPE's default
    return ACTIVATION_DTYPE[vllm_dtype(llm)]  # vLLM's auto: the dtype activations are computed in


def tensor_parallel_size(profile: Profile) -> int:
    gpu = profile.hardware.gpu
    return gpu.count if gpu else 1


def kv_heads_stored(profile: Profile) -> int:
    """KV heads the cache holds: vLLM replicates KV heads when tensor parallelism exceeds them."""
    assert profile.llm is not None
    heads = profile.llm.model.kv_heads
    return max(heads, tensor_parallel_size(profile)) if profile.llm.server == "vllm" else heads


def kv_bytes_per_token(profile: Profile) -> int:
    """2 (K and V) x layers x kv_heads x head_dim x bytes per element."""
    assert profile.llm is not None
    model = profile.llm.model
    elements = 2 * model.layers * kv_heads_stored(profile) * model.head_dim
    return elements * KV_BITS_PER_32[kv_cache_element(profile.llm)] // 32 // 8


def activation_reserve(profile: Profile) -> int:
    assert profile.llm is not None
    if profile.llm.activation_reserve is not None:
        return profile.llm.activation_reserve
    count = tensor_parallel_size(profile)
    per_gpu = weight_bytes(profile.llm) // count // ACTIVATION_RESERVE_WEIGHT_SHARE
    per_gpu = max(ACTIVATION_RESERVE_MIN, -(-per_gpu // units.MIB) * units.MIB)
    return per_gpu * count


def gpu_memory_budget(profile: Profile) -> int:
    """gpu_memory_utilization x GPU memory x count, in whole bytes (the ratio taken to 1/10000)."""
    assert profile.llm is not None
    gpu = profile.hardware.gpu
    if gpu is None:
        return 0
    return gpu.memory * gpu.count * round(profile.llm.gpu_memory_utilization * 10_000) // 10_000


@dataclass(frozen=True)
class GpuBudget:
    gpu_memory: int  # per GPU
    gpu_count: int
    utilization: float
    budget: int
    weights: int
    activation_reserve: int
    kv_bytes_per_token: int
    max_model_len: int
    max_num_seqs: int

    @property
    def kv_cache_bytes(self) -> int:
        return max(0, self.budget - self.weights - self.activation_reserve)

    @property
    def kv_cache_tokens(self) -> int:
        return self.kv_cache_bytes // self.kv_bytes_per_token

    @property
    def concurrency(self) -> int:
        """Sequences of max_model_len tokens whose KV cache fits at once."""
        return self.kv_cache_tokens // self.max_model_len

    @property
    def tokens_wanted(self) -> int:
        return self.max_num_seqs * self.max_model_len


def gpu_budget(profile: Profile) -> GpuBudget:
    assert profile.llm is not None
    gpu = profile.hardware.gpu
    return GpuBudget(
        gpu_memory=gpu.memory if gpu else 0, gpu_count=gpu.count if gpu else 0,
        utilization=profile.llm.gpu_memory_utilization, budget=gpu_memory_budget(profile),
        weights=weight_bytes(profile.llm), activation_reserve=activation_reserve(profile),
        kv_bytes_per_token=kv_bytes_per_token(profile), max_model_len=profile.llm.max_model_len,
        max_num_seqs=profile.llm.max_num_seqs)


def budget_settings(profile: Profile) -> list[Setting]:
    assert profile.llm is not None
    llm, b = profile.llm, gpu_budget(profile)
    model = llm.model
    human = units.format_size_human
    kv_element = kv_cache_element(llm)
    heads = kv_heads_stored(profile)
    heads_note = (f" (kv_heads {model.kv_heads} replicated to the tensor-parallel size {heads})"
                  if heads != model.kv_heads else "")
    reserve_rule = ("given by llm.activation_reserve (all GPUs together)" if llm.activation_reserve is not None else
                    f"per GPU: max(2GiB, weights on that GPU / {ACTIVATION_RESERVE_WEIGHT_SHARE}), rounded up to MiB,"
                    f" x {b.gpu_count} GPU(s): the profiling forward pass's activation peak, CUDA context, NCCL"
                    " buffers and CUDA graphs, none of which the KV cache may use")
    remaining = b.budget - b.weights - b.activation_reserve
    terms = {"budget": human(b.budget), "weights": human(b.weights),
             "activation_reserve": human(b.activation_reserve), "kv_bytes_per_token": b.kv_bytes_per_token,
             "gpu_memory_utilization": b.utilization, "gpu_memory": human(b.gpu_memory), "gpu_count": b.gpu_count}
    return [
        _setting("weight_bytes", b.weights, human(b.weights),
                 f"parameters {model.parameters} x {WEIGHT_BITS[model.dtype]} bits ({model.dtype}) / 8",
                 parameters=model.parameters, dtype=model.dtype, bytes=b.weights),
        _setting("kv_cache_bytes_per_token", b.kv_bytes_per_token, human(b.kv_bytes_per_token),
                 f"2 (K and V) x layers {model.layers} x kv_heads {heads}{heads_note} x head_dim {model.head_dim} "
                 f"x {KV_BITS_PER_32[kv_element] / 32:g} bits ({kv_element}) / 8 = {b.kv_bytes_per_token} bytes",
                 layers=model.layers, kv_heads=heads, head_dim=model.head_dim, kv_cache_dtype=kv_element,
                 bytes=b.kv_bytes_per_token),
        _setting("activation_reserve", b.activation_reserve, human(b.activation_reserve), reserve_rule,
                 weights=human(b.weights), gpu_count=b.gpu_count, bytes=b.activation_reserve),
        _setting("gpu_memory_budget", b.budget, human(b.budget),
                 f"gpu_memory_utilization {b.utilization:g} x GPU memory {human(b.gpu_memory)} x count {b.gpu_count}",
                 gpu_memory_utilization=b.utilization, gpu_memory=human(b.gpu_memory), gpu_count=b.gpu_count,
                 bytes=b.budget),
        _setting("kv_cache_tokens", b.kv_cache_tokens, str(b.kv_cache_tokens),
                 f"(budget {human(b.budget)} - weights {human(b.weights)} - activation reserve "
                 f"{human(b.activation_reserve)}) = {human(max(0, remaining))} ({max(0, remaining)} bytes) / "
                 f"{b.kv_bytes_per_token} bytes per token, rounded down", **terms),
        _setting("max_concurrent_sequences", b.concurrency, str(b.concurrency),
                 f"kv_cache_tokens {b.kv_cache_tokens} / max_model_len {b.max_model_len}, rounded down: sequences at "
                 f"full length whose KV cache fits at once (max_num_seqs asks for {b.max_num_seqs})",
                 kv_cache_tokens=b.kv_cache_tokens, max_model_len=b.max_model_len, max_num_seqs=b.max_num_seqs),
    ]


# ---------------------------------------------------------------- vLLM
def vllm_settings(profile: Profile) -> list[Setting]:
    assert profile.llm is not None
    llm = profile.llm
    given = "given by llm.{}".format
    tp = tensor_parallel_size(profile)
    gpu = profile.hardware.gpu
    big_gpu = gpu is not None and gpu.memory >= 70 * units.GIB
    batched = 8192 if big_gpu else 2048
    items = [
        _setting("model", llm.model.name, llm.model.name, "given by llm.model.name"),
        _setting("served-model-name", llm.model.name, llm.model.name,
                 "the model's name, so clients and metrics (model_name label) use the profile's name"),
        _setting("dtype", vllm_dtype(llm), vllm_dtype(llm),
                 f"llm.model.dtype {llm.model.dtype}: weights loaded and activations computed in {vllm_dtype(llm)}",
                 model_dtype=llm.model.dtype),
    ]
    if llm.model.dtype == "fp8":
        items.append(_setting("quantization", "fp8", "fp8", "llm.model.dtype fp8: quantize the weights on load"))
    items += [
        _setting("kv-cache-dtype", llm.kv_cache_dtype, llm.kv_cache_dtype, given("kv_cache_dtype")),
        _setting("gpu-memory-utilization", llm.gpu_memory_utilization, f"{llm.gpu_memory_utilization:g}",
                 given("gpu_memory_utilization") + " (pinned: vLLM's default moved from 0.9 to 0.92)"),
        _setting("max-model-len", llm.max_model_len, str(llm.max_model_len), given("max_model_len")),
        _setting("max-num-seqs", llm.max_num_seqs, str(llm.max_num_seqs),
                 given("max_num_seqs") + " (pinned: vLLM's default is 256, or 1024 on large GPUs)"),
        _setting("max-num-batched-tokens", batched, str(batched),
                 "tokens per scheduler step (chunked prefill): 8192 on GPUs of 70GiB and more, else 2048, as vLLM "
                 "V1's API server picks, pinned so an upgrade does not change the activation peak",
                 gpu_memory=units.format_size_human(gpu.memory) if gpu else None),
        _setting("tensor-parallel-size", tp, str(tp), "hardware.gpu.count: the model is split across every GPU",
                 gpu_count=tp),
        _setting("enable-prefix-caching", llm.prefix_caching, "true" if llm.prefix_caching else "false",
                 given("prefix_caching") + " (pinned: the default changed between releases)"),
        _setting("block-size", 16, "16", "KV-cache block of 16 tokens (vLLM's CUDA default, pinned)"),
        _setting("host", "0.0.0.0", "0.0.0.0", "listen on the pod's address for the Service"),
        _setting("port", llm.port, str(llm.port), given("port")),
        _setting("keep_alive", None, "pod lifetime",
                 "vLLM loads its model at start and keeps it until the pod stops; llm.keep_alive only sizes the "
                 "autoscaler's scale-down stabilization", keep_alive=units.format_duration_go(llm.keep_alive)),
    ]
    return items


def vllm_args(items: list[Setting]) -> list[str]:
    """The settings as `vllm serve` arguments, one `--flag=value` each (booleans as --flag / --no-flag)."""
    args = []
    for s in items:
        if s.key == "keep_alive":
            continue
        if isinstance(s.value, bool):
            args.append(f"--{s.key}" if s.value else f"--no-{s.key}")
        else:
            args.append(f"--{s.key}={s.text}")
    return args


def vllm_args_file(profile: Profile, items: list[Setting]) -> str:
    lines = [f"# vLLM arguments for {profile.environment}, rendered by perfstack: do not edit.",
             "# Every value is pinned (vLLM's defaults moved between releases). Use as:",
             "#   vllm serve $(grep -v '^#' vllm.args)"]
    flags = dict(zip([s.key for s in items if s.key != "keep_alive"], vllm_args(items), strict=True))
    for s in items:
        if s.key in flags:
            lines.append(f"# {s.rule}")
            lines.append(flags[s.key])
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Ollama
def startup_timeout(profile: Profile) -> int:
    assert profile.llm is not None
    llm = profile.llm
    return llm.startup_timeout if llm.startup_timeout is not None else STARTUP_TIMEOUT_FACTOR * llm.load_time


def ollama_settings(profile: Profile) -> list[Setting]:
    assert profile.llm is not None
    llm = profile.llm
    gpu = profile.hardware.gpu
    overhead = gpu.memory - gpu.memory * round(llm.gpu_memory_utilization * 10_000) // 10_000 if gpu else 0
    kv_type = kv_cache_element(llm)
    bool_text = "true" if llm.flash_attention else "false"
    load = startup_timeout(profile)
    return [
        _setting("OLLAMA_HOST", f"0.0.0.0:{llm.port}", f"0.0.0.0:{llm.port}",
                 "listen on the pod's address at llm.port for the Service"),
        _setting("OLLAMA_KEEP_ALIVE", llm.keep_alive, units.format_duration_go(llm.keep_alive),
                 "given by llm.keep_alive: an idle model is unloaded after this long (0 unloads at once)",
                 keep_alive=units.format_duration_go(llm.keep_alive)),
        _setting("OLLAMA_NUM_PARALLEL", llm.max_num_seqs, str(llm.max_num_seqs),
                 "llm.max_num_seqs: requests one loaded model serves at once (each gets its own context)"),
        _setting("OLLAMA_CONTEXT_LENGTH", llm.max_model_len, str(llm.max_model_len), "llm.max_model_len"),
        _setting("OLLAMA_MAX_LOADED_MODELS", llm.max_loaded_models, str(llm.max_loaded_models),
                 "given by llm.max_loaded_models (pinned: Ollama's 0 means 3 x GPUs)"),
        _setting("OLLAMA_MAX_QUEUE", llm.max_queue, str(llm.max_queue),
                 "given by llm.max_queue: requests waiting beyond it get HTTP 503"),
        _setting("OLLAMA_FLASH_ATTENTION", llm.flash_attention, bool_text,
                 "given by llm.flash_attention (a quantized KV cache needs it)"),
        _setting("OLLAMA_KV_CACHE_TYPE", kv_type, kv_type,
                 "llm.kv_cache_dtype" + (" auto: Ollama's f16" if llm.kv_cache_dtype == "auto" else "")),
        _setting("OLLAMA_GPU_OVERHEAD", overhead, str(overhead),
                 "GPU memory x (1 - gpu_memory_utilization), bytes kept free on each GPU: Ollama's form of "
                 "gpu_memory_utilization", gpu_memory=units.format_size_human(gpu.memory) if gpu else None,
                 gpu_memory_utilization=llm.gpu_memory_utilization),
        _setting("OLLAMA_LOAD_TIMEOUT", load, units.format_duration_go(load),
                 "the startup probe's budget: Ollama gives up on a stalled load no sooner than Kubernetes does",
                 startup_timeout=units.format_duration_go(load)),
    ]


def env_file(profile: Profile, items: list[Setting]) -> str:
    lines = [f"# Ollama environment for {profile.environment}, rendered by perfstack: do not edit."]
    for s in sorted(items, key=lambda s: s.key):
        lines.append(f"# {s.rule}")
        lines.append(f"{s.key}={s.text}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Kubernetes
def warmup_command(profile: Profile) -> list[str]:
    """One real completion request: it succeeds only when the model is loaded and answers."""
    assert profile.llm is not None
    llm = profile.llm
    if llm.server == "ollama":
        # The image has no curl; the CLI talks to OLLAMA_HOST, loads the model (pulling it if absent).
        return ["ollama", "run", llm.model.name, WARMUP_PROMPT]
    body = json.dumps({"model": llm.model.name, "prompt": WARMUP_PROMPT, "max_tokens": 1}, sort_keys=True)
    return ["curl", "--fail", "--silent", "--show-error", "--max-time", str(warmup_timeout_s(profile)),
            "-H", "Content-Type: application/json", "-d", body, f"http://127.0.0.1:{llm.port}/v1/completions"]


def warmup_timeout_s(profile: Profile) -> int:
    """A warm-up request may load the model (Ollama loads on first use), then answers within the latency SLO."""
    assert profile.llm is not None
    return max(1, units.seconds_up(profile.llm.load_time + profile.slo.llm_latency_p95))


def health_path(profile: Profile) -> str:
    assert profile.llm is not None
    return "/health" if profile.llm.server == "vllm" else "/api/version"


def startup_probe(profile: Profile) -> dict[str, Any]:
    assert profile.llm is not None
    tries = max(1, math.ceil(startup_timeout(profile) / (STARTUP_PERIOD_S * 1000)))
    probe: dict[str, Any] = {"periodSeconds": STARTUP_PERIOD_S, "failureThreshold": tries}
    if profile.llm.warmup:
        probe["exec"] = {"command": warmup_command(profile)}
        probe["timeoutSeconds"] = warmup_timeout_s(profile)
    else:
        probe["httpGet"] = {"path": health_path(profile), "port": "http"}
        probe["timeoutSeconds"] = 5
    return probe


def startup_budget_ms(profile: Profile) -> int:
    """What the startup probe allows before Kubernetes restarts the container: tries x period."""
    probe = startup_probe(profile)
    return probe["failureThreshold"] * probe["periodSeconds"] * 1000


def probe_settings(profile: Profile) -> list[Setting]:
    assert profile.llm is not None
    llm = profile.llm
    probe = startup_probe(profile)
    budget = startup_budget_ms(profile)
    source = ("given by llm.startup_timeout" if llm.startup_timeout is not None
              else f"{STARTUP_TIMEOUT_FACTOR} x llm.load_time")
    items = [
        _setting("startup_probe", budget, f"{probe['failureThreshold']} x {STARTUP_PERIOD_S}s = {budget // 1000}s",
                 f"{source} ({units.format_duration_go(startup_timeout(profile))}), in tries of {STARTUP_PERIOD_S}s, rounded up; "
                 "must cover llm.load_time", load_time=units.format_duration_go(llm.load_time),
                 startup_timeout=units.format_duration_go(startup_timeout(profile))),
        _setting("warmup", llm.warmup, "one completion request before Ready" if llm.warmup else "off",
                 "given by llm.warmup: the startup probe sends a real request (timeout load_time + "
                 f"slo.llm_latency_p95 = {warmup_timeout_s(profile)}s); readiness then polls {health_path(profile)}"
                 if llm.warmup else f"given by llm.warmup: the startup probe polls {health_path(profile)}"),
    ]
    return items


def render(profile: Profile) -> Part:
    if profile.llm is None or profile.hardware.gpu is None:
        return Part()  # no LLM server; checks.llm_needs_gpu refuses an llm without hardware.gpu
    if profile.llm.server == "vllm":
        server = vllm_settings(profile)
        args = vllm_args(server)
        files = {paths.VLLM_ARGS: vllm_args_file(profile, server)}
        config = {"vllm.args": files[paths.VLLM_ARGS]}
    else:
        server = ollama_settings(profile)
        args = []
        files = {paths.OLLAMA_ENV: env_file(profile, server)}
        config = {s.key: s.text for s in server}
    items = [*budget_settings(profile), *server, *probe_settings(profile)]
    return Part(settings=items, files=files,
                derived={"gpu_budget": gpu_budget(profile), "startup_probe": startup_probe(profile),
                         "config": config, "args": args})
