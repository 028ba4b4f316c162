r"""RLOO (REINFORCE leave-one-out, TRL's RLOOTrainer): GRPO's pipeline with each completion's baseline the mean
reward of the other completions of its prompt, and a KL penalty (beta 0.05) by default.

    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/rloo.py --config recipes/configs/rloo/tiny_cpu.yaml
"""

from ..rlhf.group_rl import RLOOConfig
from . import grpo

ARGUMENTS = (*grpo.ARGUMENTS[:-1], RLOOConfig)
run = grpo.run  # the config's type picks the trainer
