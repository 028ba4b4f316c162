"""`toolkit bench eval`: batched evaluation against one example at a time (perplexity windows, GSM8K answers)."""

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
)

from ..models import gpt2_to_gpt
from .common import side_by_side


@dataclass
class EvalBenchArguments:
    """Batched evaluation against one example at a time (perplexity windows, GSM8K answers)."""

    text_file: str = field(metadata={"help": "Text to score (e.g. ../shared/data/wikitext2/wiki.test.raw)."})
    characters: int = field(default=200_000, metadata={"help": "Score the first N characters of the file."})
    problems: int = field(default=64, metadata={"help": "GSM8K-style problems generated (built-in arithmetic)."})
    perplexity_batch_size: int = field(
        default=4, metadata={"help": "Windows per forward pass (on CPU, 4 x 512 tokens is faster than 16 x 512)."}
    )
    gsm8k_batch_size: int = field(default=16, metadata={"help": "Prompts per generate call in the batched run."})
    trials: int = field(default=3, metadata={"help": "Timed pairs per measurement."})
    output: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})


@torch.no_grad()
def naive_perplexity(model, token_ids: list[int], context: int) -> float:
    """One window at a time, the textbook loop: disjoint windows, each scored in its own forward pass."""
    nll, count = 0.0, 0
    for start in range(0, len(token_ids) - 1, context):
        window = torch.tensor([token_ids[start : start + context + 1]])
        logits = model(window[:, :-1]).logits
        nll += torch.nn.functional.cross_entropy(logits[0], window[0, 1:], reduction="sum").item()
        count += window.shape[1] - 1
    return math.exp(nll / count)


def bench_eval(args: EvalBenchArguments) -> dict:
    """Batched evaluation vs one-at-a-time on a GPT-2-shaped model of 4 layers: perplexity over a text file, and
    greedy GSM8K-style answers with the KV cache."""
    from ..evaluation import evaluate_gsm8k, perplexity_of_texts
    from ..tasks.arithmetic import make_arithmetic_dataset
    from ..tokenization import train_bpe_tokenizer

    text = Path(args.text_file).read_text(encoding="utf-8")[: args.characters]
    problems = make_arithmetic_dataset("test", args.problems, seed=0)
    tokenizer = train_bpe_tokenizer([text, *problems["question"], *problems["answer"]], vocab_size=2048)
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=4,
        n_head=4,
        n_embd=256,
        n_positions=512,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = gpt2_to_gpt(GPT2LMHeadModel(config)).eval()
    context = config.n_positions
    token_ids = [tokenizer.eos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]

    def batched():
        return perplexity_of_texts(
            model, tokenizer, [text], batch_size=args.perplexity_batch_size, show_progress=False
        )

    if abs(batched().perplexity - naive_perplexity(model, token_ids, context)) > 1e-3 * batched().perplexity:
        raise RuntimeError("Batched and naive perplexity disagree; the benchmark would be meaningless.")
    perplexity = side_by_side(batched, lambda: naive_perplexity(model, token_ids, context), args.trials)

    rows = [{"question": q, "answer": a} for q, a in zip(problems["question"], problems["answer"], strict=True)]

    def answers(batch_size):
        return evaluate_gsm8k(
            model, tokenizer, rows, num_fewshot=0, batch_size=batch_size, max_new_tokens=64, show_progress=False
        )

    gsm8k = side_by_side(lambda: answers(args.gsm8k_batch_size), lambda: answers(1), max(1, args.trials - 1), warmup=0)
    return {
        "setup": f"GPT 4L 4H 256C, context {context}, BPE vocabulary {len(tokenizer)}, "
        f"{len(token_ids) - 1:,} tokens of {Path(args.text_file).name}, {args.problems} problems",
        "perplexity": {
            "batched_tokens_per_s": (len(token_ids) - 1) / perplexity["candidate_s"],
            "naive_tokens_per_s": (len(token_ids) - 1) / perplexity["baseline_s"],
            "speedup": perplexity["speedup"],
        },
        "gsm8k": {
            "batched_problems_per_s": args.problems / gsm8k["candidate_s"],
            "batch_1_problems_per_s": args.problems / gsm8k["baseline_s"],
            "speedup": gsm8k["speedup"],
        },
    }


def format_eval_results(results: dict) -> str:
    ppl, gsm = results["perplexity"], results["gsm8k"]
    return "\n".join(
        [
            results["setup"],
            "",
            "| evaluation | batched | one at a time | speed-up |",
            "|---|---|---|---|",
            f"| perplexity (tokens/s) | {ppl['batched_tokens_per_s']:,.0f} | {ppl['naive_tokens_per_s']:,.0f} "
            f"| {ppl['speedup']:.2f}x |",
            f"| GSM8K-style greedy answers (problems/s) | {gsm['batched_problems_per_s']:.2f} "
            f"| {gsm['batch_1_problems_per_s']:.2f} | {gsm['speedup']:.2f}x |",
        ]
    )
