r"""GRPO (and RLOO, its leave-one-out sibling) on TRL's trainers: online RL from an SFT model with no value model,
rewarded by verifiable functions (the arithmetic task's exact match, its answer format), a trained reward model, or
your own function, weighted together.

    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/grpo.py --config recipes/configs/grpo/tiny_cpu.yaml

parse -> prompts (the same as PPO's) -> rewards -> policy (SFT model, LoRA on top; the reference is the
adapter-disabled base or a frozen copy) -> GRPOTrainer / RLOOTrainer -> train -> save (model, reward curves);
`run_job` records and pushes.
"""

import logging
from dataclasses import dataclass, field

from ..adapters import describe_parameters
from ..loading import load_tokenizer
from ..plotting import plot_online_rl_curves
from ..rlhf.group_rl import TRAINERS, GRPOConfig, RLOOConfig
from ..rlhf.prompts import PromptDataArguments, load_prompts
from ..rlhf.reward_functions import reward_functions
from ..runs import JobResult, sampled_reward_headline
from ..training import AdapterArguments, RunArguments, per_step, train_and_save, training_result
from .common import OpenedRun, load_sft_model

logger = logging.getLogger(__name__)


@dataclass
class GroupRLArguments:
    model_name_or_path: str = field(
        default="outputs/sft-tiny",
        metadata={
            "help": "The SFT model to improve: a full model folder, a LoRA adapter folder (merged first), or a Hub id."
        },
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["exact_match"],
        metadata={
            "help": "Rewards, summed with --reward_weights: 'exact_match' (the answer is right), 'format' (it ends "
            "in '#### <number>'), 'model' (--reward_model_name_or_path), or 'package.module:function' of your own "
            "(called as TRL calls reward functions: prompts, completions and the dataset's columns as keywords)."
        },
    )
    reward_model_name_or_path: str | None = field(
        default=None, metadata={"help": "With reward_funcs 'model': the reward model folder (written by reward.py)."}
    )


ARGUMENTS = (GroupRLArguments, PromptDataArguments, AdapterArguments, RunArguments, GRPOConfig)


def run(
    opened: OpenedRun,
    args: GroupRLArguments,
    data_args: PromptDataArguments,
    adapter_args: AdapterArguments,
    run_args: RunArguments,
    config: GRPOConfig | RLOOConfig,
) -> JobResult:
    """GRPO or RLOO (by the config's type) from an SFT model; metrics are TRL's (reward and rewards/<name>/mean,
    kl when beta > 0, completion lengths); the summary counts episodes (completions sampled) and keeps the sampled
    reward and KL curves."""
    prompts = load_prompts(data_args)
    rewards = reward_functions(args.reward_funcs, args.reward_model_name_or_path)
    if config.reward_weights is not None and len(config.reward_weights) != len(rewards):
        raise ValueError(
            f"--reward_weights has {len(config.reward_weights)} values for {len(rewards)} --reward_funcs "
            f"({' '.join(args.reward_funcs)}); give one weight per reward."
        )
    tokenizer = load_tokenizer(args.model_name_or_path, pad_with_eos=True)
    policy, peft_config = load_sft_model(args.model_name_or_path, adapter_args, config.output_dir)
    # The reference (when beta > 0): for LoRA the adapter-disabled policy, for full training a frozen copy TRL makes.
    trainer = TRAINERS[type(config)](
        model=policy,
        reward_funcs=rewards,
        args=config,
        train_dataset=prompts,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    if opened.main_process:
        logger.info(f"policy ({adapter_args.method}): {describe_parameters(trainer.model)}")
    opened.start()
    metrics = train_and_save(trainer, config, plot=run_args.plot, curves=plot_online_rl_curves)
    # Newly sampled completions per optimizer step (each is trained on num_iterations times).
    result = training_result(trainer, metrics, per_step(config) / config.num_iterations, (), opened.resumed_step)
    result.headline = sampled_reward_headline(result.curves)
    return result
