r"""Upload a trained model or adapter folder to the Hugging Face Hub with a generated model card (base model,
datasets, method, hyperparameters, evaluation results as model-index, training curves, intended use and limits).

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/push.py --config recipes/configs/push/tiny_cpu.yaml

The tiny config is a dry run: it writes the exact folder that would be uploaded and uploads nothing. To upload, set
HF_TOKEN (or run `hf auth login`) and pass `--repo_id <you>/<name> --dry_run false`. Only the main process uploads.
"""

import sys

from toolkit.pipelines.push import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    main(sys.argv[1:])
