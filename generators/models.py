"""Model architectures: the catalog shipped in the package (`data/models.json`) or a model's own config.json.

An architecture is the part of a model's Hugging Face `config.json` that sizes its GPU memory: hidden
and intermediate sizes, layers, attention and key/value heads, head dimension, vocabulary, tied
embeddings, mixture-of-experts (experts, experts per token) and the per-layer attention layout
(full attention or a sliding window). The parameter count is computed from that shape
(`Architecture.parameters`); for every catalog entry it equals the exact count the model's
safetensors metadata publishes (`tests/test_models.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

SlidingLayers = Literal["none", "even", "all"]


class ArchitectureError(ValueError):
    """A config.json that does not describe a decoder model perfstack can size."""


@dataclass(frozen=True)
class Architecture:
    name: str
    model_type: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool
    attention_bias: bool = False
    qk_norm: bool = False
    norms_per_layer: int = 2
    num_local_experts: int = 0
    num_experts_per_tok: int = 0
    sliding_window: int | None = None
    sliding_layers: SlidingLayers = "none"
    max_position_embeddings: int = 0
    published_parameters: int | None = None
    gated: bool = False
    source: str = "catalog"

    # ------------------------------------------------------------ parameters
    @property
    def embedding_parameters(self) -> int:
        """The input embedding and, when not tied to it, the output projection (lm_head)."""
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    @property
    def attention_parameters(self) -> int:
        h, q, kv = self.hidden_size, self.num_attention_heads * self.head_dim, self.num_key_value_heads * self.head_dim
        bias = q + 2 * kv if self.attention_bias else 0
        norm = 2 * self.head_dim if self.qk_norm else 0
        return h * q + 2 * h * kv + q * h + bias + norm

    @property
    def mlp_parameters(self) -> int:
        dense = 3 * self.hidden_size * self.intermediate_size  # gate, up, down
        if self.num_local_experts:
            return self.num_local_experts * dense + self.hidden_size * self.num_local_experts  # + router
        return dense

    @property
    def linear_parameters(self) -> int:
        """Weights of the transformer blocks' linear layers: what a GPTQ/AWQ/GGUF quantization packs."""
        h, q, kv = self.hidden_size, self.num_attention_heads * self.head_dim, self.num_key_value_heads * self.head_dim
        return self.num_hidden_layers * (h * q + 2 * h * kv + q * h + self.mlp_parameters)

    @property
    def parameters(self) -> int:
        per_layer = self.attention_parameters + self.mlp_parameters + self.norms_per_layer * self.hidden_size
        return self.embedding_parameters + self.num_hidden_layers * per_layer + self.hidden_size

    # ------------------------------------------------------------ attention layout
    def layer_is_sliding(self, index: int) -> bool:
        if self.sliding_window is None or self.sliding_layers == "none":
            return False
        return self.sliding_layers == "all" or index % 2 == 0

    @property
    def sliding_layer_count(self) -> int:
        return sum(self.layer_is_sliding(i) for i in range(self.num_hidden_layers))

    @property
    def full_layer_count(self) -> int:
        return self.num_hidden_layers - self.sliding_layer_count

    def layout_text(self) -> str:
        if not self.sliding_layer_count:
            return f"{self.num_hidden_layers} full-attention layers"
        return (f"{self.full_layer_count} full-attention layers, {self.sliding_layer_count} sliding-window layers "
                f"of {self.sliding_window} tokens")


# ---------------------------------------------------------------- the catalog
@cache
def catalog() -> dict[str, Architecture]:
    """Every catalog name and alias (Hugging Face ids, Ollama tags) -> its architecture."""
    data = json.loads(resources.files("generators").joinpath("data/models.json").read_text(encoding="utf-8"))
    found: dict[str, Architecture] = {}
    for entry in data["models"]:
        fields = {k: v for k, v in entry.items() if k not in ("aliases", "parameters")}
        arch = Architecture(**fields, published_parameters=entry["parameters"])
        for name in [entry["name"], *entry["aliases"]]:
            found[name.lower()] = arch
    return found


def catalog_names() -> list[str]:
    return sorted({arch.name for arch in catalog().values()})


def lookup(name: str) -> Architecture | None:
    return catalog().get(name.lower())


# ---------------------------------------------------------------- config.json
def _int(config: dict[str, Any], key: str, default: int | None = None) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ArchitectureError(f"config.json: {key} must be a positive integer (got {value!r})")
    return value


def from_config(config: dict[str, Any], name: str, source: str) -> Architecture:
    """A Hugging Face config.json (a decoder-only model; multimodal configs: their `text_config`)."""
    if not isinstance(config, dict):
        raise ArchitectureError("config.json must hold a JSON object")
    if isinstance(config.get("text_config"), dict):
        config = {**config["text_config"], "model_type": config.get("model_type", "")}
    model_type = str(config.get("model_type", ""))
    heads = _int(config, "num_attention_heads")
    hidden = _int(config, "hidden_size")
    experts = config.get("num_local_experts") or config.get("num_experts") or 0
    window = config.get("sliding_window") if config.get("use_sliding_window", True) else None
    layer_types = config.get("layer_types")
    sliding: SlidingLayers = "none"
    if isinstance(layer_types, list) and window:
        kinds = ["sliding" in str(t) for t in layer_types]
        if all(kinds):
            sliding = "all"
        elif kinds == [i % 2 == 0 for i in range(len(kinds))]:
            sliding = "even"
        elif any(kinds):
            raise ArchitectureError("config.json: layer_types mixes sliding and full layers in a pattern perfstack "
                                    "does not size (only all-sliding or alternating from layer 0)")
    elif window and model_type == "gemma2":
        sliding = "even"
    elif window and model_type in ("mistral", "mixtral", "qwen2", "qwen3"):
        sliding = "all"
    return Architecture(
        name=name, model_type=model_type, hidden_size=hidden, intermediate_size=_int(config, "intermediate_size"),
        num_hidden_layers=_int(config, "num_hidden_layers"), num_attention_heads=heads,
        num_key_value_heads=_int(config, "num_key_value_heads", heads),
        head_dim=_int(config, "head_dim", hidden // heads) if config.get("head_dim") is not None else hidden // heads,
        vocab_size=_int(config, "vocab_size"),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        attention_bias=bool(config.get("attention_bias", model_type == "qwen2")),
        qk_norm=model_type == "qwen3", norms_per_layer=4 if model_type in ("gemma2", "gemma3") else 2,
        num_local_experts=int(experts), num_experts_per_tok=int(config.get("num_experts_per_tok") or 0) if experts else 0,
        sliding_window=int(window) if window and sliding != "none" else None, sliding_layers=sliding,
        max_position_embeddings=int(config.get("max_position_embeddings") or 0), source=source)


@cache
def read_config(path: str, name: str) -> Architecture:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ArchitectureError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArchitectureError(f"{path} is not JSON: {exc.msg} at line {exc.lineno}") from None
    return from_config(data, name, source=path)


def architecture(model: Any) -> Architecture:
    """The architecture of a validated `llm.model` (validation has resolved its name or config already)."""
    if model.config is not None:
        return read_config(model.config, model.name)
    found = lookup(model.name)
    if found is None:
        raise ArchitectureError(f"model {model.name!r} is not in the catalog")
    return found
