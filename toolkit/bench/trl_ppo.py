"""TRL 1.12's PPOTrainer on the `toolkit bench ppo` tiny config, run in TRL's own venv:
`python -I trl_ppo.py SPEC RESULT`.

It must not import `toolkit` (TRL 1.12 is never a dependency of the toolkit; it lives in a separate venv). `toolkit
bench ppo --trl_python ...` writes SPEC (a JSON file: model shape, tokenizer folder, prompts, PPO settings) and reads
RESULT (the seconds of each timed step and the memory figures). The model and memory helpers here are shared with
toolkit.bench, so both sides build the same models and measure memory the same way.
"""

import json
import resource
import sys
import tempfile
import time
from copy import deepcopy

import torch
from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel


def build_models(
    model_config: dict, pad_token_id: int, seed: int
) -> tuple[GPT2LMHeadModel, GPT2ForSequenceClassification]:
    """The policy and the reward model, randomly initialised from `seed`, dropout off; GPT-2 architecture, which
    both PPO trainers take. The value model is a copy of the reward model, as TRL's examples do."""
    fields = dict(**model_config, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, pad_token_id=pad_token_id)
    torch.manual_seed(seed)
    policy = GPT2LMHeadModel(GPT2Config(**fields))
    reward_model = GPT2ForSequenceClassification(GPT2Config(**fields, num_labels=1))
    return policy, reward_model


class MemoryMeter:
    """Peak memory of this process from now on: torch.cuda.max_memory_allocated on CUDA; on CPU the peak RSS
    (getrusage, as `toolkit bench memory`) and its growth over the RSS at construction (the imports' share)."""

    def __init__(self):
        self.cuda = torch.cuda.is_available()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.start_mib = torch.cuda.memory_allocated() / 2**20
        else:
            self.start_mib = self.peak_rss_mib()

    @staticmethod
    def peak_rss_mib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    def read(self) -> dict:
        peak = torch.cuda.max_memory_allocated() / 2**20 if self.cuda else self.peak_rss_mib()
        return {"peak_memory_mib": peak, "memory_growth_mib": peak - self.start_mib}


def run_trl_ppo(spec: dict) -> dict:
    """TRL's PPOTrainer on `spec`: the seconds of each update after the warm-up ones, and the peak memory."""
    import datasets
    import trl
    from transformers import AutoTokenizer, TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    class StepClock(TrainerCallback):
        """Wall time of each PPO update: TRL's train() ends every update with on_step_end."""

        def __init__(self):
            self.marks: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.marks.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append(time.perf_counter())

    torch.set_num_threads(spec["threads"])
    meter = MemoryMeter()
    tokenizer = AutoTokenizer.from_pretrained(spec["tokenizer_dir"], padding_side="left")
    policy, reward_model = build_models(spec["model_config"], tokenizer.pad_token_id, spec["seed"])
    prompts = datasets.Dataset.from_dict({"input_ids": tokenizer(spec["prompts"])["input_ids"]})
    steps = spec["warmup_steps"] + spec["steps"]
    mini_batches = spec["batch_size"] // spec["mini_batch_size"]
    with tempfile.TemporaryDirectory() as output_dir:
        config = PPOConfig(
            output_dir=output_dir,
            seed=spec["seed"],
            # TRL's rollout batch is per_device_train_batch_size * gradient_accumulation_steps: one micro-batch
            # per mini-batch, as on our side. (Below batch_size, accelerate's accumulation then steps TRL's
            # optimizer once per PPO epoch rather than once per mini-batch.)
            per_device_train_batch_size=spec["mini_batch_size"],
            gradient_accumulation_steps=mini_batches,
            num_mini_batches=mini_batches,
            total_episodes=steps * spec["batch_size"],
            num_ppo_epochs=spec["ppo_epochs"],
            response_length=spec["new_tokens"],
            temperature=spec["temperature"],
            learning_rate=spec["learning_rate"],
            stop_token="eos",
            # Our trainer computes in fp32 without activation checkpointing: the same work on both sides.
            bf16=False,
            gradient_checkpointing=False,
            num_sample_generations=0,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
        )
        clock = StepClock()
        trainer = PPOTrainer(
            args=config,
            processing_class=tokenizer,
            model=policy,
            ref_model=None,  # TRL makes a frozen copy of a full policy
            reward_model=reward_model,
            train_dataset=prompts,
            value_model=deepcopy(reward_model),
            callbacks=[clock],
        )
        trainer.train()
    step_seconds = [end - start for start, end in zip(clock.marks, clock.marks[1:])]
    return {"trl_version": trl.__version__, "step_seconds": step_seconds[spec["warmup_steps"] :], **meter.read()}


if __name__ == "__main__":
    spec_path, result_path = sys.argv[1:]
    with open(spec_path) as file:
        result = run_trl_ppo(json.load(file))
    with open(result_path, "w") as file:
        json.dump(result, file)
