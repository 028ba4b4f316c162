"""`toolkit bench ppo`: our PPOTrainer's episodes/s and peak memory, side by side with TRL 1.12's in its own venv."""

import copy
import json
import os
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

from ..allocator import REUSE_FREED_MEMORY_ENVIRONMENT
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
    long_prompts: str | None = field(
        default=None,
        metadata={
            "help": "A preference-pair file (prompt/chosen/rejected or hh-rlhf's chosen/rejected JSONL(.gz)): also "
            "profile our trainer at the GPT-2-small shape on its prompts, with and without reuse_freed_memory "
            "(several minutes a step on CPU)."
        },
    )
    long_prompt_tokens: int = field(
        default=400, metadata={"help": "With --long_prompts: longest prompt kept, in (character) tokens."}
    )
    long_new_tokens: int = field(default=53, metadata={"help": "With --long_prompts: sampled tokens per prompt."})
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
            reuse_freed_memory=spec.get("reuse_freed_memory", True),
        )
        trainer = PPOTrainer(
            config, policy, tokenizer, spec["prompts"], reward_model=reward_model, value_model=value_model
        )
        step_seconds, phases = [], []
        for _ in range(steps):
            step_seconds.append(time_call(trainer.step))
            phases.append({key: value for key, value in trainer.state.history[-1].items() if key.startswith("time/")})
    timed = phases[spec["warmup_steps"] :]
    phase_seconds = {key: statistics.mean(step[key] for step in timed) for key in timed[0]}
    return {"step_seconds": step_seconds[spec["warmup_steps"] :], "phase_seconds": phase_seconds, **meter.read()}


def trl_ppo_run(spec: dict, trl_python: str, reuse_freed_memory: bool = False) -> dict:
    """TRL's PPOTrainer on `spec`, in `trl_python`'s venv (bench/trl_ppo.py, which never imports toolkit); with
    `reuse_freed_memory`, under the same glibc allocator settings our CPU runs use."""
    with tempfile.TemporaryDirectory() as folder:
        spec_path, result_path = Path(folder, "spec.json"), Path(folder, "result.json")
        spec_path.write_text(json.dumps(spec))
        script = Path(__file__).with_name("trl_ppo.py")
        # -I: the script's folder (toolkit/) must not shadow top-level modules such as `data` or `models`.
        command = [trl_python, "-I", str(script), str(spec_path), str(result_path)]
        env = {**os.environ, **(REUSE_FREED_MEMORY_ENVIRONMENT if reuse_freed_memory else {})}
        finished = subprocess.run(command, capture_output=True, text=True, env=env)
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


def tiny_spec(args, tokenizer_dir: str, threads: int, **settings) -> dict:
    """The tiny config's run spec, shared by `bench ppo` and `bench alignment`: its prompts and character tokenizer
    (saved in `tokenizer_dir`), its model shape with that tokenizer's vocabulary and EOS, the sampling and step
    settings both benchmarks use, and `settings` (each benchmark's own) over them."""
    prompts = ppo_prompts_and_tokenizer(args, tokenizer_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    vocabulary = dict(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id
    )
    return {
        "tokenizer_dir": tokenizer_dir,
        "prompts": prompts,
        "model_config": {**TINY_PPO_SHAPE, **vocabulary},
        "seed": args.seed,
        "threads": threads,
        "batch_size": args.batch_size,
        "new_tokens": args.new_tokens,
        "warmup_steps": 1,
        "steps": args.steps,
        "temperature": 0.7,
        "learning_rate": 3e-6,
        **settings,
    }


def bench_ppo(args: PPOBenchArguments) -> dict:
    """PPO episodes/s and peak memory: ours vs TRL 1.12 on the tiny config (interleaved runs, each in a fresh
    process, warm-up step excluded), then ours at the GPT-2-small shape, full policy vs LoRA."""
    trl_version = check_trl_python(args.trl_python) if args.trl_python else None
    threads = args.threads or torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tokenizer_dir:
        # The only setup TRL's PPOTrainer takes: full policy, frozen copy as reference, separate value model.
        tiny = tiny_spec(
            args,
            tokenizer_dir,
            threads,
            mini_batch_size=args.mini_batch_size,
            ppo_epochs=args.ppo_epochs,
            policy="full",
            value="value model",
        )
        ours_runs, trl_runs = [], []
        for _ in range(args.trials):
            ours_runs.append(in_fresh_process(our_ppo_run, tiny))
            if args.trl_python:
                trl_runs.append(trl_ppo_run(tiny, args.trl_python))
        results = {
            "setup": f"{describe(TINY_PPO_SHAPE)} GPT-2 policy, reward model and value model of the same shape, "
            f"vocabulary {tiny['model_config']['vocab_size']}, batch {args.batch_size} "
            f"(mini-batch {args.mini_batch_size}) x "
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
        small = {
            **tiny,
            "model_config": {**tiny["model_config"], **GPT2_SMALL_SHAPE, "n_positions": 1024},
            "steps": args.gpt2_small_steps,
            "lora_r": args.lora_r,
        }
        if not args.skip_gpt2_small:
            results["gpt2_small"] = bench_ppo_gpt2_small(args, small)
        if args.long_prompts:
            results["long_prompts"] = long_prompt_profile(args, small)
    return results


def bench_ppo_gpt2_small(args: PPOBenchArguments, small: dict) -> dict:
    """At the GPT-2-small shape (vocabulary 50257; the prompts still use the character tokenizer's ids): the tiny
    config's setup for ours with and without reuse_freed_memory and for TRL (as it ships, and under the same allocator
    settings), then ours with the value head, full policy with its frozen copy vs LoRA with the adapter-disabled
    reference (only the policy side differs). `small` is the tiny config's spec at that shape."""

    def row(run: dict, trainer: str, policy: str, value: str, reuse: bool) -> dict:
        return {
            "trainer": trainer,
            "policy": "full" if policy == "full" else f"LoRA r={args.lora_r}",
            "reference": "separate frozen copy" if policy == "full" else "policy with the adapter disabled",
            "value": value,
            "reuse_freed_memory": reuse,
            "episodes_per_s": episodes_per_second(run, args.batch_size),
            "peak_memory_mib": run["peak_memory_mib"],
            "memory_growth_mib": run["memory_growth_mib"],
            "step_seconds": run["step_seconds"],
            "phase_seconds": run.get("phase_seconds"),
        }

    def ours(policy: str, value: str, reuse: bool = True) -> dict:
        run = in_fresh_process(our_ppo_run, {**small, "policy": policy, "value": value, "reuse_freed_memory": reuse})
        return row(run, "ours", policy, value, reuse)

    before, after = ours("full", "value model", reuse=False), ours("full", "value model")
    rows = [before, after]
    results = {"ratio_reuse_vs_not": after["episodes_per_s"] / before["episodes_per_s"]}
    if args.trl_python:
        for reuse in (False, True):
            run = trl_ppo_run({**small, "policy": "full", "value": "value model"}, args.trl_python, reuse)
            rows.append(row(run, f"TRL {run['trl_version']}", "full", "value model", reuse))
        results["ratio_ours_vs_trl"] = after["episodes_per_s"] / rows[2]["episodes_per_s"]
        results["ratio_ours_vs_trl_same_allocator"] = after["episodes_per_s"] / rows[3]["episodes_per_s"]
    full, lora = ours("full", "value head"), ours("lora", "value head")
    rows += [full, lora]
    results["ratio_lora_vs_full_peak_memory"] = lora["peak_memory_mib"] / full["peak_memory_mib"]
    return {"rows": rows, **results}


def long_prompt_profile(args: PPOBenchArguments, small: dict) -> dict:
    """Our trainer at the GPT-2-small shape on long prompts (a preference file's), with and without
    reuse_freed_memory: episodes/s, peak memory and each phase's seconds per step."""
    from ..rlhf.preferences import load_preference_pairs
    from ..tokenization import build_char_tokenizer

    pairs = load_preference_pairs(args.long_prompts, None, explicit_prompt=True)
    prompts = [prompt[-args.long_prompt_tokens :] for prompt in pairs["prompt"] if prompt][: 4 * args.batch_size]
    with tempfile.TemporaryDirectory() as tokenizer_dir:
        build_char_tokenizer(prompts, padding_side="left").save_pretrained(tokenizer_dir)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        vocabulary = dict(bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
        spec = {
            **small,
            "tokenizer_dir": tokenizer_dir,
            "prompts": prompts,
            "model_config": {**small["model_config"], **vocabulary},
            "new_tokens": args.long_new_tokens,
            "steps": 1,
            "policy": "full",
            "value": "value model",
        }
        runs = {reuse: in_fresh_process(our_ppo_run, {**spec, "reuse_freed_memory": reuse}) for reuse in (False, True)}
    lengths = sorted(len(prompt) for prompt in prompts)
    return {
        "setup": f"{len(prompts)} prompts from {args.long_prompts}, their last <= {args.long_prompt_tokens} "
        f"characters (median {lengths[len(lengths) // 2]}, longest {lengths[-1]} tokens), "
        f"{args.long_new_tokens} new tokens",
        "rows": [
            {
                "reuse_freed_memory": reuse,
                "episodes_per_s": episodes_per_second(run, args.batch_size),
                "peak_memory_mib": run["peak_memory_mib"],
                "phase_seconds": run["phase_seconds"],
                "step_seconds": run["step_seconds"],
            }
            for reuse, run in runs.items()
        ],
    }


def phase_shares(phase_seconds: dict, step_seconds: list[float]) -> str:
    step = statistics.mean(step_seconds)
    shares = [f"{key.removeprefix('time/')} {seconds / step:.0%}" for key, seconds in phase_seconds.items()]
    return ", ".join(shares + [f"other {1 - sum(phase_seconds.values()) / step:.0%}"])


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
            f"| GPT-2-small shape: trainer | policy | reference | value | reuse_freed_memory | episodes/s "
            f"| {results['memory_measure']} (MiB) | growth over start (MiB) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in small["rows"]:
            lines.append(
                f"| {row['trainer']} | {row['policy']} | {row['reference']} | {row['value']} "
                f"| {row['reuse_freed_memory']} | {row['episodes_per_s']:.3f} | {row['peak_memory_mib']:,.0f} "
                f"| {row['memory_growth_mib']:,.0f} |"
            )
        lines.append(f"\nours with / without reuse_freed_memory: {small['ratio_reuse_vs_not']:.2f}x")
        if "ratio_ours_vs_trl" in small:
            lines.append(
                f"ours / TRL episodes/s: {small['ratio_ours_vs_trl']:.2f}x (TRL as it ships), "
                f"{small['ratio_ours_vs_trl_same_allocator']:.2f}x (TRL under the same allocator settings)"
            )
        lines.append(
            f"LoRA peak / full peak (both with the value head): {small['ratio_lora_vs_full_peak_memory']:.2f}"
        )
        lines.append("\nTime per step, ours (value model rows):")
        for row in small["rows"]:
            if row["phase_seconds"] and row["value"] == "value model":
                shares = phase_shares(row["phase_seconds"], row["step_seconds"])
                lines.append(f"- reuse_freed_memory {row['reuse_freed_memory']}: {shares}")
    if "long_prompts" in results:
        long = results["long_prompts"]
        lines += ["", f"Long prompts at the GPT-2-small shape: {long['setup']}"]
        for row in long["rows"]:
            lines.append(
                f"- reuse_freed_memory {row['reuse_freed_memory']}: {row['episodes_per_s']:.4f} episodes/s, peak "
                f"{row['peak_memory_mib']:,.0f} MiB; {phase_shares(row['phase_seconds'], row['step_seconds'])}"
            )
    return "\n".join(lines)
