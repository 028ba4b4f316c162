r"""PPO RLHF on an SFT model, with a verifiable reward (exact-match answers) or a trained reward model.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/ppo.py --config recipes/configs/ppo/tiny_cpu.yaml
"""

import sys

from toolkit.pipelines.ppo import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    main(sys.argv[1:])
