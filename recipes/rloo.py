r"""RLOO (TRL's RLOOTrainer): GRPO's recipe with leave-one-out baselines and a KL penalty in the reward.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/rloo.py --config recipes/configs/rloo/tiny_cpu.yaml
"""

import sys

from toolkit.pipelines.common import job_parser, run_job


def build_parser():
    return job_parser("rloo")


def main(argv: list[str] | None = None) -> dict:
    return run_job("rloo", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
