r"""Pretrain a GPT from scratch: our GPT (any preset or shape) or a GPT-2-architecture model.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/pretrain.py --config recipes/configs/pretrain/tiny_cpu.yaml

Any YAML key can be overridden on the command line, e.g. `--max_steps 100 --output_dir outputs/try`.
"""

import sys

from transformers import TrainingArguments
from trl import TrlParser

from toolkit.training import DataArguments, ModelArguments, RunArguments, pretrain


def build_parser() -> TrlParser:
    return TrlParser((ModelArguments, DataArguments, RunArguments, TrainingArguments), prog="pretrain.py")


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, run_args, training_args = build_parser().parse_args_and_config(argv)
    metrics = pretrain(model_args, data_args, run_args, training_args)
    if training_args.process_index == 0:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
