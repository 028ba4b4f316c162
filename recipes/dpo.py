r"""DPO on preference pairs (TRL's DPOTrainer), from an SFT model, full or LoRA; no reward model.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/dpo.py --config recipes/configs/dpo/tiny_cpu.yaml
"""

import sys

from toolkit.pipelines.dpo import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    main(sys.argv[1:])
