r"""Train a scalar reward model on preference pairs (TRL's RewardTrainer), from a pretrained causal LM, full or LoRA.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/reward.py --config recipes/configs/reward/tiny_cpu.yaml
"""

import sys

from trl import RewardConfig, TrlParser

from toolkit.rlhf.arguments import PreferenceDataArguments, RewardModelArguments
from toolkit.rlhf.pipelines import train_reward_model
from toolkit.training import AdapterArguments, RunArguments


def build_parser() -> TrlParser:
    return TrlParser(
        (RewardModelArguments, PreferenceDataArguments, AdapterArguments, RunArguments, RewardConfig), prog="reward.py"
    )


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, adapter_args, run_args, config = build_parser().parse_args_and_config(argv)
    metrics = train_reward_model(model_args, data_args, adapter_args, run_args, config)
    if config.process_index == 0:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
