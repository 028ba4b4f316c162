r"""Pretrain a GPT from scratch: our GPT (any preset or shape) or a GPT-2-architecture model.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/pretrain.py --config recipes/configs/pretrain/tiny_cpu.yaml

Any YAML key can be overridden on the command line, e.g. `--max_steps 100 --output_dir outputs/try`.
"""

import sys

from toolkit.pipelines.common import job_parser, run_job


def build_parser():
    return job_parser("pretrain")


def main(argv: list[str] | None = None) -> dict:
    return run_job("pretrain", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
