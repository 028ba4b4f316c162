"""`toolkit bench model`: our GPT against GPT2LMHeadModel (training), the KV cache against a no-cache loop
(generation)."""

from dataclasses import dataclass, field

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
)

from ..models import GPTForCausalLM, gpt2_to_gpt
from .common import GPT2_SMALL_SHAPE, describe, side_by_side


@dataclass
class ModelBenchArguments:
    """Our GPT against GPT2LMHeadModel (training steps), and KV-cache generation against a no-cache loop."""

    trials: int = field(default=7, metadata={"help": "Timed pairs per measurement (after one warm-up pair)."})
    new_tokens: int = field(default=256, metadata={"help": "Tokens generated in the KV-cache benchmark."})
    skip_gpt2_small: bool = field(default=False, metadata={"help": "Skip the GPT-2-small-shape training row."})
    gpt2_small_generation: bool = field(
        default=False,
        metadata={"help": "Add a GPT-2-small generation row (one pair; the no-cache loop takes minutes)."},
    )
    output: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})
    seed: int = field(default=0, metadata={"help": "Seed for weights and batches."})


def train_step(model, batch):
    model.zero_grad(set_to_none=True)
    model(input_ids=batch, labels=batch).loss.backward()


def bench_training(shape: dict, batch_size: int, block: int, trials: int, seed: int) -> dict:
    """Forward+backward tokens/s of our GPT vs GPT2LMHeadModel holding the same weights."""
    torch.manual_seed(seed)
    gpt2 = GPT2LMHeadModel(
        GPT2Config(**shape, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, bos_token_id=0, eos_token_id=0)
    ).train()
    ours = gpt2_to_gpt(gpt2).train()
    batch = torch.randint(0, shape["vocab_size"], (batch_size, block))
    result = side_by_side(lambda: train_step(ours, batch), lambda: train_step(gpt2, batch), trials)
    tokens = batch_size * block
    return {
        "shape": f"{describe(shape)}, batch {batch_size} x {block}",
        "ours_tokens_per_s": tokens / result["candidate_s"],
        "gpt2_tokens_per_s": tokens / result["baseline_s"],
        "ratio_ours_vs_gpt2": result["speedup"],
    }


@torch.no_grad()
def no_cache_greedy(model, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """The textbook loop: re-run the whole sequence for every new token."""
    ids = prompt
    for _ in range(new_tokens):
        logits = model(ids, use_cache=False).logits[:, -1]
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
    return ids


@torch.no_grad()
def cached_greedy(model, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    return model.generate(prompt, max_new_tokens=new_tokens, do_sample=False, pad_token_id=0, eos_token_id=None)


def bench_generation(shape: dict, new_tokens: int, trials: int, warmup: int, seed: int) -> dict:
    """Greedy tokens/s of `generate` with the KV cache vs the no-cache loop; both must produce the same tokens."""
    torch.manual_seed(seed)
    config = GPT2Config(**shape, n_positions=new_tokens + 16, bos_token_id=0, eos_token_id=0)
    model: GPTForCausalLM = gpt2_to_gpt(GPT2LMHeadModel(config)).eval()
    prompt = torch.randint(0, shape["vocab_size"], (1, 8))
    outputs = {}

    def cached():
        outputs["cached"] = cached_greedy(model, prompt, new_tokens)

    def no_cache():
        outputs["no_cache"] = no_cache_greedy(model, prompt, new_tokens)

    result = side_by_side(cached, no_cache, trials, warmup)
    if not torch.equal(outputs["cached"], outputs["no_cache"]):
        raise RuntimeError("KV-cache generation disagrees with the no-cache loop; the benchmark would be meaningless.")
    return {
        "shape": f"{describe(shape)}, 1 x (8 prompt + {new_tokens} new), greedy",
        "cached_tokens_per_s": new_tokens / result["candidate_s"],
        "no_cache_tokens_per_s": new_tokens / result["baseline_s"],
        "ratio_cached_vs_no_cache": result["speedup"],
    }


NANO_SHAPE = dict(n_layer=4, n_head=4, n_embd=128, vocab_size=65)
SHAKESPEARE_SHAPE = dict(n_layer=6, n_head=6, n_embd=384, vocab_size=65)  # nanoGPT's shakespeare_char model


def bench_model(args: ModelBenchArguments) -> dict:
    """Training throughput vs GPT-2 (target >= 1.0x) and cached generation vs a no-cache loop (target >= 5x)."""
    generation_trials = max(3, args.trials // 2)
    results = {
        "training": [bench_training({**NANO_SHAPE, "n_positions": 64}, 12, 64, args.trials, args.seed)],
        "generation": [
            bench_generation(NANO_SHAPE, args.new_tokens, generation_trials, 1, args.seed),
            bench_generation(SHAKESPEARE_SHAPE, args.new_tokens, 2, 0, args.seed),
        ],
    }
    if not args.skip_gpt2_small:
        small = {**GPT2_SMALL_SHAPE, "n_positions": 1024}
        results["training"].append(bench_training(small, 1, 128, max(3, args.trials // 2), args.seed))
    if args.gpt2_small_generation:
        results["generation"].append(bench_generation(GPT2_SMALL_SHAPE, args.new_tokens, 1, 0, args.seed))
    results["torch_threads"] = torch.get_num_threads()
    return results


def format_model_results(results: dict) -> str:
    lines = [
        "| training (forward+backward) | ours tokens/s | GPT2LMHeadModel tokens/s | ours / GPT-2 |",
        "|---|---|---|---|",
    ]
    for row in results["training"]:
        lines.append(
            f"| {row['shape']} | {row['ours_tokens_per_s']:,.0f} | {row['gpt2_tokens_per_s']:,.0f} "
            f"| {row['ratio_ours_vs_gpt2']:.2f}x |"
        )
    lines += [
        "",
        "| generation | KV cache tokens/s | no-cache loop tokens/s | cache / no cache |",
        "|---|---|---|---|",
    ]
    for row in results["generation"]:
        lines.append(
            f"| {row['shape']} | {row['cached_tokens_per_s']:,.0f} | {row['no_cache_tokens_per_s']:,.0f} "
            f"| {row['ratio_cached_vs_no_cache']:.2f}x |"
        )
    return "\n".join(lines)
