r"""Train a scalar reward model on preference pairs (TRL's RewardTrainer), from a pretrained causal LM, full or LoRA.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/reward.py --config recipes/configs/reward/tiny_cpu.yaml
"""

import sys

from transformers import set_seed
from trl import RewardConfig, TrlParser

from toolkit.adapters import apply_lora, describe_parameters
from toolkit.loading import load_tokenizer
from toolkit.rlhf import evaluate_reward_model, make_reward_trainer, reward_model_from_causal_lm
from toolkit.rlhf.arguments import PreferenceDataArguments, RewardModelArguments, load_preference_splits
from toolkit.training import AdapterArguments, RunArguments, check_output_dir, train_and_save


def build_parser() -> TrlParser:
    return TrlParser(
        (RewardModelArguments, PreferenceDataArguments, AdapterArguments, RunArguments, RewardConfig), prog="reward.py"
    )


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, adapter_args, run_args, config = build_parser().parse_args_and_config(argv)
    check_output_dir(config.output_dir, run_args.overwrite_output_dir, bool(config.resume_from_checkpoint))
    if adapter_args.method not in ("full", "lora"):
        raise ValueError(f"Reward models train with --method full or lora, not {adapter_args.method!r}.")
    set_seed(config.seed)

    splits = load_preference_splits(data_args, config.seed)
    tokenizer = load_tokenizer(model_args.model_name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = reward_model_from_causal_lm(model_args.model_name_or_path, tokenizer)
    if adapter_args.method == "lora":
        # The new score head trains in full next to the adapters.
        model = apply_lora(
            model,
            r=adapter_args.lora_r,
            alpha=adapter_args.lora_alpha,
            dropout=adapter_args.lora_dropout,
            target_modules=adapter_args.lora_target_modules,
            include_attention_output=adapter_args.lora_attention_output,
            task_type="SEQ_CLS",
            modules_to_save=["score"],
        )
    print(f"reward model ({adapter_args.method}): {describe_parameters(model)}")

    trainer = make_reward_trainer(model, tokenizer, splits["train"], splits["validation"], args=config)

    def held_out(trainer) -> dict:
        scores = evaluate_reward_model(trainer.model, tokenizer, splits["validation"], max_length=config.max_length)
        return {f"heldout_{name}": value for name, value in scores.items()}

    metrics = train_and_save(trainer, config, plot=run_args.plot, after_training=held_out)
    if trainer.is_world_process_zero() and "stopped_by" not in metrics:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
