r"""Fine-tune a pretrained causal LM (GPT-2 by default): full fine-tuning, LoRA on the attention projections, or
soft prompt tuning, as the config's `method` says.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/sft.py --config recipes/configs/sft/tiny_cpu.yaml

Any YAML key can be overridden on the command line, e.g. `--method prompt_tuning --output_dir outputs/pt`.
"""

import sys

from toolkit.pipelines.common import job_parser, run_job


def build_parser():
    return job_parser("sft")


def main(argv: list[str] | None = None) -> dict:
    return run_job("sft", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
