r"""PPO RLHF on an SFT model, with a verifiable reward (exact-match answers) or a trained reward model.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/ppo.py --config recipes/configs/ppo/tiny_cpu.yaml
"""

import sys

from toolkit.pipelines.common import job_parser, run_job


def build_parser():
    return job_parser("ppo")


def main(argv: list[str] | None = None) -> dict:
    return run_job("ppo", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
