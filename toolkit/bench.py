"""`toolkit bench <name>`: speed measured as ratios against a baseline in the same run, side by side.

Each benchmark alternates the candidate and its baseline trial by trial (A B A B ...) so drift of a noisy machine
hits both, and reports medians and the median of the per-pair ratios.
"""

import copy
import json
import math
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    TrainerCallback,
    TrainingArguments,
    get_scheduler,
)
from trl import TrlParser

from .bench_trl_ppo import MemoryMeter, build_models
from .models import GPTForCausalLM, gpt2_to_gpt


def time_call(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def side_by_side(candidate: Callable, baseline: Callable, trials: int, warmup: int = 1) -> dict:
    """Seconds per call for both, alternating, plus the median of per-pair ratios baseline/candidate (speed-up)."""
    for _ in range(warmup):
        candidate()
        baseline()
    pairs = [(time_call(candidate), time_call(baseline)) for _ in range(trials)]
    return {
        "candidate_s": statistics.median(c for c, _ in pairs),
        "baseline_s": statistics.median(b for _, b in pairs),
        "speedup": statistics.median(b / c for c, b in pairs),
    }


@dataclass
class ModelBenchArguments:
    trials: int = field(default=7, metadata={"help": "Timed pairs per measurement (after one warm-up pair)."})
    new_tokens: int = field(default=256, metadata={"help": "Tokens generated in the KV-cache benchmark."})
    skip_gpt2_small: bool = field(default=False, metadata={"help": "Skip the GPT-2-small-shape training row."})
    gpt2_small_generation: bool = field(
        default=False,
        metadata={"help": "Add a GPT-2-small generation row (one pair; the no-cache loop takes minutes)."},
    )
    output: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})
    seed: int = field(default=0, metadata={"help": "Seed for weights and batches."})


def describe(shape: dict) -> str:
    return f"{shape['n_layer']}L {shape['n_head']}H {shape['n_embd']}C"


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
GPT2_SMALL_SHAPE = dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257)


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


@dataclass
class PretrainBenchArguments:
    dataset: str = field(metadata={"help": "Tiny Shakespeare's input.txt (../shared/data/tinyshakespeare/input.txt)."})
    recipe_config: str = field(
        default="recipes/configs/pretrain/shakespeare_char.yaml",
        metadata={"help": "The pretraining YAML both runs use (nanoGPT's CPU Shakespeare configuration)."},
    )
    max_steps: int = field(default=2000, metadata={"help": "Optimizer steps of each run."})
    eval_steps: int = field(default=250, metadata={"help": "Evaluate on the whole validation split every N steps."})
    target_loss: float = field(default=1.89, metadata={"help": "Report the first evaluation at or below this loss."})
    output: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})


class StepTimes(TrainerCallback):
    """Wall time of each optimizer step, with evaluations and saves left out."""

    def __init__(self):
        self.times: list[float] = []
        self.start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self.start)


@torch.no_grad()
def validation_loss(model, blocks, batch_size: int) -> float:
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(blocks), batch_size):
        ids = torch.tensor(blocks[start : start + batch_size]["input_ids"])
        total += model(input_ids=ids, labels=ids).loss.item() * ids[:, 1:].numel()
        count += ids[:, 1:].numel()
    model.train()
    return total / count


def bare_pytorch_run(model, blocks, args: TrainingArguments, eval_steps: int) -> tuple[list[float], dict[int, float]]:
    """nanoGPT's loop over the same blocks: AdamW with decay on matrices only, the same schedule and clipping."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
    )
    scheduler = get_scheduler(
        args.lr_scheduler_type,
        optimizer,
        num_warmup_steps=args.get_warmup_steps(args.max_steps),
        num_training_steps=args.max_steps,
        scheduler_specific_kwargs=args.lr_scheduler_kwargs,
    )
    train = torch.tensor(blocks["train"]["input_ids"])  # (N, T): the whole training set as one tensor
    order = torch.Generator().manual_seed(args.seed)
    batch_size = args.per_device_train_batch_size
    times, evals, step = [], {}, 0
    model.train()
    while step < args.max_steps:
        permutation = torch.randperm(len(train), generator=order)
        for first in range(0, len(train) - batch_size + 1, batch_size):
            start = time.perf_counter()
            ids = train[permutation[first : first + batch_size]]
            model(input_ids=ids, labels=ids).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - start)
            step += 1
            if step % eval_steps == 0 or step == args.max_steps:
                evals[step] = validation_loss(model, blocks["validation"], args.per_device_eval_batch_size)
            if step == args.max_steps:
                break
    return times, evals


def first_at_or_below(evals: dict[int, float], target: float) -> int | None:
    return next((step for step, loss in sorted(evals.items()) if loss <= target), None)


def bench_pretrain(args: PretrainBenchArguments) -> dict:
    """The pretraining recipe's Trainer vs a bare PyTorch loop: same model init, data, optimizer and schedule."""
    from .pipelines.pretrain import prepare as prepare_pretraining
    from .training import PretrainDataArguments, PretrainModelArguments, RunArguments, ToolkitTrainer

    with tempfile.TemporaryDirectory() as output_dir:
        overrides = ["--dataset", args.dataset, "--output_dir", output_dir, "--max_steps", str(args.max_steps)]
        overrides += ["--eval_steps", str(args.eval_steps), "--save_strategy", "no", "--report_to", "none"]
        parser = TrlParser((PretrainModelArguments, PretrainDataArguments, RunArguments, TrainingArguments))
        model_args, data_args, _, training_args = parser.parse_args_and_config(
            ["--config", args.recipe_config, *overrides]
        )
        tokenizer, trainer_model, blocks = prepare_pretraining(model_args, data_args, training_args)
        bare_model = copy.deepcopy(trainer_model)

        timer = StepTimes()
        trainer = ToolkitTrainer(
            model=trainer_model,
            args=training_args,
            train_dataset=blocks["train"],
            eval_dataset=blocks["validation"],
            processing_class=tokenizer,
            callbacks=[timer],
        )
        trainer.train()
        trainer_evals = {row["step"]: row["eval_loss"] for row in trainer.state.log_history if "eval_loss" in row}
        bare_times, bare_evals = bare_pytorch_run(bare_model, blocks, training_args, args.eval_steps)

    tokens = training_args.per_device_train_batch_size * data_args.block_size
    trainer_step, bare_step = statistics.median(timer.times), statistics.median(bare_times)

    def run_summary(times, evals):
        reached = first_at_or_below(evals, args.target_loss)
        return {
            "tokens_per_s": tokens / statistics.median(times),
            "ms_per_step": 1000 * statistics.median(times),
            "train_seconds": sum(times),
            "final_eval_loss": evals[max(evals)],
            "evals": evals,
            "first_step_at_target": reached,
            "train_seconds_to_target": sum(times[:reached]) if reached else None,
        }

    return {
        "setup": f"{args.recipe_config}, {args.max_steps} steps, batch {tokens} tokens, torch threads "
        f"{torch.get_num_threads()}",
        "target_loss": args.target_loss,
        "trainer": run_summary(timer.times, trainer_evals),
        "bare_pytorch": run_summary(bare_times, bare_evals),
        "ratio_trainer_vs_bare": bare_step / trainer_step,
    }


def format_pretrain_results(results: dict) -> str:
    lines = [
        f"{results['setup']}",
        "",
        "| loop | tokens/s | ms/step | train s | final val loss | first step <= "
        f"{results['target_loss']} | train s to it |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("trainer", "bare_pytorch"):
        row = results[name]
        to_target = f"{row['train_seconds_to_target']:.1f}" if row["train_seconds_to_target"] else "-"
        lines.append(
            f"| {name} | {row['tokens_per_s']:,.0f} | {row['ms_per_step']:.1f} | {row['train_seconds']:.1f} "
            f"| {row['final_eval_loss']:.4f} | {row['first_step_at_target'] or '-'} | {to_target} |"
        )
    lines.append(f"\nTrainer throughput / bare loop: {results['ratio_trainer_vs_bare']:.2f}x")
    return "\n".join(lines)


@dataclass
class MemoryBenchArguments:
    steps: int = field(default=3, metadata={"help": "Training steps per method."})
    batch_size: int = field(default=4, metadata={"help": "Sequences per step."})
    block_size: int = field(default=128, metadata={"help": "Tokens per sequence."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (on c_attn, the SFT recipe's default target)."})
    output: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})


def in_fresh_process(function: Callable[[dict], dict], spec: dict) -> dict:
    """function(spec) in a new process, so its peak memory is its own (exceptions come back here)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, spec).result()


def peak_memory_of_training(spec: dict) -> dict:
    """A GPT-2-small-shaped model, `steps` AdamW steps, then the process's peak RSS (run it in a fresh process)."""
    from .adapters import apply_lora, parameter_counts

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)).train()
    if spec["method"] == "lora":
        model = apply_lora(model, r=spec["lora_r"], dropout=0.0)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    batch = torch.randint(0, 50257, (spec["batch_size"], spec["block_size"]))
    for _ in range(spec["steps"]):
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {"peak_rss_mib": MemoryMeter.peak_rss_mib(), "trainable_parameters": parameter_counts(model)[0]}


def bench_memory(args: MemoryBenchArguments) -> dict:
    """Peak resident memory of full fine-tuning vs LoRA at the GPT-2-small shape, each in its own process."""
    figures = {
        method: in_fresh_process(peak_memory_of_training, {"method": method, **asdict(args)})
        for method in ("full", "lora")
    }
    return {
        "setup": f"GPT2LMHeadModel 124M, batch {args.batch_size} x {args.block_size}, {args.steps} AdamW steps, fp32",
        **figures,
        "ratio_lora_vs_full": figures["lora"]["peak_rss_mib"] / figures["full"]["peak_rss_mib"],
    }


def format_memory_results(results: dict) -> str:
    lines = [results["setup"], "", "| method | trainable parameters | peak RSS (MiB) |", "|---|---|---|"]
    for method in ("full", "lora"):
        row = results[method]
        lines.append(f"| {method} | {row['trainable_parameters']:,} | {row['peak_rss_mib']:,.0f} |")
    lines.append(f"\nLoRA peak / full peak: {results['ratio_lora_vs_full']:.2f}")
    return "\n".join(lines)


@dataclass
class EvalBenchArguments:
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
    from .evaluation import evaluate_gsm8k, perplexity_of_texts
    from .tasks.arithmetic import make_arithmetic_dataset
    from .tokenization import train_bpe_tokenizer

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


@dataclass
class PPOBenchArguments:
    trials: int = field(
        default=5, metadata={"help": "Tiny-config runs per trainer, interleaved (ours, TRL, ours, TRL, ...)."}
    )
    steps: int = field(default=8, metadata={"help": "Timed PPO steps per tiny-config run, after one warm-up step."})
    batch_size: int = field(default=8, metadata={"help": "Prompts rolled out per PPO step."})
    mini_batch_size: int = field(
        default=8,
        metadata={"help": "Rollouts per optimizer step (TRL: num_mini_batches = batch_size / mini_batch_size)."},
    )
    new_tokens: int = field(default=8, metadata={"help": "Sampled response tokens per prompt."})
    ppo_epochs: int = field(default=2, metadata={"help": "PPO epochs over each rollout batch."})
    prompt_tokens: int = field(
        default=16, metadata={"help": "Tokens of every prompt (all the same length: no padding on either side)."}
    )
    gpt2_small_steps: int = field(
        default=2, metadata={"help": "Timed steps of each GPT-2-small-shape run, after one warm-up step."}
    )
    skip_gpt2_small: bool = field(
        default=False, metadata={"help": "Skip the GPT-2-small-shape runs (minutes on CPU)."}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank of the LoRA policy (on c_attn)."})
    trl_python: str | None = field(
        default=None,
        metadata={
            "help": "Python of a separate venv with trl==1.12.0: runs TRL's PPOTrainer side by side on the tiny "
            "config. Without it the TRL column is skipped."
        },
    )
    threads: int | None = field(
        default=None, metadata={"help": "torch threads of every run, both trainers. Default: torch's default."}
    )
    output: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})
    seed: int = field(default=0, metadata={"help": "Seed for weights, prompts and sampling."})


TRL_SETUP = (
    "Set up TRL 1.12 in its own venv (never in the toolkit's): python -m venv trl112-venv && "
    "trl112-venv/bin/pip install torch==2.13.0 && trl112-venv/bin/pip install trl==1.12.0; then pass "
    "--trl_python trl112-venv/bin/python."
)
TINY_PPO_SHAPE = dict(n_layer=2, n_head=2, n_embd=64, n_positions=128)


def check_trl_python(trl_python: str) -> str:
    """The TRL version that `trl_python` imports; a ValueError saying how to set it up when it cannot run TRL's PPO."""
    if shutil.which(trl_python) is None:
        raise ValueError(f"--trl_python {trl_python!r} is not an executable. {TRL_SETUP}")
    probe = "import trl, trl.experimental.ppo; print(trl.__version__)"
    found = subprocess.run([trl_python, "-I", "-c", probe], capture_output=True, text=True)
    if found.returncode != 0:
        error = (found.stderr.strip().splitlines() or [""])[-1]
        raise ValueError(
            f"--trl_python {trl_python} cannot import trl.experimental.ppo (TRL 1.12's PPOTrainer): {error}\n"
            f"{TRL_SETUP}"
        )
    return found.stdout.strip()


def our_ppo_run(spec: dict) -> dict:
    """Our PPOTrainer on `spec`: warm-up steps, then the timed steps; their seconds and the peak memory."""
    from .adapters import apply_lora
    from .rlhf import PPOConfig, PPOTrainer

    torch.set_num_threads(spec["threads"])
    meter = MemoryMeter()
    tokenizer = AutoTokenizer.from_pretrained(spec["tokenizer_dir"], padding_side="left")
    policy, reward_model = build_models(spec["model_config"], tokenizer.pad_token_id, spec["seed"])
    value_model = copy.deepcopy(reward_model) if spec["value"] == "value model" else None
    if spec["policy"] == "lora":
        policy = apply_lora(policy, r=spec["lora_r"], dropout=0.0)
    steps = spec["warmup_steps"] + spec["steps"]
    with tempfile.TemporaryDirectory() as output_dir:
        config = PPOConfig(
            output_dir=output_dir,
            seed=spec["seed"],
            max_steps=steps,
            per_device_train_batch_size=spec["mini_batch_size"],
            num_mini_batches=spec["batch_size"] // spec["mini_batch_size"],
            num_ppo_epochs=spec["ppo_epochs"],
            max_new_tokens=spec["new_tokens"],
            temperature=spec["temperature"],
            learning_rate=spec["learning_rate"],
            sample_steps=0,
            disable_tqdm=True,
            report_to="none",
            use_cpu=True,
        )
        trainer = PPOTrainer(
            config, policy, tokenizer, spec["prompts"], reward_model=reward_model, value_model=value_model
        )
        step_seconds = [time_call(trainer.step) for _ in range(steps)]
    return {"step_seconds": step_seconds[spec["warmup_steps"] :], **meter.read()}


def trl_ppo_run(spec: dict, trl_python: str) -> dict:
    """TRL's PPOTrainer on `spec`, in `trl_python`'s venv (bench_trl_ppo.py, which never imports toolkit)."""
    with tempfile.TemporaryDirectory() as folder:
        spec_path, result_path = Path(folder, "spec.json"), Path(folder, "result.json")
        spec_path.write_text(json.dumps(spec))
        script = Path(__file__).with_name("bench_trl_ppo.py")
        # -I: the script's folder (toolkit/) must not shadow top-level modules such as `data` or `models`.
        command = [trl_python, "-I", str(script), str(spec_path), str(result_path)]
        finished = subprocess.run(command, capture_output=True, text=True)
        if finished.returncode != 0:
            raise RuntimeError(f"TRL's PPO run failed ({' '.join(command)}):\n{finished.stderr[-3000:]}")
        return json.loads(result_path.read_text())


def episodes_per_second(run: dict, batch_size: int) -> float:
    return batch_size * len(run["step_seconds"]) / sum(run["step_seconds"])


def summarise_runs(runs: list[dict], batch_size: int) -> dict:
    return {
        "episodes_per_s": statistics.median(episodes_per_second(run, batch_size) for run in runs),
        "peak_memory_mib": statistics.median(run["peak_memory_mib"] for run in runs),
        "memory_growth_mib": statistics.median(run["memory_growth_mib"] for run in runs),
        "runs": runs,
    }


def ppo_prompts_and_tokenizer(args: PPOBenchArguments, folder: str) -> list[str]:
    """Arithmetic questions cut to `prompt_tokens` characters, and a character tokenizer over them saved in
    `folder` (both trainers load it from there)."""
    from .tasks.arithmetic import make_arithmetic_dataset
    from .tokenization import build_char_tokenizer

    questions = make_arithmetic_dataset("train", 64, seed=args.seed)["question"]
    build_char_tokenizer(questions, padding_side="left").save_pretrained(folder)
    return [question[: args.prompt_tokens] for question in questions]


def bench_ppo(args: PPOBenchArguments) -> dict:
    """PPO episodes/s and peak memory: ours vs TRL 1.12 on the tiny config (interleaved runs, each in a fresh
    process, warm-up step excluded), then ours at the GPT-2-small shape, full policy vs LoRA."""
    trl_version = check_trl_python(args.trl_python) if args.trl_python else None
    threads = args.threads or torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tokenizer_dir:
        prompts = ppo_prompts_and_tokenizer(args, tokenizer_dir)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        vocabulary = dict(
            vocab_size=len(tokenizer), bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id
        )
        tiny = {
            "tokenizer_dir": tokenizer_dir,
            "prompts": prompts,
            "model_config": {**TINY_PPO_SHAPE, **vocabulary},
            "seed": args.seed,
            "threads": threads,
            "batch_size": args.batch_size,
            "mini_batch_size": args.mini_batch_size,
            "ppo_epochs": args.ppo_epochs,
            "new_tokens": args.new_tokens,
            "warmup_steps": 1,
            "steps": args.steps,
            "temperature": 0.7,
            "learning_rate": 3e-6,
            # The only setup TRL's PPOTrainer takes: full policy, frozen copy as reference, separate value model.
            "policy": "full",
            "value": "value model",
        }
        ours_runs, trl_runs = [], []
        for _ in range(args.trials):
            ours_runs.append(in_fresh_process(our_ppo_run, tiny))
            if args.trl_python:
                trl_runs.append(trl_ppo_run(tiny, args.trl_python))
        results = {
            "setup": f"{describe(TINY_PPO_SHAPE)} GPT-2 policy, reward model and value model of the same shape, "
            f"vocabulary {len(tokenizer)}, batch {args.batch_size} (mini-batch {args.mini_batch_size}) x "
            f"({args.prompt_tokens} prompt + {args.new_tokens} new tokens), {args.ppo_epochs} PPO epochs, "
            f"{args.steps} timed steps per run after 1 warm-up, {args.trials} runs each, torch threads {threads}",
            "memory_measure": "torch.cuda.max_memory_allocated" if torch.cuda.is_available() else "peak RSS",
            "ours": summarise_runs(ours_runs, args.batch_size),
        }
        if args.trl_python:
            results["trl"] = {"version": trl_version, **summarise_runs(trl_runs, args.batch_size)}
            results["ratio_ours_vs_trl"] = statistics.median(
                episodes_per_second(ours, args.batch_size) / episodes_per_second(trl, args.batch_size)
                for ours, trl in zip(ours_runs, trl_runs)
            )
        else:
            results["trl_skipped"] = f"TRL column skipped: no --trl_python. {TRL_SETUP}"
        if not args.skip_gpt2_small:
            results["gpt2_small"] = bench_ppo_gpt2_small(args, tiny)
    return results


def bench_ppo_gpt2_small(args: PPOBenchArguments, tiny: dict) -> dict:
    """At the GPT-2-small shape (vocabulary 50257; the prompts still use the character tokenizer's ids): the tiny
    config's setup, then a full policy with its frozen copy vs LoRA with the adapter-disabled reference, both with
    the value head so that only the policy side differs."""
    small = {
        **tiny,
        "model_config": {**tiny["model_config"], **GPT2_SMALL_SHAPE, "n_positions": 1024},
        "steps": args.gpt2_small_steps,
        "lora_r": args.lora_r,
    }

    def measure(policy: str, value: str) -> dict:
        run = in_fresh_process(our_ppo_run, {**small, "policy": policy, "value": value})
        return {
            "policy": "full" if policy == "full" else f"LoRA r={args.lora_r}",
            "reference": "separate frozen copy" if policy == "full" else "policy with the adapter disabled",
            "value": value,
            "episodes_per_s": episodes_per_second(run, args.batch_size),
            "peak_memory_mib": run["peak_memory_mib"],
            "memory_growth_mib": run["memory_growth_mib"],
            "step_seconds": run["step_seconds"],
        }

    as_tiny = measure("full", "value model")
    full, lora = measure("full", "value head"), measure("lora", "value head")
    return {
        "rows": [as_tiny, full, lora],
        "ratio_lora_vs_full_peak_memory": lora["peak_memory_mib"] / full["peak_memory_mib"],
    }


def format_ppo_results(results: dict) -> str:
    lines = [
        results["setup"],
        "",
        f"| tiny config | episodes/s | {results['memory_measure']} (MiB) | growth over start (MiB) |",
        "|---|---|---|---|",
    ]
    trainers = [("ours (toolkit.rlhf.PPOTrainer)", results["ours"])]
    if "trl" in results:
        trainers.append((f"TRL {results['trl']['version']} (trl.experimental.ppo.PPOTrainer)", results["trl"]))
    for name, row in trainers:
        memory = f"{row['peak_memory_mib']:,.0f} | {row['memory_growth_mib']:,.0f}"
        lines.append(f"| {name} | {row['episodes_per_s']:.2f} | {memory} |")
    if "trl" in results:
        lines.append(f"\nours / TRL episodes/s (median of per-pair ratios): {results['ratio_ours_vs_trl']:.2f}x")
    else:
        lines.append(f"\n{results['trl_skipped']}")
    if "gpt2_small" in results:
        small = results["gpt2_small"]
        lines += [
            "",
            f"| GPT-2-small shape: policy | reference | value | episodes/s | {results['memory_measure']} (MiB) "
            "| growth over start (MiB) |",
            "|---|---|---|---|---|---|",
        ]
        for row in small["rows"]:
            lines.append(
                f"| {row['policy']} | {row['reference']} | {row['value']} | {row['episodes_per_s']:.3f} "
                f"| {row['peak_memory_mib']:,.0f} | {row['memory_growth_mib']:,.0f} |"
            )
        lines.append(
            f"\nLoRA peak / full peak (both with the value head): {small['ratio_lora_vs_full_peak_memory']:.2f}"
        )
    return "\n".join(lines)


BENCHMARKS = {
    "model": (ModelBenchArguments, bench_model, format_model_results),
    "eval": (EvalBenchArguments, bench_eval, format_eval_results),
    "pretrain": (PretrainBenchArguments, bench_pretrain, format_pretrain_results),
    "memory": (MemoryBenchArguments, bench_memory, format_memory_results),
    "ppo": (PPOBenchArguments, bench_ppo, format_ppo_results),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: toolkit bench {{{','.join(BENCHMARKS)}}} [--flag value ...]", file=sys.stderr)
        return 2
    arguments_class, run, render = BENCHMARKS[argv[0]]
    (args,) = TrlParser(arguments_class, prog=f"toolkit bench {argv[0]}").parse_args_and_config(argv[1:])
    results = run(args)
    print(render(results))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps({"arguments": asdict(args), **results}, indent=2))
    return 0
