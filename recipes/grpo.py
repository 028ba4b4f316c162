r"""GRPO (TRL's GRPOTrainer) from an SFT model, full or LoRA, with verifiable rewards or a reward model; no
value model.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/grpo.py --config recipes/configs/grpo/tiny_cpu.yaml
"""

import sys

from toolkit.pipelines.common import job_parser, run_job


def build_parser():
    return job_parser("grpo")


def main(argv: list[str] | None = None) -> dict:
    return run_job("grpo", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
