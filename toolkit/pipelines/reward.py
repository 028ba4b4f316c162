r"""A scalar reward model on preference pairs (TRL's RewardTrainer), from a pretrained causal LM, full or LoRA.

    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/reward.py --config recipes/configs/reward/tiny_cpu.yaml

parse -> pairs (hh-rlhf files, Hub, or the arithmetic task's corrupted and policy-sampled pairs) -> reward model ->
RewardTrainer -> train -> held-out pairwise accuracy -> save (model, curves, metrics.json, run.json) -> push.
"""

from dataclasses import dataclass, field

import datasets
from transformers import set_seed
from trl import RewardConfig, TrlParser

from ..adapters import apply_lora, describe_parameters
from ..data import SYNTHETIC_NAME
from ..loading import load_tokenizer
from ..parsing import argument_parser
from ..rlhf.preferences import arithmetic_policy_pairs, load_preference_pairs
from ..rlhf.reward import evaluate_reward_model, make_reward_trainer, reward_model_from_causal_lm
from ..runs import prepare_output_dir
from ..tasks.arithmetic import arithmetic_preference_pairs
from ..training import AdapterArguments, RunArguments, train_and_save
from .common import exit_on_stop, push_finished_run, recorded_run


@dataclass
class RewardModelArguments:
    model_name_or_path: str = field(
        default="outputs/pretrain-tiny",
        metadata={"help": "The causal LM the reward model starts from (its backbone; the score head is new)."},
    )


@dataclass
class PreferenceDataArguments:
    dataset: str = field(
        default=SYNTHETIC_NAME,
        metadata={
            "help": "Preference pairs: a JSONL(.gz) file with chosen/rejected (hh-rlhf style, optional prompt), a Hub "
            "dataset id, or 'arithmetic' (correct vs corrupted solutions of the built-in problems)."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    explicit_prompt: bool = field(
        default=False, metadata={"help": "Split hh-rlhf dialogues into the shared prompt and the two replies."}
    )
    num_pairs: int = field(default=2000, metadata={"help": "'arithmetic': number of training pairs."})
    synthetic_difficulty: list[int] = field(
        default_factory=lambda: [1, 2], metadata={"help": "'arithmetic': difficulty levels (1-3) to mix."}
    )
    policy_samples_from: str | None = field(
        default=None,
        metadata={
            "help": "'arithmetic': also pair the answers this policy (a model or adapter folder) samples itself: "
            "each wrong answer is rejected against a right one to the same question (exact match judges), so the "
            "reward model learns the mistakes PPO will make."
        },
    )
    policy_sample_problems: int = field(default=2000, metadata={"help": "Problems the policy answers."})
    policy_samples_per_problem: int = field(default=4, metadata={"help": "Answers sampled per problem."})
    policy_sample_temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of those answers."})
    validation_fraction: float = field(default=0.1, metadata={"help": "Share of pairs held out for evaluation."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep at most this many training pairs."})


def load_preference_splits(args: PreferenceDataArguments, seed: int) -> datasets.DatasetDict:
    """Training and held-out preference pairs. The pairs and the held-out share are fixed (the arithmetic task's
    fixed draw, a seed-0 split), so a run's training `seed` changes only how the policy's answers are sampled."""
    if args.policy_samples_from is not None and args.dataset != SYNTHETIC_NAME:
        raise ValueError(
            f"--policy_samples_from needs --dataset {SYNTHETIC_NAME} (its answers are judged by exact match); "
            f"got --dataset {args.dataset}."
        )
    if args.dataset == SYNTHETIC_NAME:
        difficulty = tuple(args.synthetic_difficulty)
        pairs = arithmetic_preference_pairs(args.num_pairs, "train", difficulty)
        if args.policy_samples_from is not None:
            sampled = arithmetic_policy_pairs(
                args.policy_samples_from,
                args.policy_sample_problems,
                difficulty,
                seed=seed,
                num_samples=args.policy_samples_per_problem,
                temperature=args.policy_sample_temperature,
                skip_problems=args.num_pairs,
            )
            print(f"{len(sampled)} pairs from {args.policy_samples_from}'s own answers, {len(pairs)} corrupted ones")
            pairs = datasets.concatenate_datasets([pairs.remove_columns("final_answer"), sampled])
    else:
        pairs = load_preference_pairs(args.dataset, args.dataset_config, explicit_prompt=args.explicit_prompt)
    held_out = pairs.train_test_split(test_size=args.validation_fraction, seed=0)
    train = held_out["train"]
    # Capped after the split, so the held-out pairs are the same with or without the cap.
    if args.max_train_samples is not None:
        train = train.select(range(min(len(train), args.max_train_samples)))
    return datasets.DatasetDict(train=train, validation=held_out["test"])


def build_parser() -> TrlParser:
    return argument_parser(
        (RewardModelArguments, PreferenceDataArguments, AdapterArguments, RunArguments, RewardConfig), "reward"
    )


def run(
    model_args: RewardModelArguments,
    data_args: PreferenceDataArguments,
    adapter_args: AdapterArguments,
    run_args: RunArguments,
    config: RewardConfig,
) -> dict:
    """A scalar reward model on a causal LM's backbone (full or LoRA + score head), trained with TRL's
    RewardTrainer; metrics add pairwise accuracy and margin on held-out pairs, computed per pair."""
    main_process = config.process_index == 0
    config.resume_from_checkpoint = prepare_output_dir(
        config.output_dir,
        run_args.overwrite_output_dir,
        config.resume_from_checkpoint,
        max_steps=config.max_steps,
        main_process=main_process,
    )
    if adapter_args.method not in ("full", "lora"):
        raise ValueError(f"Reward models train with --method full or lora, not {adapter_args.method!r}.")
    set_seed(config.seed)
    splits = load_preference_splits(data_args, config.seed)
    tokenizer = load_tokenizer(model_args.model_name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = reward_model_from_causal_lm(model_args.model_name_or_path, tokenizer)
    if adapter_args.method == "lora":
        model = apply_lora(
            model,
            **adapter_args.lora_options(),
            task_type="SEQ_CLS",
            modules_to_save=["score"],  # the new score head trains in full next to the adapters
        )
    if main_process:
        print(f"reward model ({adapter_args.method}): {describe_parameters(model)}")
    trainer = make_reward_trainer(model, tokenizer, splits["train"], splits["validation"], args=config)

    def held_out(trainer) -> dict:
        scores = evaluate_reward_model(trainer.model, tokenizer, splits["validation"], max_length=config.max_length)
        return {f"heldout_{name}": value for name, value in scores.items()}

    record = dict(method=adapter_args.method, base_model=model_args.model_name_or_path, datasets=[data_args.dataset])
    with recorded_run(config.output_dir, "reward", main_process=main_process, **record):
        metrics = train_and_save(trainer, config, plot=run_args.plot, after_training=held_out)
    push_finished_run(run_args, config.output_dir, main_process)
    return metrics


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, adapter_args, run_args, config = build_parser().parse_args_and_config(argv)
    with exit_on_stop():
        metrics = run(model_args, data_args, adapter_args, run_args, config)
    if config.process_index == 0:
        print({key: round(value, 4) if isinstance(value, float) else value for key, value in metrics.items()})
    return metrics
