"""`toolkit bench generate`: greedy KV-cache generation of our GPT against GPT2LMHeadModel holding the same weights."""

from dataclasses import dataclass, field

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from ..models import gpt2_to_gpt
from .common import GPT2_SMALL_SHAPE, describe, side_by_side

TINY_SHAPE = dict(n_layer=4, n_head=4, n_embd=128, vocab_size=65)


@dataclass
class GenerateBenchArguments:
    """Greedy generation of our GPT against GPT2LMHeadModel, same weights, tiny and GPT-2-small shapes."""

    trials: int = field(default=5, metadata={"help": "Timed pairs per row (after one warm-up pair), alternating."})
    prompt_tokens: int = field(default=16, metadata={"help": "Prompt length."})
    new_tokens: int = field(default=64, metadata={"help": "Tokens generated per row."})
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8], metadata={"help": "Batch sizes to measure."})
    skip_gpt2_small: bool = field(default=False, metadata={"help": "Only the tiny shape."})
    threads: int | None = field(default=None, metadata={"help": "torch threads (None: as set)."})
    output: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})
    seed: int = field(default=0, metadata={"help": "Seed for weights and prompts."})


@torch.no_grad()
def greedy(model, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    settings = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    return model.generate(prompt, attention_mask=torch.ones_like(prompt), **settings)


def bench_pair(shape: dict, batch_size: int, args: GenerateBenchArguments) -> dict:
    """One row: tokens/s of both models and the median per-pair ratio; their greedy tokens must be identical."""
    torch.manual_seed(args.seed)
    context = args.prompt_tokens + args.new_tokens
    config = GPT2Config(**shape, n_positions=context, bos_token_id=0, eos_token_id=0)
    gpt2 = GPT2LMHeadModel(config).eval()
    ours = gpt2_to_gpt(gpt2).eval()
    prompt = torch.randint(1, shape["vocab_size"], (batch_size, args.prompt_tokens))
    outputs = {}

    def run_ours():
        outputs["ours"] = greedy(ours, prompt, args.new_tokens)

    def run_gpt2():
        outputs["gpt2"] = greedy(gpt2, prompt, args.new_tokens)

    result = side_by_side(run_ours, run_gpt2, args.trials)
    if not torch.equal(outputs["ours"], outputs["gpt2"]):
        raise RuntimeError("Our GPT's greedy tokens differ from GPT2LMHeadModel's with the same weights.")
    tokens = batch_size * args.new_tokens
    return {
        "shape": f"{describe(shape)}, batch {batch_size} x ({args.prompt_tokens} + {args.new_tokens})",
        "ours_tokens_per_s": tokens / result["candidate_s"],
        "gpt2_tokens_per_s": tokens / result["baseline_s"],
        "ratio_ours_vs_gpt2": result["speedup"],
    }


def bench_generate(args: GenerateBenchArguments) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = [TINY_SHAPE] + ([] if args.skip_gpt2_small else [GPT2_SMALL_SHAPE])
    rows = [bench_pair(shape, batch, args) for shape in shapes for batch in args.batch_sizes]
    return {"generation": rows, "torch_threads": torch.get_num_threads()}


def format_generate_results(results: dict) -> str:
    lines = [
        f"greedy generation, {results['torch_threads']} thread(s); identical tokens checked",
        "",
        "| shape | ours tokens/s | GPT2LMHeadModel tokens/s | ours / GPT-2 |",
        "|---|---|---|---|",
    ]
    for row in results["generation"]:
        lines.append(
            f"| {row['shape']} | {row['ours_tokens_per_s']:,.0f} | {row['gpt2_tokens_per_s']:,.0f} "
            f"| {row['ratio_ours_vs_gpt2']:.2f}x |"
        )
    return "\n".join(lines)
