"""The LLM server: vLLM flags or Ollama's environment, the GPU memory budget, and its Deployment.

The model's shape comes from the catalog (`models.py`, `data/models.json`) or its config.json. The
GPU memory budget follows vLLM 0.10.x's own accounting (v1 `gpu_worker.determine_available_memory`),
per GPU, every term in `perfstack explain prod llm.kv_cache_tokens`:

    torch-visible memory  = what torch.cuda.mem_get_info reports (TORCH_VISIBLE_GIB), not the nominal size
    requested             = gpu_memory_utilization x torch-visible memory
    weights per GPU       = (linear weights x bits + embeddings, lm_head and norms x 16 bits) / 8 / TP
    activation peak       = one profiling forward at max_num_batched_tokens: the residual stream and
                            hidden states (2 x tokens x hidden) plus the widest layer temporary
                            (MLP gate/up + activation: 3 x tokens x intermediate / TP; MoE: x experts per token)
    sampler peak          = max_num_seqs rows of logits over the vocabulary: bf16 logits, fp32 logits,
                            probabilities, sorted values (fp32) and sort indices (int64)
    non-torch memory      = cuBLAS/attention workspaces; NCCL and custom all-reduce buffers at TP > 1
    KV cache per GPU      = requested - weights - max(activation, sampler) - non-torch, in 16-token blocks
    KV-cache tokens       = blocks x 16 (the cache holds the same tokens on every GPU, each its heads)

CUDA graphs and the CUDA context sit outside the utilization share in 0.10.x (graphs are captured
after the KV cache is allocated): `checks.llm_fits_gpu` keeps room for them in the rest. The result is
pinned with `--num-gpu-blocks-override` (vLLM 0.10.2 has no `--kv-cache-memory-bytes`), so the budget
rendered is the budget vLLM uses.

Ollama is sized by its own rules (`ollama_budget`): it reserves NUM_PARALLEL x CONTEXT tokens of KV
cache up front, and what does not fit in GPU memory goes layer by layer to the CPU. A pod owns its
GPU, so the model stays loaded (OLLAMA_KEEP_ALIVE=-1): an idle unload would undo the warm-up while
readiness, which polls /api/version, stays green.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from . import formats, models, paths, units
from .bundle import Part, Setting
from .models import Architecture
from .profile import Llm, Profile

TARGET = "llm"
CONFIG_MAP = "llm-config"

# Pinned images: flags and env names below are the ones these releases read.
IMAGES = {"vllm": "vllm/vllm-openai:v0.10.2", "ollama": "ollama/ollama:0.12.3"}

# Memory PyTorch sees per GPU (torch.cuda.mem_get_info's total, as vLLM logs it as total_gpu_memory and
# PyTorch's out-of-memory messages print it as "total capacity"), by GPU model and nominal GiB. The
# driver and ECC keep the difference. Other GPUs: hardware.gpu.visible_memory, or nominal less 3 %.
TORCH_VISIBLE_GIB: dict[tuple[str, int], float] = {
    ("H100", 80): 79.19, ("H200", 141): 139.81, ("A100", 80): 79.15, ("A100", 40): 39.39,
    ("L40S", 48): 44.39, ("L4", 24): 22.03, ("A10G", 24): 22.19, ("T4", 16): 14.75,
}
UNKNOWN_GPU_VISIBLE_SHARE = 0.97
# NVIDIA GPU feature discovery's nvidia.com/gpu.product values for those GPUs.
GFD_PRODUCT: dict[tuple[str, int], str] = {
    ("H100", 80): "NVIDIA-H100-80GB-HBM3", ("H200", 141): "NVIDIA-H200", ("A100", 80): "NVIDIA-A100-SXM4-80GB",
    ("A100", 40): "NVIDIA-A100-SXM4-40GB", ("L40S", 48): "NVIDIA-L40S", ("L4", 24): "NVIDIA-L4",
    ("A10G", 24): "NVIDIA-A10G", ("T4", 16): "Tesla-T4",
}

# Bits per weight for each model dtype (int4/int8: GPTQ, AWQ or GGUF q4/q8 weights; their small
# per-group scales are left out, as model cards quote sizes). Quantization packs the transformer
# blocks' linear layers only: embeddings, lm_head and norms stay 16-bit.
WEIGHT_BITS = {"fp32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "int4": 4}
UNQUANTIZED_BITS = 16
# Bits per 32 KV-cache elements: floats are uniform; GGML's q8_0 and q4_0 store each block of 32
# values with one fp16 scale (32 x 8 + 16 = 272 bits, 32 x 4 + 16 = 144 bits).
KV_BITS_PER_32 = {"fp32": 1024, "bf16": 512, "fp16": 512, "f16": 512, "fp8": 256, "fp8_e4m3": 256,
                  "fp8_e5m2": 256, "q8_0": 272, "q4_0": 144}
QUANTIZED_KV = frozenset({"q8_0", "q4_0"})
# vLLM's --dtype is the dtype weights are loaded and activations computed in. Quantized checkpoints
# (GPTQ/AWQ int4/int8) compute in float16; fp8 loads a bf16 checkpoint and quantizes it on load.
VLLM_DTYPE = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "fp8": "bfloat16",
              "int8": "float16", "int4": "float16"}
ACTIVATION_DTYPE = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
ACTIVATION_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}

BLOCK_SIZE = 16  # vLLM's CUDA KV-cache block, pinned by --block-size
# Sampler peak per logit element: bf16 logits (2) + fp32 logits (4) + probabilities (4) + sorted values (4)
# + sort indices (int64, 8), for max_num_seqs rows over the vocabulary.
SAMPLER_BYTES_PER_LOGIT = 22
# Memory outside PyTorch's allocator that vLLM's profile counts against the share: cuBLAS and attention
# workspaces on one GPU; NCCL communicators and custom all-reduce buffers when tensor-parallel.
NON_TORCH_SINGLE = units.GIB // 4
NON_TORCH_TENSOR_PARALLEL = units.GIB
# Outside the share in 0.10.x: the CUDA context and the CUDA graphs captured after the KV cache.
OUTSIDE_SHARE = units.GIB + units.GIB // 2
# Ollama (llm/memory.go): a minimum it keeps free on each CUDA GPU, and its batch of 512 tokens.
OLLAMA_MINIMUM_MEMORY = 457 * units.MIB
OLLAMA_BATCH = 512

# Startup probe: one try every PERIOD seconds, as many tries as startup_timeout needs.
STARTUP_PERIOD_S = 10
STARTUP_TIMEOUT_FACTOR = 2  # default startup_timeout: twice load_time
# A cold start beyond the pull and download: reading the weights into the GPU (at a local disk's 1 GiB/s)
# and vLLM's torch.compile and CUDA-graph capture, about a minute.
LOAD_READ_BANDWIDTH = units.GIB
ENGINE_START_MS = 60_000
WARMUP_PROMPT = "Reply with the single word OK."


def _setting(key: str, value: Any, text: str, rule: str, **inputs: Any) -> Setting:
    return Setting(TARGET, key, value, text, rule, inputs)


# ---------------------------------------------------------------- the model
def architecture(profile: Profile) -> Architecture:
    assert profile.llm is not None
    return models.architecture(profile.llm.model)


def gated(profile: Profile) -> bool:
    assert profile.llm is not None
    given = profile.llm.model.gated
    return architecture(profile).gated if given is None else given


def weight_bytes_of(llm: Llm, arch: Architecture) -> int:
    bits = WEIGHT_BITS[llm.model.dtype]
    if bits >= UNQUANTIZED_BITS:
        return arch.parameters * bits // 8
    other = arch.parameters - arch.linear_parameters
    return (arch.linear_parameters * bits + other * UNQUANTIZED_BITS) // 8


def weight_bytes(profile: Profile) -> int:
    assert profile.llm is not None
    return weight_bytes_of(profile.llm, architecture(profile))


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
    heads = architecture(profile).num_key_value_heads
    assert profile.llm is not None
    return max(heads, tensor_parallel_size(profile)) if profile.llm.server == "vllm" else heads


def kv_bytes_per_token(profile: Profile) -> int:
    """2 (K and V) x layers x kv_heads x head_dim x bytes per element, all GPUs together."""
    assert profile.llm is not None
    arch = architecture(profile)
    elements = 2 * arch.num_hidden_layers * kv_heads_stored(profile) * arch.head_dim
    return elements * KV_BITS_PER_32[kv_cache_element(profile.llm)] // 32 // 8


def kv_bytes_per_sequence(profile: Profile, tokens: int) -> int:
    """One sequence of `tokens`: full-attention layers hold every token, sliding-window layers their window."""
    arch = architecture(profile)
    per_layer_token = kv_bytes_per_token(profile) // arch.num_hidden_layers
    window = arch.sliding_window or tokens
    return per_layer_token * (arch.full_layer_count * tokens + arch.sliding_layer_count * min(tokens, window))


# ---------------------------------------------------------------- the GPU
def gpu_key(profile: Profile) -> tuple[str, int]:
    gpu = profile.hardware.gpu
    assert gpu is not None
    return gpu.model, round(gpu.memory / units.GIB)


def torch_visible_memory(profile: Profile) -> tuple[int, str]:
    """Bytes PyTorch sees on each GPU, and where the figure comes from."""
    gpu = profile.hardware.gpu
    assert gpu is not None
    if gpu.visible_memory is not None:
        return gpu.visible_memory, "given by hardware.gpu.visible_memory"
    key = gpu_key(profile)
    if key in TORCH_VISIBLE_GIB:
        gib = TORCH_VISIBLE_GIB[key]
        return int(gib * units.GIB), f"{key[0]} {key[1]}GiB: PyTorch sees {gib} GiB (TORCH_VISIBLE_GIB)"
    return (int(gpu.memory * UNKNOWN_GPU_VISIBLE_SHARE),
            f"{key[0]} {key[1]}GiB is not in TORCH_VISIBLE_GIB: nominal memory x {UNKNOWN_GPU_VISIBLE_SHARE} "
            "(set hardware.gpu.visible_memory to what torch.cuda.mem_get_info reports)")


def gpu_product(profile: Profile) -> str | None:
    gpu = profile.hardware.gpu
    assert gpu is not None
    return gpu.product if gpu.product is not None else GFD_PRODUCT.get(gpu_key(profile))


def max_num_batched_tokens(profile: Profile) -> int:
    """vLLM 0.10's API-server default: 8192 on GPUs of 70 GiB and more other than the A100, else 2048."""
    gpu = profile.hardware.gpu
    visible, _ = torch_visible_memory(profile)
    big = visible >= 70 * units.GIB and gpu is not None and "a100" not in gpu.model.lower()
    assert profile.llm is not None
    return max(8192 if big else 2048, profile.llm.max_num_seqs)


# ---------------------------------------------------------------- vLLM's budget, per GPU
def activation_peak(profile: Profile, tokens: int) -> int:
    """Peak of one forward pass over `tokens` tokens on one GPU (activations are freed layer by layer)."""
    assert profile.llm is not None
    arch, tp = architecture(profile), tensor_parallel_size(profile)
    b = ACTIVATION_BYTES[vllm_dtype(profile.llm)]
    stream = 2 * tokens * arch.hidden_size * b  # residual + hidden states
    q_heads = -(-arch.num_attention_heads // tp)
    kv_heads = max(1, arch.num_key_value_heads // tp)
    attention = tokens * (2 * q_heads + 2 * kv_heads) * arch.head_dim * b  # qkv + attention output
    width = -(-arch.intermediate_size // tp)
    if arch.num_local_experts:
        # fused MoE: gate/up (2I) and activation (I) per routed copy, its output (H) per copy, router logits (fp32)
        mlp = (tokens * arch.num_experts_per_tok * (3 * width + arch.hidden_size) * b
               + tokens * arch.num_local_experts * 4)
    else:
        mlp = tokens * 3 * width * b  # gate/up (2I) + activation (I)
    return stream + max(attention, mlp)


def sampler_peak(profile: Profile) -> int:
    assert profile.llm is not None
    arch = architecture(profile)
    rows = min(profile.llm.max_num_seqs, max_num_batched_tokens(profile))
    hidden = max_num_batched_tokens(profile) * arch.hidden_size * ACTIVATION_BYTES[vllm_dtype(profile.llm)]
    return hidden + rows * arch.vocab_size * SAMPLER_BYTES_PER_LOGIT


def non_torch_memory(profile: Profile) -> int:
    return NON_TORCH_TENSOR_PARALLEL if tensor_parallel_size(profile) > 1 else NON_TORCH_SINGLE


@dataclass(frozen=True)
class GpuBudget:
    gpu_memory: int  # torch-visible, per GPU
    gpu_count: int
    utilization: float
    requested: int  # per GPU
    weights: int  # per GPU
    activation: int  # per GPU
    sampler: int  # per GPU
    non_torch: int  # per GPU
    kv_bytes_per_token: int  # per GPU
    bytes_per_sequence: int  # per GPU, one sequence of max_model_len
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    outside_needed: int = OUTSIDE_SHARE  # CUDA context + CUDA graphs, outside the utilization share

    @property
    def torch_peak(self) -> int:
        return max(self.activation, self.sampler)

    @property
    def remaining(self) -> int:
        return self.requested - self.weights - self.torch_peak - self.non_torch

    @property
    def kv_cache_blocks(self) -> int:
        return max(0, self.remaining) // (self.kv_bytes_per_token * BLOCK_SIZE)

    @property
    def kv_cache_bytes(self) -> int:
        """Per GPU: the blocks vLLM allocates."""
        return self.kv_cache_blocks * BLOCK_SIZE * self.kv_bytes_per_token

    @property
    def kv_cache_tokens(self) -> int:
        return self.kv_cache_blocks * BLOCK_SIZE

    @property
    def concurrency(self) -> int:
        """Sequences of max_model_len tokens whose KV cache fits at once."""
        return self.kv_cache_bytes // self.bytes_per_sequence

    @property
    def tokens_wanted(self) -> int:
        return self.max_num_seqs * self.max_model_len

    @property
    def outside_share(self) -> int:
        return self.gpu_memory - self.requested


def gpu_budget(profile: Profile) -> GpuBudget:
    assert profile.llm is not None and profile.hardware.gpu is not None
    llm, tp = profile.llm, tensor_parallel_size(profile)
    visible, _ = torch_visible_memory(profile)
    batched = max_num_batched_tokens(profile)
    return GpuBudget(
        gpu_memory=visible, gpu_count=tp, utilization=llm.gpu_memory_utilization,
        requested=visible * round(llm.gpu_memory_utilization * 10_000) // 10_000,
        weights=-(-weight_bytes(profile) // tp), activation=activation_peak(profile, batched),
        sampler=sampler_peak(profile), non_torch=non_torch_memory(profile),
        kv_bytes_per_token=kv_bytes_per_token(profile) // tp,
        bytes_per_sequence=kv_bytes_per_sequence(profile, llm.max_model_len) // tp,
        max_model_len=llm.max_model_len, max_num_seqs=llm.max_num_seqs, max_num_batched_tokens=batched)


# ---------------------------------------------------------------- Ollama's budget
@dataclass(frozen=True)
class OllamaBudget:
    gpu_memory: int  # torch-visible, all GPUs
    overhead: int  # OLLAMA_GPU_OVERHEAD + Ollama's minimum, all GPUs
    weights: int
    layer_weights: int  # one transformer layer
    kv_reserved: int  # NUM_PARALLEL x CONTEXT tokens, all layers
    graph: int
    layers: int

    @property
    def available(self) -> int:
        return self.gpu_memory - self.overhead

    @property
    def layers_on_gpu(self) -> int:
        per_layer = self.layer_weights + self.kv_reserved // self.layers
        room = self.available - self.graph - (self.weights - self.layer_weights * self.layers)
        return max(0, min(self.layers, room // per_layer))

    @property
    def layers_on_cpu(self) -> int:
        return self.layers - self.layers_on_gpu


def ollama_gpu_overhead(profile: Profile) -> int:
    assert profile.llm is not None
    visible, _ = torch_visible_memory(profile)
    return visible - visible * round(profile.llm.gpu_memory_utilization * 10_000) // 10_000


def ollama_budget(profile: Profile) -> OllamaBudget:
    assert profile.llm is not None and profile.hardware.gpu is not None
    llm, arch, count = profile.llm, architecture(profile), profile.hardware.gpu.count
    visible, _ = torch_visible_memory(profile)
    context = llm.max_num_seqs * llm.max_model_len
    overhead = ollama_gpu_overhead(profile) + OLLAMA_MINIMUM_MEMORY
    layer = arch.linear_parameters // arch.num_hidden_layers * WEIGHT_BITS[llm.model.dtype] // 8
    # llama.cpp's full-offload graph estimate (Ollama's llm/memory.go for llama-family models)
    graph = max(4 * OLLAMA_BATCH * (1 + 4 * arch.hidden_size + context * (1 + arch.num_attention_heads)),
                4 * OLLAMA_BATCH * (arch.hidden_size + arch.vocab_size))
    return OllamaBudget(gpu_memory=visible * count, overhead=overhead * count, weights=weight_bytes(profile),
                        layer_weights=layer, kv_reserved=kv_bytes_per_token(profile) * context, graph=graph,
                        layers=arch.num_hidden_layers)


# ---------------------------------------------------------------- explain
def model_settings(profile: Profile) -> list[Setting]:
    assert profile.llm is not None
    llm, arch = profile.llm, architecture(profile)
    where = f"config.json {arch.source}" if arch.source != "catalog" else "the catalog (generators/data/models.json)"
    human = units.format_size_human
    weights = weight_bytes(profile)
    bits = WEIGHT_BITS[llm.model.dtype]
    weight_rule = (f"parameters {arch.parameters} x {bits} bits ({llm.model.dtype}) / 8" if bits >= UNQUANTIZED_BITS
                   else f"linear weights {arch.linear_parameters} x {bits} bits ({llm.model.dtype}) + embeddings, "
                   f"lm_head and norms {arch.parameters - arch.linear_parameters} x 16 bits, / 8")
    described = (f"{llm.model.name} from {where}: hidden {arch.hidden_size}, intermediate {arch.intermediate_size}, "
                 f"{arch.num_hidden_layers} layers ({arch.layout_text()}), {arch.num_attention_heads} attention "
                 f"heads, {arch.num_key_value_heads} KV heads of {arch.head_dim}, vocabulary {arch.vocab_size}"
                 + (", tied embeddings" if arch.tie_word_embeddings else "")
                 + (f", {arch.num_local_experts} experts ({arch.num_experts_per_tok} per token)"
                    if arch.num_local_experts else ""))
    return [
        _setting("model.architecture", arch.name, f"{arch.model_type} {arch.parameters} parameters", described,
                 parameters=arch.parameters, hidden_size=arch.hidden_size, intermediate_size=arch.intermediate_size,
                 layers=arch.num_hidden_layers, attention_heads=arch.num_attention_heads,
                 kv_heads=arch.num_key_value_heads, head_dim=arch.head_dim, vocab_size=arch.vocab_size,
                 tie_word_embeddings=arch.tie_word_embeddings, experts=arch.num_local_experts,
                 experts_per_token=arch.num_experts_per_tok, gated=gated(profile)),
        _setting("weight_bytes", weights, human(weights), weight_rule, parameters=arch.parameters,
                 dtype=llm.model.dtype, bytes=weights),
    ]


def budget_settings(profile: Profile) -> list[Setting]:
    assert profile.llm is not None
    llm, b, arch = profile.llm, gpu_budget(profile), architecture(profile)
    human = units.format_size_human
    kv_element = kv_cache_element(llm)
    heads = kv_heads_stored(profile)
    _, visible_rule = torch_visible_memory(profile)
    heads_note = (f" (kv_heads {arch.num_key_value_heads} replicated to the tensor-parallel size {heads})"
                  if heads != arch.num_key_value_heads else "")
    per_gpu = f" / TP {b.gpu_count}" if b.gpu_count > 1 else ""
    terms = {"torch_visible_memory": human(b.gpu_memory), "gpu_memory_utilization": b.utilization,
             "requested": human(b.requested), "weights_per_gpu": human(b.weights),
             "activation_peak": human(b.activation), "sampler_peak": human(b.sampler),
             "non_torch_memory": human(b.non_torch), "kv_cache_per_gpu": human(b.kv_cache_bytes),
             "kv_bytes_per_token_per_gpu": b.kv_bytes_per_token, "gpu_count": b.gpu_count}
    return [
        *model_settings(profile),
        _setting("torch_visible_memory", b.gpu_memory, human(b.gpu_memory), visible_rule, bytes=b.gpu_memory),
        _setting("gpu_memory_requested", b.requested, human(b.requested),
                 f"per GPU: gpu_memory_utilization {b.utilization:g} x torch-visible {human(b.gpu_memory)}",
                 bytes=b.requested),
        _setting("weights_per_gpu", b.weights, human(b.weights), f"weight_bytes{per_gpu}, rounded up",
                 bytes=b.weights),
        _setting("activation_peak", b.activation, human(b.activation),
                 f"per GPU, vLLM's profiling forward at max_num_batched_tokens {b.max_num_batched_tokens}: residual "
                 f"and hidden states 2 x tokens x hidden {arch.hidden_size} x {ACTIVATION_BYTES[vllm_dtype(llm)]} bytes"
                 f" + the widest layer temporary (MLP 3 x intermediate {arch.intermediate_size}{per_gpu}"
                 + (f" x {arch.num_experts_per_tok} experts per token" if arch.num_local_experts else "")
                 + ", or attention q/k/v/out)", tokens=b.max_num_batched_tokens, bytes=b.activation),
        _setting("sampler_peak", b.sampler, human(b.sampler),
                 f"per GPU: min(max_num_seqs, batched tokens) rows x vocabulary {arch.vocab_size} x "
                 f"{SAMPLER_BYTES_PER_LOGIT} bytes (bf16 and fp32 logits, probabilities, sorted values and int64 "
                 "indices) + the hidden states", bytes=b.sampler),
        _setting("non_torch_memory", b.non_torch, human(b.non_torch),
                 "per GPU, counted by vLLM's profile: cuBLAS and attention workspaces"
                 + ("; NCCL and custom all-reduce buffers (tensor-parallel)" if b.gpu_count > 1 else ""),
                 bytes=b.non_torch),
        _setting("kv_cache_bytes_per_token", b.kv_bytes_per_token, human(b.kv_bytes_per_token),
                 f"per GPU: 2 (K and V) x layers {arch.num_hidden_layers} x kv_heads {heads}{heads_note}{per_gpu} x "
                 f"head_dim {arch.head_dim} x {KV_BITS_PER_32[kv_element] / 32:g} bits ({kv_element}) / 8",
                 layers=arch.num_hidden_layers, kv_heads=heads, head_dim=arch.head_dim, kv_cache_dtype=kv_element,
                 bytes=b.kv_bytes_per_token),
        _setting("kv_cache_bytes", b.kv_cache_bytes, human(b.kv_cache_bytes),
                 f"per GPU: requested {human(b.requested)} - weights {human(b.weights)} - max(activation "
                 f"{human(b.activation)}, sampler {human(b.sampler)}) - non-torch {human(b.non_torch)} = "
                 f"{human(max(0, b.remaining))}, in whole blocks of {BLOCK_SIZE} tokens", **terms),
        _setting("kv_cache_tokens", b.kv_cache_tokens, str(b.kv_cache_tokens),
                 f"{b.kv_cache_blocks} blocks x {BLOCK_SIZE} tokens: kv_cache_bytes {human(b.kv_cache_bytes)} / "
                 f"{b.kv_bytes_per_token} bytes per token per GPU", blocks=b.kv_cache_blocks, **terms),
        _setting("max_concurrent_sequences", b.concurrency, str(b.concurrency),
                 f"kv_cache_bytes / {b.bytes_per_sequence} bytes per sequence of max_model_len {b.max_model_len} "
                 f"({arch.layout_text()}), rounded down (max_num_seqs asks for {b.max_num_seqs})",
                 kv_cache_tokens=b.kv_cache_tokens, max_model_len=b.max_model_len, max_num_seqs=b.max_num_seqs),
    ]


def ollama_budget_settings(profile: Profile) -> list[Setting]:
    assert profile.llm is not None
    o, human = ollama_budget(profile), units.format_size_human
    llm = profile.llm
    return [
        *model_settings(profile),
        _setting("ollama_kv_reserved", o.kv_reserved, human(o.kv_reserved),
                 f"Ollama reserves OLLAMA_NUM_PARALLEL {llm.max_num_seqs} x OLLAMA_CONTEXT_LENGTH {llm.max_model_len}"
                 f" tokens up front x {kv_bytes_per_token(profile)} bytes per token", bytes=o.kv_reserved),
        _setting("ollama_graph", o.graph, human(o.graph),
                 f"llama.cpp's compute graph for a batch of {OLLAMA_BATCH} over that context (Ollama's estimate)",
                 bytes=o.graph),
        _setting("ollama_layers_on_gpu", o.layers_on_gpu, f"{o.layers_on_gpu} of {o.layers}",
                 f"(GPU memory {human(o.gpu_memory)} - overhead {human(o.overhead)} - graph - non-layer weights) / "
                 f"(layer weights {human(o.layer_weights)} + its KV share): the rest runs on the CPU",
                 layers=o.layers, layers_on_cpu=o.layers_on_cpu),
    ]


# ---------------------------------------------------------------- cold start
def cold_start_ms(profile: Profile) -> int:
    """Image pull + weight download at download_bandwidth, reading the weights into the GPU, engine start."""
    assert profile.llm is not None
    llm = profile.llm
    pull = llm.image_size * 1000 // llm.download_bandwidth
    download = weight_bytes(profile) * 1000 // llm.download_bandwidth
    read = weight_bytes(profile) * 1000 // LOAD_READ_BANDWIDTH
    total = pull + download + read + (ENGINE_START_MS if llm.server == "vllm" else 0)
    return -(-total // 1000) * 1000


def load_time(profile: Profile) -> int:
    assert profile.llm is not None
    return profile.llm.load_time if profile.llm.load_time is not None else cold_start_ms(profile)


# ---------------------------------------------------------------- vLLM
POSITIONAL = "model"  # `vllm serve MODEL`: --model is deprecated for serve


def vllm_settings(profile: Profile) -> list[Setting]:
    assert profile.llm is not None
    llm = profile.llm
    given = "given by llm.{}".format
    tp = tensor_parallel_size(profile)
    gpu = profile.hardware.gpu
    b = gpu_budget(profile)
    items = [
        _setting(POSITIONAL, llm.model.name, llm.model.name,
                 "given by llm.model.name: the positional model argument of `vllm serve`"),
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
        _setting("num-gpu-blocks-override", b.kv_cache_blocks, str(b.kv_cache_blocks),
                 f"llm.kv_cache_tokens {b.kv_cache_tokens} / block {BLOCK_SIZE}: pins the KV cache to the budget "
                 "rendered here (vLLM 0.10.2 has no --kv-cache-memory-bytes)", blocks=b.kv_cache_blocks),
        _setting("max-model-len", llm.max_model_len, str(llm.max_model_len), given("max_model_len")),
        _setting("max-num-seqs", llm.max_num_seqs, str(llm.max_num_seqs),
                 given("max_num_seqs") + " (pinned: vLLM's default is 256, or 1024 on large GPUs)"),
        _setting("max-num-batched-tokens", b.max_num_batched_tokens, str(b.max_num_batched_tokens),
                 "tokens per scheduler step (chunked prefill): vLLM 0.10's API-server default, pinned (8192 on GPUs "
                 "PyTorch sees as 70GiB or more other than the A100, else 2048; at least max_num_seqs); the "
                 "activation peak is sized at it", gpu=f"{gpu.model} {units.format_size_human(gpu.memory)}"
                 if gpu else None),
        _setting("tensor-parallel-size", tp, str(tp), "hardware.gpu.count: the model is split across every GPU",
                 gpu_count=tp),
        _setting("enable-prefix-caching", llm.prefix_caching, "true" if llm.prefix_caching else "false",
                 given("prefix_caching") + " (pinned: the default changed between releases)"),
        _setting("block-size", BLOCK_SIZE, str(BLOCK_SIZE), "KV-cache block of 16 tokens (vLLM's CUDA default, pinned)"),
        _setting("host", "0.0.0.0", "0.0.0.0", "listen on the pod's address for the Service"),
        _setting("port", llm.port, str(llm.port), given("port")),
    ]
    return items


def vllm_args(items: list[Setting]) -> list[str]:
    """The settings as `vllm serve` arguments: the model first, then one `--flag=value` each."""
    args = [s.text for s in items if s.key == POSITIONAL]
    for s in items:
        if s.key == POSITIONAL:
            continue
        if isinstance(s.value, bool):
            args.append(f"--{s.key}" if s.value else f"--no-{s.key}")
        else:
            args.append(f"--{s.key}={s.text}")
    return args


def vllm_args_file(profile: Profile, items: list[Setting]) -> str:
    lines = [f"# vLLM arguments for {profile.environment}, rendered by perfstack: do not edit.",
             "# Every value is pinned (vLLM's defaults moved between releases). One argument per line, no",
             f"# word splitting; use as:  {formats.ARGV_LAUNCHER}"]
    for s, arg in zip(items, [*vllm_args([i for i in items if i.key == POSITIONAL]),
                              *vllm_args([i for i in items if i.key != POSITIONAL])], strict=True):
        lines.append(f"# {formats.comment(s.rule)}")
        lines.append(formats.argv_line(arg))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Ollama
def startup_timeout(profile: Profile) -> int:
    assert profile.llm is not None
    llm = profile.llm
    return llm.startup_timeout if llm.startup_timeout is not None else STARTUP_TIMEOUT_FACTOR * load_time(profile)


def ollama_settings(profile: Profile) -> list[Setting]:
    assert profile.llm is not None
    llm = profile.llm
    gpu = profile.hardware.gpu
    overhead = ollama_gpu_overhead(profile)
    kv_type = kv_cache_element(llm)
    bool_text = "true" if llm.flash_attention else "false"
    load = startup_timeout(profile)
    return [
        _setting("OLLAMA_HOST", f"0.0.0.0:{llm.port}", f"0.0.0.0:{llm.port}",
                 "listen on the pod's address at llm.port for the Service"),
        _setting("OLLAMA_KEEP_ALIVE", -1, "-1",
                 "the pod owns its GPU: keep the model loaded for the pod's life (an idle unload would undo the "
                 "warm-up, and readiness, which polls /api/version, would not see it)"),
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
                 "torch-visible GPU memory x (1 - gpu_memory_utilization), bytes kept free on each GPU: Ollama's "
                 "form of gpu_memory_utilization", gpu_memory=units.format_size_human(gpu.memory) if gpu else None,
                 gpu_memory_utilization=llm.gpu_memory_utilization),
        _setting("OLLAMA_LOAD_TIMEOUT", load, units.format_duration_go(load),
                 "the startup probe's budget: Ollama gives up on a stalled load no sooner than Kubernetes does",
                 startup_timeout=units.format_duration_go(load)),
    ]


def env_file(profile: Profile, items: list[Setting]) -> str:
    lines = [f"# Ollama environment for {profile.environment}, rendered by perfstack: do not edit."]
    for s in sorted(items, key=lambda s: s.key):
        lines.append(f"# {formats.comment(s.rule)}")
        lines.append(formats.env_line(s.key, s.text))
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
    return max(1, units.seconds_up(load_time(profile) + profile.slo.llm_latency_p95))


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
    human = units.format_size_human
    cold = cold_start_ms(profile)
    load_rule = ("given by llm.load_time" if llm.load_time is not None else
                 f"a cold start: image {human(llm.image_size)} + weights {human(weight_bytes(profile))} pulled at "
                 f"llm.download_bandwidth {human(llm.download_bandwidth)}/s, the weights read into the GPU at "
                 f"{human(LOAD_READ_BANDWIDTH)}/s"
                 + (f", and vLLM's compile and CUDA-graph capture ({ENGINE_START_MS // 1000}s)"
                    if llm.server == "vllm" else "") + ", rounded up to a second")
    items = [
        _setting("load_time", load_time(profile), units.format_duration(load_time(profile)), load_rule,
                 cold_start=units.format_duration(cold), image_size=human(llm.image_size),
                 download_bandwidth=human(llm.download_bandwidth), weights=human(weight_bytes(profile))),
        _setting("startup_probe", budget, f"{probe['failureThreshold']} x {STARTUP_PERIOD_S}s = {budget // 1000}s",
                 f"{source} ({units.format_duration_go(startup_timeout(profile))}), in tries of {STARTUP_PERIOD_S}s, rounded up; "
                 "must cover llm.load_time", load_time=units.format_duration_go(load_time(profile)),
                 startup_timeout=units.format_duration_go(startup_timeout(profile))),
        _setting("warmup", llm.warmup, "one completion request before Ready" if llm.warmup else "off",
                 "given by llm.warmup: the startup probe sends a real request (timeout load_time + "
                 f"slo.llm_latency_p95 = {warmup_timeout_s(profile)}s); readiness then polls {health_path(profile)}"
                 if llm.warmup else f"given by llm.warmup: the startup probe polls {health_path(profile)}"),
    ]
    return items


# ---------------------------------------------------------------- the pod
def node_selector(profile: Profile) -> dict[str, str]:
    """Nodes carrying the GPU the budget was sized for (GPU feature discovery's label, by default)."""
    gpu = profile.hardware.gpu
    assert gpu is not None
    product = gpu_product(profile)
    return {gpu.node_label: product} if product else {}


def resources(profile: Profile) -> dict[str, Any]:
    """CPU and memory requests and limits (Guaranteed memory: a GPU pod is never the first evicted)."""
    assert profile.llm is not None
    given, gpus = profile.llm.resources, tensor_parallel_size(profile)
    cpu = given.cpu if given.cpu is not None else 2 + 4 * gpus
    memory = given.memory if given.memory is not None else 16 * units.GIB + 8 * units.GIB * gpus
    count = {"nvidia.com/gpu": str(gpus)}
    return {"requests": {"cpu": f"{round(cpu * 1000)}m", "memory": units.format_quantity(memory), **count},
            "limits": {"cpu": f"{round(cpu * 2000)}m", "memory": units.format_quantity(memory), **count}}



def cache_size(profile: Profile) -> int:
    """The model cache volume: twice the weights (a download and its finished copy), rounded up to GiB."""
    assert profile.llm is not None
    given = profile.llm.model_cache.size
    if given is not None:
        return given
    return -(-2 * weight_bytes(profile) // units.GIB) * units.GIB


def resource_settings(profile: Profile) -> list[Setting]:
    assert profile.llm is not None
    res, llm = resources(profile), profile.llm
    cache = llm.model_cache
    where = {"pvc": f"PersistentVolumeClaim {cache.claim} of {units.format_size_human(cache_size(profile))}",
             "host_path": f"the node directory {cache.path}", "empty_dir": "an emptyDir (re-downloads at every start)"}
    selector = node_selector(profile)
    return [
        _setting("resources", res, f"cpu {res['requests']['cpu']}, memory {res['requests']['memory']}",
                 "llm.resources, default 2 + 4 cores per GPU (tokenizing, detokenizing, the API server) and 16GiB "
                 "+ 8GiB per GPU of memory; memory limit = request, CPU limit twice the request"),
        _setting("model_cache", cache.kind, where[cache.kind],
                 "llm.model_cache: weights survive a restart, so a restart does not download them again"),
        _setting("node_selector", selector, ", ".join(f"{k}={v}" for k, v in selector.items()) or "none",
                 "hardware.gpu.node_label = hardware.gpu.product (default: GPU feature discovery's name for "
                 "hardware.gpu.model and memory): the pod lands on the GPU its budget was sized for"),
    ]


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
    budget = budget_settings(profile) if profile.llm.server == "vllm" else ollama_budget_settings(profile)
    items = [*budget, *server, *probe_settings(profile), *resource_settings(profile)]
    derived: dict[str, Any] = {"startup_probe": startup_probe(profile), "config": config, "args": args,
                               "load_time": load_time(profile), "cold_start": cold_start_ms(profile),
                               "weights": weight_bytes(profile), "gated": gated(profile),
                               "kv_bytes_per_sequence": kv_bytes_per_sequence(profile, profile.llm.max_model_len),
                               "node_selector": node_selector(profile), "resources": resources(profile),
                               "cache_size": cache_size(profile),
                               "kv_heads": architecture(profile).num_key_value_heads}
    if profile.llm.server == "vllm":
        derived["gpu_budget"] = gpu_budget(profile)
    else:
        derived["ollama_budget"] = ollama_budget(profile)
    return Part(settings=items, files=files, derived=derived)
