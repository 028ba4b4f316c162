r"""Train a scalar reward model on preference pairs (TRL's RewardTrainer), from a pretrained causal LM, full or LoRA.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/reward.py --config recipes/configs/reward/tiny_cpu.yaml
"""

import sys

from toolkit.pipelines.common import job_parser, run_job


def build_parser():
    return job_parser("reward")


def main(argv: list[str] | None = None) -> dict:
    return run_job("reward", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
