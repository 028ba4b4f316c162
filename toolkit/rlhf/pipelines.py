"""The runs behind `recipes/reward.py` and `recipes/ppo.py`, callable from Python (and `toolkit demo`)."""

import json
from pathlib import Path

from accelerate import PartialState
from peft import PeftModel
from transformers import PreTrainedModel, set_seed
from trl import RewardConfig

from ..adapters import apply_lora, describe_parameters, merge_adapter
from ..loading import load_causal_lm, load_tokenizer, model_context_length
from ..training import AdapterArguments, RunArguments, check_output_dir, resolve_checkpoint, train_and_save
from ..training.trainer import push_finished_run
from .arguments import (
    PPOScriptArguments,
    PreferenceDataArguments,
    RewardModelArguments,
    load_preference_splits,
    load_prompts,
)
from .ppo import PPOConfig, PPOTrainer
from .reward import evaluate_reward_model, load_reward_model, make_reward_trainer, reward_model_from_causal_lm
from .rewards import REWARD_FUNCTIONS


def train_reward_model(
    model_args: RewardModelArguments,
    data_args: PreferenceDataArguments,
    adapter_args: AdapterArguments,
    run_args: RunArguments,
    config: RewardConfig,
) -> dict:
    """A scalar reward model on a causal LM's backbone (full or LoRA + score head), trained with TRL's
    RewardTrainer; metrics add pairwise accuracy and margin on held-out pairs, computed per pair."""
    check_output_dir(config.output_dir, run_args.overwrite_output_dir, bool(config.resume_from_checkpoint))
    if adapter_args.method not in ("full", "lora"):
        raise ValueError(f"Reward models train with --method full or lora, not {adapter_args.method!r}.")
    set_seed(config.seed)
    splits = load_preference_splits(data_args, config.seed)
    tokenizer = load_tokenizer(model_args.model_name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = reward_model_from_causal_lm(model_args.model_name_or_path, tokenizer)
    if adapter_args.method == "lora":
        model = apply_lora(
            model,
            r=adapter_args.lora_r,
            alpha=adapter_args.lora_alpha,
            dropout=adapter_args.lora_dropout,
            target_modules=adapter_args.lora_target_modules,
            include_attention_output=adapter_args.lora_attention_output,
            task_type="SEQ_CLS",
            modules_to_save=["score"],  # the new score head trains in full next to the adapters
        )
    if config.process_index == 0:
        print(f"reward model ({adapter_args.method}): {describe_parameters(model)}")
    trainer = make_reward_trainer(model, tokenizer, splits["train"], splits["validation"], args=config)

    def held_out(trainer) -> dict:
        scores = evaluate_reward_model(trainer.model, tokenizer, splits["validation"], max_length=config.max_length)
        return {f"heldout_{name}": value for name, value in scores.items()}

    metrics = train_and_save(trainer, config, plot=run_args.plot, after_training=held_out)
    push_finished_run(run_args, config.output_dir, metrics, base_model=model_args.model_name_or_path)
    return metrics


def load_policy(args: PPOScriptArguments, adapter_args: AdapterArguments, output_dir: str) -> PreTrainedModel:
    """The SFT model, wrapped in a fresh LoRA when method=lora: the reference is then the same weights with the
    adapter disabled, with no second copy in memory. An SFT LoRA adapter is merged first and the merged model saved
    in output_dir/sft-merged, which the PPO adapter then names as its base (so it loads on the right weights)."""
    policy = load_causal_lm(args.policy_name_or_path, device="cpu")
    if isinstance(policy, PeftModel):
        policy = merge_adapter(policy)
        merged_dir = Path(output_dir) / "sft-merged"
        if PartialState().is_main_process:
            policy.save_pretrained(merged_dir)
            load_tokenizer(args.policy_name_or_path).save_pretrained(merged_dir)
        policy.name_or_path = str(merged_dir)
    if adapter_args.method == "lora":
        policy = apply_lora(
            policy,
            r=adapter_args.lora_r,
            alpha=adapter_args.lora_alpha,
            dropout=0.0,  # dropout stays off in RLHF: log-probs must match between rollout and update
            target_modules=adapter_args.lora_target_modules,
            include_attention_output=adapter_args.lora_attention_output,
        )
    elif adapter_args.method != "full":
        raise ValueError(f"PPO trains the policy with --method full or lora, not {adapter_args.method!r}.")
    return policy.train()


def run_ppo(
    args: PPOScriptArguments, adapter_args: AdapterArguments, run_args: RunArguments, config: PPOConfig
) -> list[dict]:
    """PPO from an SFT model with a reward model or a verifiable reward; returns the metrics history and writes
    output_dir/policy, metrics.jsonl, ppo_metrics.png and a metrics.json summary."""
    check_output_dir(config.output_dir, run_args.overwrite_output_dir, bool(args.resume_from_checkpoint))
    set_seed(config.seed)
    tokenizer = load_tokenizer(args.policy_name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    policy = load_policy(args, adapter_args, config.output_dir)
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

    trainer = PPOTrainer(config, policy, tokenizer, load_prompts(args), **scorer)
    if trainer.accelerator.is_main_process:
        print(f"policy ({adapter_args.method}): {describe_parameters(policy)}, context {model_context_length(policy)}")
    history = trainer.train(resume_from_checkpoint=resolve_checkpoint(args.resume_from_checkpoint, config.output_dir))
    if trainer.accelerator.is_main_process:
        summary = {"steps": len(history), "first": history[0], "last": history[-1]}
        Path(config.output_dir, "metrics.json").write_text(json.dumps(summary, indent=2))
    push_finished_run(run_args, config.output_dir, {}, base_model=args.policy_name_or_path)
    return history
