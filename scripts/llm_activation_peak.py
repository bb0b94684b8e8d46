#!/usr/bin/env python3
"""Measure one forward pass's activation peak on a GPU and print it next to perfstack's formula.

Needs a CUDA GPU, torch and transformers (not installed by scripts/test: the suite runs without a GPU).
It builds a randomly initialised model of a catalog entry's shape from its config alone (no weights are
downloaded; `--layers` keeps only a few, the peak being per layer), runs the decoder body (no lm_head: vLLM
computes logits only for the sampled rows) over `--tokens` tokens in bf16 with SDPA attention, and reports
torch.cuda.max_memory_allocated above the weights.

    PYTHONPATH=. python3 scripts/llm_activation_peak.py meta-llama/Llama-3.1-8B-Instruct --tokens 8192
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from generators import models

    arch = models.lookup(args.model)
    if arch is None:
        print(f"{args.model} is not in the catalog", file=sys.stderr)
        return 2
    config = AutoConfig.for_model(arch.model_type, hidden_size=arch.hidden_size,
                                  intermediate_size=arch.intermediate_size, num_hidden_layers=args.layers,
                                  num_attention_heads=arch.num_attention_heads,
                                  num_key_value_heads=arch.num_key_value_heads, head_dim=arch.head_dim,
                                  vocab_size=arch.vocab_size, tie_word_embeddings=arch.tie_word_embeddings)
    config._attn_implementation = "sdpa"
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.bfloat16).eval()
    ids = torch.randint(0, arch.vocab_size, (1, args.tokens), device="cuda")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        model.model(input_ids=ids, use_cache=False)
    torch.cuda.synchronize()
    measured = torch.cuda.max_memory_allocated() - base
    b, t = 2, args.tokens
    formula = 2 * t * arch.hidden_size * b + max(
        t * (2 * arch.num_attention_heads + 2 * arch.num_key_value_heads) * arch.head_dim * b,
        t * 3 * arch.intermediate_size * b)
    print(json.dumps({"model": args.model, "tokens": t, "measured_bytes": measured, "formula_bytes": formula,
                      "ratio": round(measured / formula, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
