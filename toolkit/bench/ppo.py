"""`toolkit bench ppo`: our PPOTrainer's episodes/s and peak memory, side by side with TRL 1.12's in its own venv."""

import copy
import json
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
)

from .common import GPT2_SMALL_SHAPE, describe, in_fresh_process, time_call
from .trl_ppo import MemoryMeter, build_models


@dataclass
class PPOBenchArguments:
    """Our PPOTrainer's episodes/s and peak memory against TRL 1.12's, side by side."""

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
    from ..adapters import apply_lora
    from ..rlhf import PPOConfig, PPOTrainer

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
    """TRL's PPOTrainer on `spec`, in `trl_python`'s venv (bench/trl_ppo.py, which never imports toolkit)."""
    with tempfile.TemporaryDirectory() as folder:
        spec_path, result_path = Path(folder, "spec.json"), Path(folder, "result.json")
        spec_path.write_text(json.dumps(spec))
        script = Path(__file__).with_name("trl_ppo.py")
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
    from ..tasks.arithmetic import make_arithmetic_dataset
    from ..tokenization import build_char_tokenizer

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
