r"""RLOO (REINFORCE leave-one-out, TRL's RLOOTrainer): GRPO's pipeline with each completion's baseline the mean
reward of the other completions of its prompt, and a KL penalty (beta 0.05) by default.

    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/rloo.py --config recipes/configs/rloo/tiny_cpu.yaml
"""

from trl import TrlParser

from ..rlhf.group_rl import RLOOConfig
from . import grpo

run = grpo.run


def build_parser() -> TrlParser:
    return grpo.build_parser(RLOOConfig)


def main(argv: list[str] | None = None) -> dict:
    return grpo.main(argv, RLOOConfig)
