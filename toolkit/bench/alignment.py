"""`toolkit bench alignment`: episodes/s and peak memory of PPO (ours), GRPO and RLOO (TRL's), and DPO's pairs/s, on
the same models, prompts and response length, each run in a fresh process with the same number of torch threads."""

import statistics
import tempfile
import time
from dataclasses import dataclass, field

import torch
from transformers import AutoTokenizer, TrainerCallback

from .common import GPT2_SMALL_SHAPE, describe, in_fresh_process
from .ppo import TINY_PPO_SHAPE, our_ppo_run, tiny_spec
from .trl_ppo import MemoryMeter, build_models

ONLINE_METHODS = ("ppo (value model)", "ppo (value head)", "grpo", "rloo")


@dataclass
class AlignmentBenchArguments:
    """PPO against GRPO and RLOO (no value model) at equal settings, and DPO's pairs/s."""

    trials: int = field(
        default=3, metadata={"help": "Tiny-config runs per method, interleaved (A B C D A B C D ...)."}
    )
    steps: int = field(default=8, metadata={"help": "Timed steps per tiny-config run, after one warm-up step."})
    batch_size: int = field(
        default=8, metadata={"help": "Episodes (sampled responses) per step; DPO: pairs per step."}
    )
    num_generations: int = field(default=4, metadata={"help": "GRPO/RLOO: responses sampled per prompt."})
    new_tokens: int = field(default=8, metadata={"help": "Sampled response tokens (DPO: tokens of each answer)."})
    prompt_tokens: int = field(default=16, metadata={"help": "Tokens of every prompt."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank of every policy (on c_attn)."})
    gpt2_small_steps: int = field(
        default=2, metadata={"help": "Timed steps of each GPT-2-small-shape run, after one warm-up step."}
    )
    skip_gpt2_small: bool = field(
        default=False, metadata={"help": "Skip the GPT-2-small-shape runs (minutes on CPU)."}
    )
    threads: int = field(default=1, metadata={"help": "torch threads of every run."})
    output: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})
    seed: int = field(default=0, metadata={"help": "Seed for weights, prompts and sampling."})


class StepClock(TrainerCallback):
    """Wall time of each optimizer step of a transformers Trainer (GRPO and RLOO generate inside the step)."""

    def __init__(self):
        self.seconds: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self.started)


def trl_trainer_run(spec: dict) -> dict:
    """TRL's GRPOTrainer, RLOOTrainer or DPOTrainer on `spec` with a LoRA policy (the reference is the policy with
    the adapter disabled), rewarded by the same reward model PPO uses; the seconds of each step and the peak memory."""
    import datasets
    from trl import DPOConfig, DPOTrainer

    from ..adapters import lora_config
    from ..rlhf.group_rl import TRAINERS, GRPOConfig, RLOOConfig
    from ..rlhf.reward_model import reward_scores

    torch.set_num_threads(spec["threads"])
    meter = MemoryMeter()
    tokenizer = AutoTokenizer.from_pretrained(spec["tokenizer_dir"], padding_side="left")
    policy, reward_model = build_models(spec["model_config"], tokenizer.pad_token_id, spec["seed"])
    peft_config = lora_config(policy, r=spec["lora_r"], dropout=0.0)
    clock = StepClock()
    steps = spec["warmup_steps"] + spec["steps"]

    def reward_model_score(prompts, completions, **columns):
        return reward_scores(reward_model, tokenizer, [p + c for p, c in zip(prompts, completions)]).tolist()

    with tempfile.TemporaryDirectory() as output_dir:
        common = dict(
            output_dir=output_dir,
            seed=spec["seed"],
            max_steps=steps,
            per_device_train_batch_size=spec["batch_size"],
            learning_rate=spec["learning_rate"],
            lr_scheduler_type="constant",
            logging_steps=steps,
            save_strategy="no",
            disable_tqdm=True,
            report_to="none",
            use_cpu=True,
            bf16=False,
        )
        if spec["method"] == "dpo":
            answers = [prompt[: spec["new_tokens"]] for prompt in spec["prompts"]]
            pairs = datasets.Dataset.from_dict(
                {"prompt": spec["prompts"], "chosen": answers, "rejected": answers[1:] + answers[:1]}
            )
            config = DPOConfig(**common, beta=0.1, max_length=spec["prompt_tokens"] + spec["new_tokens"] + 1)
            trainer = DPOTrainer(
                model=policy, args=config, train_dataset=pairs, processing_class=tokenizer, peft_config=peft_config
            )
        else:
            config_class = GRPOConfig if spec["method"] == "grpo" else RLOOConfig
            config = config_class(
                **common,
                num_generations=spec["num_generations"],
                max_completion_length=spec["new_tokens"],
                temperature=spec["temperature"],
                beta=spec["kl_coef"],  # a KL to the reference, as PPO's kl_coef: one more forward pass each
            )
            reward_model_score.__name__ = "reward_model"
            trainer = TRAINERS[config_class](
                model=policy,
                reward_funcs=[reward_model_score],
                args=config,
                train_dataset=datasets.Dataset.from_dict({"prompt": spec["prompts"]}),
                processing_class=tokenizer,
                peft_config=peft_config,
            )
        trainer.add_callback(clock)
        trainer.train()
    return {"step_seconds": clock.seconds[spec["warmup_steps"] :], **meter.read()}


def method_run(spec: dict) -> dict:
    """One method's run in this (fresh) process."""
    if spec["method"].startswith("ppo"):
        value = "value model" if "value model" in spec["method"] else "value head"
        return our_ppo_run({**spec, "policy": "lora", "value": value})
    return trl_trainer_run(spec)


def per_second(run: dict, batch_size: int) -> float:
    return batch_size * len(run["step_seconds"]) / sum(run["step_seconds"])


def bench_shape(spec: dict, methods: tuple[str, ...], trials: int) -> dict:
    """Every method `trials` times, interleaved, each run in a fresh process: medians of episodes (pairs) per second
    and of peak memory, and each method's speed over PPO's (value model) as the median of per-trial ratios."""
    runs = {method: [] for method in methods}
    for _ in range(trials):
        for method in methods:
            runs[method].append(in_fresh_process(method_run, {**spec, "method": method}))
    rows = {
        method: {
            "per_second": statistics.median(per_second(run, spec["batch_size"]) for run in method_runs),
            "peak_memory_mib": statistics.median(run["peak_memory_mib"] for run in method_runs),
            "memory_growth_mib": statistics.median(run["memory_growth_mib"] for run in method_runs),
            "step_seconds": [run["step_seconds"] for run in method_runs],
        }
        for method, method_runs in runs.items()
    }
    baseline = runs[ONLINE_METHODS[0]]
    for method in methods:
        rows[method]["speed_vs_ppo"] = statistics.median(
            per_second(run, spec["batch_size"]) / per_second(ppo, spec["batch_size"])
            for run, ppo in zip(runs[method], baseline)
        )
    return rows


def bench_alignment(args: AlignmentBenchArguments) -> dict:
    """The tiny config (`toolkit bench ppo`'s shape), then the GPT-2-small shape (random weights): PPO with a value
    model and with a value head, GRPO, RLOO, one update pass per batch each, then DPO's pairs/s."""
    if args.batch_size % args.num_generations:
        raise ValueError(
            f"--num_generations {args.num_generations} must divide --batch_size {args.batch_size} (whole groups)."
        )
    methods = (*ONLINE_METHODS, "dpo")
    with tempfile.TemporaryDirectory() as tokenizer_dir:
        tiny = tiny_spec(
            args,
            tokenizer_dir,
            args.threads,
            mini_batch_size=args.batch_size,  # PPO: one optimizer step per batch, as GRPO's and RLOO's
            ppo_epochs=1,
            num_generations=args.num_generations,
            prompt_tokens=args.prompt_tokens,
            kl_coef=0.05,
            lora_r=args.lora_r,
        )
        results = {
            "setup": f"LoRA r={args.lora_r} policies (reference: the adapter-disabled policy), a reward model of the "
            f"same shape scoring every response, {args.batch_size} episodes per step ({args.num_generations} per "
            f"prompt for GRPO/RLOO) of {args.prompt_tokens} prompt + {args.new_tokens} new tokens, KL coefficient "
            f"0.05, one optimizer step per batch (PPO: 1 epoch, 1 mini-batch; GRPO/RLOO: num_iterations 1); DPO: "
            f"{args.batch_size} pairs per step; warm-up step excluded, torch threads {args.threads}",
            "memory_measure": "torch.cuda.max_memory_allocated" if torch.cuda.is_available() else "peak RSS",
            "tiny": {"shape": describe(TINY_PPO_SHAPE), "rows": bench_shape(tiny, methods, args.trials)},
        }
        if not args.skip_gpt2_small:
            small = {
                **tiny,
                "model_config": {**tiny["model_config"], **GPT2_SMALL_SHAPE, "n_positions": 1024},
                "steps": args.gpt2_small_steps,
            }
            results["gpt2_small"] = {"shape": describe(GPT2_SMALL_SHAPE), "rows": bench_shape(small, methods, 1)}
    return results


def format_alignment_results(results: dict) -> str:
    lines = [results["setup"]]
    for key, title in (("tiny", "tiny config"), ("gpt2_small", "GPT-2-small shape")):
        if key not in results:
            continue
        lines += [
            "",
            f"| {title} ({results[key]['shape']}) | episodes/s (DPO: pairs/s) | x PPO (value model) "
            f"| {results['memory_measure']} (MiB) | growth over start (MiB) |",
            "|---|---|---|---|---|",
        ]
        for method, row in results[key]["rows"].items():
            lines.append(
                f"| {method} | {row['per_second']:.2f} | {row['speed_vs_ppo']:.2f}x | {row['peak_memory_mib']:,.0f} "
                f"| {row['memory_growth_mib']:,.0f} |"
            )
    return "\n".join(lines)


__all__ = ["AlignmentBenchArguments", "bench_alignment", "format_alignment_results"]
