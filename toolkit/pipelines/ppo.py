r"""PPO RLHF on an SFT model, with a verifiable reward (the arithmetic task's exact match) or a trained reward model.

    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/ppo.py --config recipes/configs/ppo/tiny_cpu.yaml

parse -> prompts -> policy (SFT model, LoRA on top), reward and value models -> PPOTrainer -> train -> save (policy/,
value function, metrics.jsonl, curves); `run_job` records and pushes.
"""

import argparse
import logging
import warnings
from dataclasses import dataclass, field

from ..adapters import describe_parameters
from ..loading import load_tokenizer, model_context_length
from ..rlhf import PPOConfig, PPOTrainer
from ..rlhf.prompts import PromptDataArguments, load_prompts
from ..rlhf.reward_functions import REWARD_FUNCTIONS
from ..rlhf.reward_model import load_reward_model
from ..runs import JobResult, sampled_reward_headline
from ..training import AdapterArguments, RunArguments
from .common import OpenedRun, load_sft_policy

logger = logging.getLogger(__name__)


@dataclass
class PPOScriptArguments:
    model_name_or_path: str = field(
        default="outputs/sft-tiny",
        metadata={
            "help": "The SFT model to improve: a full model folder, a LoRA adapter folder (merged first), or a Hub id."
        },
    )
    reward: str = field(
        default="exact_match",
        metadata={"help": "'model' (a trained reward model) or 'exact_match' (verifiable: the answer is correct)."},
    )
    reward_model_name_or_path: str | None = field(
        default=None, metadata={"help": "With reward='model': the reward model folder (also initialises the values)."}
    )
    policy_name_or_path: str | None = field(default=None, metadata={"help": argparse.SUPPRESS})  # its old name

    def __post_init__(self):
        if self.policy_name_or_path is not None:
            warnings.warn(
                "--policy_name_or_path is deprecated: PPO names its starting model --model_name_or_path, as every "
                "job does.",
                FutureWarning,
                stacklevel=2,
            )
            self.model_name_or_path, self.policy_name_or_path = self.policy_name_or_path, None


ARGUMENTS = (PPOScriptArguments, PromptDataArguments, AdapterArguments, RunArguments, PPOConfig)


def run(
    opened: OpenedRun,
    args: PPOScriptArguments,
    data_args: PromptDataArguments,
    adapter_args: AdapterArguments,
    run_args: RunArguments,
    config: PPOConfig,
) -> JobResult:
    """PPO from an SFT model with a reward model or a verifiable reward; writes output_dir/policy, metrics.jsonl and
    training_curves.png; the summary holds the first and last step's metrics and the sampled reward and KL curves."""
    tokenizer = load_tokenizer(args.model_name_or_path, pad_with_eos=True)
    tokenizer.padding_side = "left"
    policy = load_sft_policy(args.model_name_or_path, adapter_args, config.output_dir)
    if args.reward == "model":
        if args.reward_model_name_or_path is None:
            raise ValueError("--reward model needs --reward_model_name_or_path (a folder written by reward.py).")
        scorer = {
            "reward_model": load_reward_model(args.reward_model_name_or_path),
            "value_model": load_reward_model(args.reward_model_name_or_path),
            "reward_tokenizer": load_tokenizer(args.reward_model_name_or_path),
        }
    elif args.reward in REWARD_FUNCTIONS:
        scorer = {"reward_fn": REWARD_FUNCTIONS[args.reward]}
    else:
        raise ValueError(f"Unknown --reward {args.reward!r}; choose 'model' or one of {list(REWARD_FUNCTIONS)}.")

    trainer = PPOTrainer(config, policy, tokenizer, load_prompts(data_args), **scorer)
    if opened.main_process:
        logger.info(
            f"policy ({adapter_args.method}): {describe_parameters(policy)}, context {model_context_length(policy)}"
        )
    opened.start()
    history = trainer.train(resume_from_checkpoint=opened.checkpoint, plot=run_args.plot)
    # Each step's wall time is batch / its episodes_per_second: the rate holds across resumed sessions.
    seconds = sum(trainer.global_batch_size / step["episodes_per_second"] for step in history)
    curves = {
        "reward": [[step["episodes"], step["objective/scores"]] for step in history],
        "kl": [[step["episodes"], step["objective/kl"]] for step in history],
    }
    return JobResult(
        metrics={"steps": len(history), "first": history[0], "last": history[-1]},
        units=history[-1]["episodes"],
        units_per_second=history[-1]["episodes"] / seconds,
        headline=sampled_reward_headline(curves),
        curves=curves,
    )
