r"""Fine-tune a pretrained causal LM (GPT-2 by default): full fine-tuning, LoRA on the attention projections, or
soft prompt tuning, as the config's `method` says.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/sft.py --config recipes/configs/sft/tiny_cpu.yaml

Any YAML key can be overridden on the command line, e.g. `--method prompt_tuning --output_dir outputs/pt`.
"""

import sys

from transformers import TrainingArguments
from trl import TrlParser

from toolkit.training import AdapterArguments, DataArguments, ModelArguments, RunArguments, fine_tune


def build_parser() -> TrlParser:
    return TrlParser((ModelArguments, DataArguments, AdapterArguments, RunArguments, TrainingArguments), prog="sft.py")


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, adapter_args, run_args, training_args = build_parser().parse_args_and_config(argv)
    metrics = fine_tune(model_args, data_args, adapter_args, run_args, training_args)
    if training_args.process_index == 0:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
