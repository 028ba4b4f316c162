r"""A scalar reward model on preference pairs (TRL's RewardTrainer), from a pretrained causal LM, full or LoRA.

    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/reward.py --config recipes/configs/reward/tiny_cpu.yaml

parse -> pairs (hh-rlhf files, Hub, or the arithmetic task's corrupted and policy-sampled pairs) -> reward model ->
RewardTrainer -> train -> held-out pairwise accuracy -> save (model, curves, metrics.json, run.json) -> push.
"""

from dataclasses import dataclass, field

from trl import RewardConfig, TrlParser

from ..adapters import apply_lora, describe_parameters
from ..loading import load_tokenizer
from ..parsing import argument_parser
from ..rlhf.preferences import PreferenceDataArguments, load_preference_splits
from ..rlhf.reward import evaluate_reward_model, make_reward_trainer, reward_model_from_causal_lm
from ..training import AdapterArguments, RunArguments, train_and_save
from .common import exit_on_stop, open_training_run, push_finished_run, recorded_run


@dataclass
class RewardModelArguments:
    model_name_or_path: str = field(
        default="outputs/pretrain-tiny",
        metadata={"help": "The causal LM the reward model starts from (its backbone; the score head is new)."},
    )


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
    opened = open_training_run(config, run_args)
    if adapter_args.method not in ("full", "lora"):
        raise ValueError(f"Reward models train with --method full or lora, not {adapter_args.method!r}.")
    splits = load_preference_splits(data_args, config.seed)
    tokenizer = load_tokenizer(model_args.model_name_or_path, pad_with_eos=True)
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
    with recorded_run(config.output_dir, "reward", main_process=main_process, started=opened.started, **record):
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
