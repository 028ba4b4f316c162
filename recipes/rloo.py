r"""RLOO (TRL's RLOOTrainer): GRPO's recipe with leave-one-out baselines and a KL penalty in the reward.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/rloo.py --config recipes/configs/rloo/tiny_cpu.yaml
"""

import sys

from toolkit.pipelines.rloo import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    main(sys.argv[1:])
