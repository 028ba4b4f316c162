"""`toolkit demo`: the whole pipeline on the built-in arithmetic problems, on CPU, in minutes, offline.

pretrain a small GPT from scratch -> fine-tune it three ways (full, LoRA, prompt tuning) -> train a reward model ->
PPO with the exact-match reward -> evaluate every stage (perplexity, GSM8K-style accuracy, BLEU of the solutions)
-> report.md + report.png. Every stage writes its own folder under output_dir and a `stage.json` when it is done;
running the demo again skips finished stages and resumes an interrupted one from its last checkpoint.
"""

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean

import datasets
from transformers import TrainingArguments
from trl import RewardConfig, SFTConfig, TrlParser

from ..rlhf import PPOConfig
from ..runs import RESULTS_CHART
from ..tasks.arithmetic import DIFFICULTIES, make_arithmetic_dataset
from ..training import (
    AdapterArguments,
    DataArguments,
    ModelArguments,
    PretrainDataArguments,
    PretrainModelArguments,
    RunArguments,
)
from .eval import EvalArguments
from .eval import run as evaluate_models
from .ppo import PPOScriptArguments
from .ppo import run as run_ppo
from .pretrain import run as pretrain
from .reward import PreferenceDataArguments, RewardModelArguments
from .reward import run as train_reward_model
from .sft import run as fine_tune

STAGE_FILE = "stage.json"


@dataclass
class DemoArguments:
    output_dir: str = field(default="outputs/demo", metadata={"help": "Where every stage and the report go."})
    quick: bool = field(
        default=False,
        metadata={"help": "A reduced run (under 2 minutes): a 2-layer, width-64 GPT, fewer steps."},
    )
    restart: bool = field(default=False, metadata={"help": "Start over instead of resuming finished stages."})
    seed: int = field(default=0, metadata={"help": "Seed of the data and of every run."})
    difficulty: list[int] | None = field(
        default=None,
        metadata={"help": "Calculation steps of the arithmetic problems (1-3); default 1."},
    )
    pretrain_problems: int | None = field(
        default=None, metadata={"help": "Distinct problems in the pretraining corpus (default 40000)."}
    )
    pretrain_steps: int | None = field(
        default=None,
        metadata={
            "help": "Pretraining optimizer steps (default 800 of 16 x 256 tokens; quick: 600 of 32 x 64). Exact "
            "arithmetic appears late: the full plan's model solves 49% after 600 steps, 88% after 800."
        },
    )


@dataclass(frozen=True)
class DemoSizes:
    pretrain_problems: int
    pretrain_steps: int
    sft_problems: int
    sft_steps: int
    reward_pairs: int
    reward_steps: int
    ppo_prompts: int
    ppo_steps: int
    eval_problems: int
    difficulty: tuple[int, ...] = (1,)
    # The GPT pretrained from scratch, and its pretraining batches (block_size x batch_size tokens a step).
    num_layers: int = 4
    hidden_size: int = 128
    context_length: int = 320
    pretrain_block_size: int = 256
    pretrain_batch_size: int = 16
    pretrain_learning_rate: float = 4e-3
    reward_learning_rate: float = 2e-4
    ppo_learning_rate: float = 1e-3


FULL = DemoSizes(40000, 800, 2000, 200, 4000, 500, 2048, 200, 400)
# Half the width and layers, blocks of 64 tokens: 2048 tokens a step at ~5x the full plan's speed. Level-1
# arithmetic needs ~600 steps at this lr to appear (400 steps: 9-13% exact match; 600: ~50%). The small model
# takes higher learning rates for the reward model and PPO.
QUICK = DemoSizes(
    40000, 600, 2000, 100, 4000, 400, 1024, 40, 200,
    num_layers=2, hidden_size=64, context_length=128, pretrain_block_size=64, pretrain_batch_size=32,
    pretrain_learning_rate=8e-3, reward_learning_rate=1e-3, ppo_learning_rate=3e-3,
)  # fmt: skip


def run_stage(folder: Path, run) -> dict:
    """Run a stage unless its folder says it finished; resume it from its last checkpoint if it was interrupted."""
    done = folder / STAGE_FILE
    if done.exists():
        print(f"[demo] {folder.name}: done already, skipping")
        return json.loads(done.read_text())
    resume = any(folder.glob("checkpoint-*"))
    print(f"[demo] {folder.name}: {'resuming' if resume else 'starting'}")
    start = time.perf_counter()
    metrics = run(resume)
    if "stopped_by" in metrics:
        sys.exit(f"[demo] {folder.name} stopped by {metrics['stopped_by']}; run the demo again to resume it.")
    record = {"seconds": time.perf_counter() - start, "metrics": metrics}
    done.write_text(json.dumps(record, indent=2, default=str))
    return record


def training_arguments(folder: Path, steps: int, resume: bool, **overrides) -> dict:
    return dict(
        output_dir=str(folder),
        max_steps=steps,
        resume_from_checkpoint="latest" if resume else None,
        eval_strategy="steps",
        eval_steps=max(1, steps // 4),
        save_steps=max(1, steps // 4),
        save_total_limit=1,
        logging_steps=max(1, steps // 20),
        use_cpu=True,
        report_to="none",
        disable_tqdm=False,
        **overrides,
    )


def pretrain_corpus(folder: Path, sizes: DemoSizes, seed: int) -> str:
    """Plain documents (question, then worked solution), without the Question:/Answer: format SFT teaches."""
    problems = make_arithmetic_dataset("train", sizes.pretrain_problems, sizes.difficulty)
    path = folder / "corpus.jsonl"
    folder.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(
        {"text": [f"{q}\n{a}" for q, a in zip(problems["question"], problems["answer"], strict=True)]}
    ).to_json(path)
    return str(path)


def stage_pretrain(folder: Path, sizes: DemoSizes, seed: int) -> dict:
    def run(resume):
        # Byte-level BPE trained on the corpus makes every number one token, so a calculation is one prediction
        # and a step covers ~4x more problems than characters would: arithmetic appears ~3x sooner.
        model = PretrainModelArguments(
            tokenizer="bpe",
            bpe_vocab_size=1024,
            preset="tiny",
            num_layers=sizes.num_layers,
            num_heads=4,
            hidden_size=sizes.hidden_size,
            context_length=sizes.context_length,
        )
        data = PretrainDataArguments(
            dataset=pretrain_corpus(folder / "data", sizes, seed), block_size=sizes.pretrain_block_size
        )
        args = TrainingArguments(
            **training_arguments(
                folder, sizes.pretrain_steps, resume, per_device_train_batch_size=sizes.pretrain_batch_size
            ),
            learning_rate=sizes.pretrain_learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=0.05,
            weight_decay=0.1,
            adam_beta2=0.99,
            seed=seed,
        )
        return pretrain(model, data, RunArguments(overwrite_output_dir=not resume), args)

    return run_stage(folder, run)


SFT_METHODS = {
    "sft-full": (AdapterArguments(method="full"), 5e-4),
    "sft-lora": (AdapterArguments(method="lora", lora_r=8, lora_alpha=16, lora_dropout=0.0), 3e-3),
    "sft-prompt": (
        AdapterArguments(
            method="prompt_tuning", num_virtual_tokens=16, prompt_tuning_init_text="Solve it step by step"
        ),
        3e-2,
    ),
}


def stage_sft(folder: Path, base: Path, adapter: AdapterArguments, learning_rate: float, sizes, seed) -> dict:
    def run(resume):
        data = DataArguments(
            dataset="arithmetic",
            synthetic_train_size=sizes.sft_problems,
            synthetic_validation_size=100,
            synthetic_difficulty=list(sizes.difficulty),
            prompt_column="prompt",
            completion_column="completion",
        )
        args = SFTConfig(
            **training_arguments(folder, sizes.sft_steps, resume, per_device_train_batch_size=16),
            max_length=min(256, sizes.context_length - 32),  # leaves room for the 16 virtual tokens
            learning_rate=learning_rate,
            lr_scheduler_type="cosine",
            bf16=False,
            activation_checkpointing=False,
            seed=seed,
        )
        model = ModelArguments(model_name_or_path=str(base))
        return fine_tune(model, data, adapter, RunArguments(overwrite_output_dir=not resume), args)

    return run_stage(folder, run)


def stage_reward(folder: Path, base: Path, sizes: DemoSizes, seed: int) -> dict:
    def run(resume):
        data = PreferenceDataArguments(
            dataset="arithmetic",
            num_pairs=sizes.reward_pairs,
            synthetic_difficulty=list(sizes.difficulty),
            validation_fraction=0.2,
        )
        config = RewardConfig(
            **training_arguments(folder, sizes.reward_steps, resume, per_device_train_batch_size=16),
            learning_rate=sizes.reward_learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=0.05,
            max_length=sizes.context_length,
            bf16=False,
            activation_checkpointing=False,
            seed=seed,
        )
        model = RewardModelArguments(model_name_or_path=str(base))
        return train_reward_model(
            model, data, AdapterArguments(method="full"), RunArguments(overwrite_output_dir=not resume), config
        )

    return run_stage(folder, run)


def stage_ppo(folder: Path, policy: Path, sizes: DemoSizes, seed: int) -> dict:
    def run(resume):
        args = PPOScriptArguments(
            policy_name_or_path=str(policy),
            reward="exact_match",
            num_prompts=sizes.ppo_prompts,
            synthetic_difficulty=list(sizes.difficulty),
        )
        config = PPOConfig(
            output_dir=str(folder),
            resume_from_checkpoint="latest" if resume else None,
            max_steps=sizes.ppo_steps,
            per_device_train_batch_size=16,
            num_mini_batches=2,
            use_cpu=True,
            report_to="none",
            num_ppo_epochs=4,
            learning_rate=sizes.ppo_learning_rate,
            max_new_tokens=48,
            temperature=0.7,
            kl_coef=0.05,
            missing_eos_penalty=1.0,
            save_steps=max(1, sizes.ppo_steps // 3),
            sample_steps=max(1, sizes.ppo_steps // 3),
            seed=seed,
        )
        adapter = AdapterArguments(method="lora", lora_r=8, lora_alpha=16)
        history = run_ppo(args, adapter, RunArguments(overwrite_output_dir=not resume), config)
        window = max(1, len(history) // 5)
        return {
            "first": history[0],
            "steps": len(history),
            "temperature": config.temperature,
            "window": window,
            "early_reward": mean(row["objective/scores"] for row in history[:window]),
            "late_reward": mean(row["objective/scores"] for row in history[-window:]),
            "max_kl": max(row["objective/kl"] for row in history),
        }

    return run_stage(folder, run)


EVALUATED = ("pretrained", "sft-full", "sft-lora", "sft-prompt", "ppo")
STARTING_POINT = {"sft-full": "pretrained", "sft-lora": "pretrained", "sft-prompt": "pretrained", "ppo": "sft-lora"}


def stage_evaluate(folder: Path, models: dict[str, Path], sizes: DemoSizes, seed: int) -> dict:
    def run(resume):
        args = EvalArguments(
            models=[str(path) for path in models.values()],
            model_names=list(models),
            tasks=["perplexity", "gsm8k", "bleu"],
            limit=sizes.eval_problems,
            output_dir=str(folder),
            overwrite_output_dir=True,
            use_cpu=True,
            batch_size=32,
            num_fewshot=0,  # the models were trained on single problems; exemplars would not fit their context
            gsm8k_max_new_tokens=64,
            bleu_max_new_tokens=64,
            synthetic_size=sizes.eval_problems,
            synthetic_difficulty=list(sizes.difficulty),
        )
        report = evaluate_models(args)
        return {f"{row['model']}/{row['task']}": row["metrics"] for row in report["results"]}

    return run_stage(folder, run)


HEADLINES = {
    ("perplexity", "perplexity"): "perplexity (lower is better)",
    ("gsm8k", "strict_match"): "exact match, strict",
    ("gsm8k", "flexible_extract"): "exact match, flexible",
    ("bleu", "bleu"): "BLEU of the solutions",
}


def write_report(output_dir: Path, stages: dict[str, dict], sizes: DemoSizes) -> Path:
    """report.md: each stage's scores and its gain over the model it started from, reward model and PPO figures,
    times."""
    scores = stages["evaluate"]["metrics"]
    lines = [
        "# toolkit demo report",
        "",
        f"Built-in GSM8K-style arithmetic (difficulty {list(sizes.difficulty)}), {sizes.eval_problems} held-out test "
        "problems, 0-shot greedy answers; perplexity of the same problems as `Question: ...\\nAnswer: <worked "
        "solution>` texts (the pretrained model never saw the words Question/Answer, hence its high figure).",
        "",
        "| stage | " + " | ".join(HEADLINES.values()) + " |",
        "|---|" + "---:|" * len(HEADLINES),
    ]
    for name in EVALUATED:
        cells = []
        for task, metric in HEADLINES:
            value = scores[f"{name}/{task}"][metric]
            start = STARTING_POINT.get(name)
            gain = "" if start is None else f" ({value - scores[f'{start}/{task}'][metric]:+.3g})"
            cells.append(f"{value:.4g}{gain}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    reward = stages["reward"]["metrics"]
    ppo = stages["ppo"]["metrics"]
    lines += [
        "",
        "Gains in parentheses are against the model the stage started from: the pretrained model for fine-tuning, "
        "the LoRA SFT model for PPO.",
        "",
        "- Reward model (correct vs corrupted solutions): held-out pairwise accuracy "
        f"{reward['heldout_accuracy']:.3f} (95% interval {reward['heldout_accuracy_ci_low']:.3f}-"
        f"{reward['heldout_accuracy_ci_high']:.3f}; chance is 0.5), mean margin {reward['heldout_margin']:.3f} over "
        f"{reward['heldout_num_pairs']} pairs.",
        f"- PPO (from the LoRA SFT model, exact-match reward, sampled at temperature {ppo['temperature']}): mean "
        f"reward {ppo['early_reward']:.3f} over the first {ppo['window']} steps -> {ppo['late_reward']:.3f} over the "
        f"last {ppo['window']} of {ppo['steps']}; KL to the reference at most {ppo['max_kl']:.3f} nats per response.",
        "",
        "| stage | seconds |",
        "|---|---:|",
        *(f"| {name} | {record['seconds']:.0f} |" for name, record in stages.items()),
        f"| total | {sum(record['seconds'] for record in stages.values()):.0f} |",
        "",
        f"![scores per stage](evaluate/{RESULTS_CHART})",
        "",
        "Training curves: `pretrain/training_curves.png`, `sft-*/training_curves.png`, `reward/training_curves.png`, "
        "`ppo/training_curves.png`. Per-example outputs: `evaluate/<stage>/<task>.jsonl`.",
    ]
    path = output_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def demo_sizes(args: DemoArguments) -> DemoSizes:
    """The full or quick plan, with the problem difficulty and pretraining size the command line overrides."""
    if args.difficulty is not None and (not args.difficulty or set(args.difficulty) - set(DIFFICULTIES)):
        raise ValueError(f"--difficulty takes levels from {list(DIFFICULTIES)}, got {args.difficulty}.")
    overrides = {
        "difficulty": tuple(args.difficulty) if args.difficulty else None,
        "pretrain_problems": args.pretrain_problems,
        "pretrain_steps": args.pretrain_steps,
    }
    return dataclasses.replace(
        QUICK if args.quick else FULL, **{name: value for name, value in overrides.items() if value is not None}
    )


def run_demo(args: DemoArguments) -> dict[str, dict]:
    """Every stage in order (skipping finished ones unless `restart`); returns each stage's record."""
    output_dir = Path(args.output_dir)
    if args.restart:
        for marker in output_dir.glob(f"*/{STAGE_FILE}"):
            marker.unlink()
    sizes = demo_sizes(args)
    seed = args.seed
    stages = {"pretrain": stage_pretrain(output_dir / "pretrain", sizes, seed)}
    base = output_dir / "pretrain"
    for name, (adapter, learning_rate) in SFT_METHODS.items():
        stages[name] = stage_sft(output_dir / name, base, adapter, learning_rate, sizes, seed)
    stages["reward"] = stage_reward(output_dir / "reward", base, sizes, seed)
    stages["ppo"] = stage_ppo(output_dir / "ppo", output_dir / "sft-lora", sizes, seed)
    models = {name: output_dir / name for name in EVALUATED}
    models["pretrained"], models["ppo"] = base, output_dir / "ppo" / "policy"
    stages["evaluate"] = stage_evaluate(output_dir / "evaluate", models, sizes, seed)
    report = write_report(output_dir, stages, sizes)
    print(report.read_text())
    print(f"[demo] report: {report}")
    return stages


def build_parser() -> TrlParser:
    return TrlParser(DemoArguments, prog="demo")


def main(argv: list[str] | None = None) -> int:
    (args,) = build_parser().parse_args_and_config(argv)
    run_demo(args)
    return 0
