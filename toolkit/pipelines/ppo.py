r"""PPO RLHF on an SFT model, with a verifiable reward (the arithmetic task's exact match) or a trained reward model.

    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/ppo.py --config recipes/configs/ppo/tiny_cpu.yaml

parse -> prompts -> policy (SFT model, LoRA on top), reward and value models -> PPOTrainer -> train -> save (policy/,
value function, metrics.jsonl, curves, metrics.json, run.json) -> push.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from accelerate import PartialState
from trl import TrlParser

from ..adapters import describe_parameters
from ..loading import load_tokenizer, model_context_length
from ..parsing import argument_parser
from ..rlhf import PPOConfig, PPOTrainer
from ..rlhf.prompts import PromptDataArguments, load_prompts
from ..rlhf.reward import load_reward_model
from ..rlhf.rewards import REWARD_FUNCTIONS
from ..runs import METRICS_FILE
from ..training import AdapterArguments, RunArguments
from .common import exit_on_stop, load_sft_policy, open_training_run, push_finished_run, recorded_run


@dataclass
class PPOScriptArguments:
    policy_name_or_path: str = field(
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


def build_parser() -> TrlParser:
    return argument_parser((PPOScriptArguments, PromptDataArguments, AdapterArguments, RunArguments, PPOConfig), "ppo")


def run(
    args: PPOScriptArguments,
    data_args: PromptDataArguments,
    adapter_args: AdapterArguments,
    run_args: RunArguments,
    config: PPOConfig,
) -> list[dict]:
    """PPO from an SFT model with a reward model or a verifiable reward; returns the metrics history and writes
    output_dir/policy, metrics.jsonl, training_curves.png, a metrics.json summary and run.json."""
    main_process = PartialState().is_main_process
    opened = open_training_run(config, run_args)
    tokenizer = load_tokenizer(args.policy_name_or_path, pad_with_eos=True)
    tokenizer.padding_side = "left"
    policy = load_sft_policy(args.policy_name_or_path, adapter_args, config.output_dir, "PPO")
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
    if trainer.accelerator.is_main_process:
        print(f"policy ({adapter_args.method}): {describe_parameters(policy)}, context {model_context_length(policy)}")
    record = dict(method=adapter_args.method, base_model=args.policy_name_or_path, datasets=[data_args.dataset])
    with recorded_run(config.output_dir, "ppo", main_process=main_process, started=opened.started, **record):
        history = trainer.train(resume_from_checkpoint=opened.checkpoint, plot=run_args.plot)
        if main_process:
            # Each step's wall time is batch / its episodes_per_second: the rate holds across resumed sessions.
            seconds = sum(trainer.global_batch_size / step["episodes_per_second"] for step in history)
            summary = {
                "steps": len(history),
                "episodes": history[-1]["episodes"],
                "episodes_per_second": history[-1]["episodes"] / seconds,
                "first": history[0],
                "last": history[-1],
            }
            Path(config.output_dir, METRICS_FILE).write_text(json.dumps(summary, indent=2))
    push_finished_run(run_args, config.output_dir, main_process)
    return history


def main(argv: list[str] | None = None) -> list[dict]:
    args, data_args, adapter_args, run_args, config = build_parser().parse_args_and_config(argv)
    with exit_on_stop():
        history = run(args, data_args, adapter_args, run_args, config)
    first, last = history[0], history[-1]
    print(f"score {first['objective/scores']:.3f} -> {last['objective/scores']:.3f}, KL {last['objective/kl']:.3f}")
    return history
