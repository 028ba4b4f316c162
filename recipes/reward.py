r"""Train a scalar reward model on preference pairs (TRL's RewardTrainer), from a pretrained causal LM, full or LoRA.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/reward.py --config recipes/configs/reward/tiny_cpu.yaml
"""

import sys

from toolkit.pipelines.reward import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    main(sys.argv[1:])
