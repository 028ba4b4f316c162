r"""PPO RLHF on an SFT model, with a verifiable reward (exact-match answers) or a trained reward model.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/ppo.py --config recipes/configs/ppo/tiny_cpu.yaml
"""

import json
import sys
from pathlib import Path

from peft import PeftModel
from transformers import set_seed
from trl import TrlParser

from toolkit.adapters import apply_lora, describe_parameters
from toolkit.loading import load_causal_lm, load_tokenizer, model_context_length
from toolkit.rlhf import PPOConfig, PPOTrainer, load_reward_model
from toolkit.rlhf.arguments import PPOScriptArguments, load_prompts
from toolkit.rlhf.rewards import REWARD_FUNCTIONS
from toolkit.training import AdapterArguments, RunArguments, check_output_dir, resolve_checkpoint


def build_parser() -> TrlParser:
    return TrlParser((PPOScriptArguments, AdapterArguments, RunArguments, PPOConfig), prog="ppo.py")


def load_policy(args: PPOScriptArguments, adapter_args: AdapterArguments):
    """The SFT model (an SFT LoRA adapter is merged first), wrapped in a fresh LoRA when method=lora: the
    reference is then the same weights with the adapter disabled, with no second copy in memory."""
    policy = load_causal_lm(args.policy_name_or_path, device="cpu")
    if isinstance(policy, PeftModel):
        policy = policy.merge_and_unload()
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


def main(argv: list[str] | None = None) -> list[dict]:
    args, adapter_args, run_args, config = build_parser().parse_args_and_config(argv)
    check_output_dir(config.output_dir, run_args.overwrite_output_dir, bool(args.resume_from_checkpoint))
    set_seed(config.seed)

    tokenizer = load_tokenizer(args.policy_name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    policy = load_policy(args, adapter_args)
    print(f"policy ({adapter_args.method}): {describe_parameters(policy)}, context {model_context_length(policy)}")

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
    history = trainer.train(resume_from_checkpoint=resolve_checkpoint(args.resume_from_checkpoint, config.output_dir))
    if trainer.accelerator.is_main_process:
        first, last = history[0], history[-1]
        summary = {"steps": len(history), "first": first, "last": last}
        Path(config.output_dir, "metrics.json").write_text(json.dumps(summary, indent=2))
        print(
            f"score {first['objective/scores']:.3f} -> {last['objective/scores']:.3f}, KL {last['objective/kl']:.3f}"
        )
    return history


if __name__ == "__main__":
    main(sys.argv[1:])
