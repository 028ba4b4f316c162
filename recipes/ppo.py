r"""PPO RLHF on an SFT model, with a verifiable reward (exact-match answers) or a trained reward model.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/ppo.py --config recipes/configs/ppo/tiny_cpu.yaml
"""

import sys

from trl import TrlParser

from toolkit.rlhf import PPOConfig
from toolkit.rlhf.arguments import PPOScriptArguments
from toolkit.rlhf.pipelines import run_ppo
from toolkit.training import AdapterArguments, RunArguments


def build_parser() -> TrlParser:
    return TrlParser((PPOScriptArguments, AdapterArguments, RunArguments, PPOConfig), prog="ppo.py")


def main(argv: list[str] | None = None) -> list[dict]:
    args, adapter_args, run_args, config = build_parser().parse_args_and_config(argv)
    history = run_ppo(args, adapter_args, run_args, config)
    first, last = history[0], history[-1]
    print(f"score {first['objective/scores']:.3f} -> {last['objective/scores']:.3f}, KL {last['objective/kl']:.3f}")
    return history


if __name__ == "__main__":
    main(sys.argv[1:])
