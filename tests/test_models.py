"""The model catalog and config.json: exact parameter counts from the shape, the attention layout, a child
profile naming another model gets that model's whole architecture, and a bad config.json is refused at its key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generators import llm, models
from generators.errors import ProfileError
from generators.validation import load_profile

from .conftest import PROFILES

# The exact counts the models' safetensors metadata publishes (model cards: "8.03B params").
PUBLISHED = {
    "meta-llama/Meta-Llama-3-8B-Instruct": 8_030_261_248,
    "meta-llama/Llama-3.1-8B-Instruct": 8_030_261_248,
    "meta-llama/Llama-3.1-70B-Instruct": 70_553_706_496,
    "meta-llama/Llama-3.2-1B-Instruct": 1_235_814_400,
    "meta-llama/Llama-3.2-3B-Instruct": 3_212_749_824,
    "Qwen/Qwen2.5-7B-Instruct": 7_615_616_512,
    "Qwen/Qwen2.5-14B-Instruct": 14_770_033_664,
    "Qwen/Qwen2.5-32B-Instruct": 32_763_876_352,
    "Qwen/Qwen2.5-72B-Instruct": 72_706_203_648,
    "Qwen/Qwen3-8B": 8_190_735_360,
    "Qwen/Qwen3-14B": 14_768_307_200,
    "Qwen/Qwen3-32B": 32_762_123_264,
    "mistralai/Mistral-7B-Instruct-v0.3": 7_248_023_552,
    "mistralai/Mixtral-8x7B-Instruct-v0.1": 46_702_792_704,
    "google/gemma-2-9b-it": 9_241_705_984,
    "google/gemma-2-27b-it": 27_227_128_320,
}


def test_the_catalog_holds_the_common_open_models() -> None:
    assert sorted(PUBLISHED) == models.catalog_names()


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_from_the_shape_is_the_published_one(name: str) -> None:
    arch = models.lookup(name)
    assert arch is not None
    assert arch.parameters == arch.published_parameters == PUBLISHED[name]


def test_aliases_and_ollama_tags_name_the_same_architecture() -> None:
    assert models.lookup("llama3.1:8b") is models.lookup("meta-llama/Llama-3.1-8B-Instruct")
    assert models.lookup("META-LLAMA/LLAMA-3.1-8B-INSTRUCT") is models.lookup("meta-llama/Llama-3.1-8B")
    assert models.lookup("mixtral:8x7b") is not None and models.lookup("mixtral:8x7b").num_local_experts == 8


def test_attention_layout() -> None:
    gemma = models.lookup("google/gemma-2-9b-it")
    assert gemma is not None
    assert [gemma.layer_is_sliding(i) for i in range(4)] == [True, False, True, False]
    assert (gemma.full_layer_count, gemma.sliding_layer_count, gemma.sliding_window) == (21, 21, 4096)
    llama = models.lookup("meta-llama/Llama-3.1-70B-Instruct")
    assert llama is not None and llama.sliding_layer_count == 0


def _profile_dir(tmp_path: Path, llm_block: str, config: dict[str, object] | str | None = None) -> Path:
    for name in ("base.yaml", "prod.yaml"):
        (tmp_path / name).write_text((PROFILES / name).read_text())
    (tmp_path / "models").mkdir()
    if config is not None:
        text = config if isinstance(config, str) else json.dumps(config)
        (tmp_path / "models" / "config.json").write_text(text)
    (tmp_path / "mine.yaml").write_text("extends: prod\nenvironment: mine\nnamespace: mine\n" + llm_block)
    return tmp_path


LLAMA_CONFIG = {  # Llama-3.1-8B-Instruct's config.json, as published (the fields perfstack reads)
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "vocab_size": 128256, "tie_word_embeddings": False, "max_position_embeddings": 131072,
    "torch_dtype": "bfloat16", "attention_bias": False,
}


def test_a_config_json_the_profile_points_to(tmp_path: Path) -> None:
    folder = _profile_dir(tmp_path, "llm:\n  model: {name: acme/llama-finetune, config: models/config.json, "
                                    "gated: false}\n", LLAMA_CONFIG)
    profile, _ = load_profile("mine", folder)
    arch = llm.architecture(profile)
    assert arch.parameters == 8_030_261_248  # same shape as the catalog's Llama 3.1 8B
    assert arch.head_dim == 128 and arch.source == str((folder / "models" / "config.json").resolve())
    assert not llm.gated(profile)


@pytest.mark.parametrize(("config", "message"), [
    ("{not json", "is not JSON"),
    ({**LLAMA_CONFIG, "hidden_size": "big"}, "hidden_size must be a positive integer"),
    (None, "cannot read"),
])
def test_a_bad_config_json_is_refused_at_its_key(tmp_path: Path, config: object, message: str) -> None:
    folder = _profile_dir(tmp_path, "llm:\n  model: {name: acme/x, config: models/config.json}\n",
                          config)  # type: ignore[arg-type]
    with pytest.raises(ProfileError) as info:
        load_profile("mine", folder)
    [problem] = info.value.problems
    assert (Path(problem.file).name, problem.line, problem.key) == ("mine.yaml", 5, "llm.model.config")
    assert message in problem.message


def test_an_unknown_model_is_refused_with_the_catalog(tmp_path: Path) -> None:
    folder = _profile_dir(tmp_path, "llm:\n  model: {name: meta-llama/Llama-3.1-8B-Instrukt}\n")
    with pytest.raises(ProfileError) as info:
        load_profile("mine", folder)
    [problem] = info.value.problems
    assert problem.key == "llm.model.name" and "did you mean meta-llama/Llama-3.1-8B-Instruct" in problem.message


def test_a_child_naming_another_model_gets_its_whole_architecture(tmp_path: Path) -> None:
    folder = _profile_dir(tmp_path, "llm:\n  model: {name: Qwen/Qwen2.5-72B-Instruct}\n")
    child, _ = load_profile("mine", folder)
    parent, _ = load_profile("prod", folder)
    assert llm.architecture(parent).num_hidden_layers == 32
    arch = llm.architecture(child)
    assert (arch.num_hidden_layers, arch.num_key_value_heads, arch.hidden_size, arch.vocab_size) == (80, 8, 8192, 152064)
    assert llm.weight_bytes(child) == 72_706_203_648 * 2
