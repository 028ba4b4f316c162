r"""DPO on preference pairs (TRL's DPOTrainer), from an SFT model, full or LoRA; no reward model.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/dpo.py --config recipes/configs/dpo/tiny_cpu.yaml
"""

import sys

from toolkit.pipelines.common import job_parser, run_job


def build_parser():
    return job_parser("dpo")


def main(argv: list[str] | None = None) -> dict:
    return run_job("dpo", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
