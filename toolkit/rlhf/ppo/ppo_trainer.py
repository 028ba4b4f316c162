"""PPO for RLHF on accelerate + transformers: rollouts, KL-penalised rewards, GAE, clipped updates, checkpoints.

One PPO step:
1. rollout: sample a response for each prompt of the batch (left-padded queries), cut it after the first EOS,
   score it (reward model or Python reward function), and record the policy's and the reference's log-probs of the
   response tokens and the value of every response prefix;
2. rewards: -kl_coef * KL per token, plus the score on the last real token; advantages and returns by GAE;
3. several PPO epochs over the batch, reshuffled each epoch, split into mini-batches (one optimizer step each) and
   micro-batches (gradient accumulation), with the clipped policy and value losses and gradient clipping.

Shapes: B = batch, Q = query tokens, R = response tokens, L = Q + R.
"""

import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import (
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerControl,
    TrainerState,
    get_scheduler,
    set_seed,
)

from ... import stopping
from ..._compat import CallbackHandler, get_reporting_integration_callbacks
from ...allocator import reuse_freed_memory
from ...loading import model_context_length
from ...plotting import draw_run_curves, plot_ppo_curves
from ...runs import (
    CURVES_FILE,
    METRICS_LOG_FILE,
    POLICY_DIR,
    TRAINER_STATE_FILE,
    VALUE_DIR,
    VALUE_HEAD_FILE,
    rotate_checkpoints,
)
from ..scoring import (
    PolicyAndValueModel,
    check_tokenizers_match,
    disable_dropout,
    enable_activation_checkpointing,
    is_peft_model,
    sequence_scores,
    unwrap_peft,
)
from .ppo_config import PPOConfig, steps_from
from .ppo_core import (
    AdaptiveKLController,
    FixedKLController,
    clipped_policy_loss,
    clipped_value_loss,
    compute_gae,
    compute_rewards,
    entropy_from_logits,
    kl_penalty,
    logprobs_from_logits,
    masked_mean,
    masked_whiten,
)
from .rollout import Rollout, left_pad, response_logprobs, truncate_after_eos

RewardFunction = Callable[..., Sequence[float]]
# A checkpoint's files, besides the inference copies of policy/ and the value function.
TRAINED_WEIGHTS_FILE = "trained_weights.safetensors"  # every parameter that trains (the rest is the SFT model's)
OPTIMIZER_FILE, SCHEDULER_FILE, PPO_STATE_FILE = "optimizer.pt", "scheduler.pt", "ppo_state.json"
RNG_FILE_PREFIX = "rng_state_"


@dataclass
class PPOState:
    """Where the run is: the step and the metrics of every step so far."""

    step: int = 0
    history: list[dict] = field(default_factory=list)


class PPOTrainer:
    """PPO on a causal LM policy against a frozen reference, with a reward model or a Python reward function.

    Args:
        config: a `PPOConfig`.
        policy: the causal LM to train, a full model or a PEFT (LoRA) model; `peft_config` wraps a full one.
        tokenizer: the policy's tokenizer; needs `eos_token` (the stop token) and `pad_token`.
        train_dataset: prompts, as a list of strings or a `datasets.Dataset` with a `prompt` column; the dataset's
            other columns are passed to `reward_fn` as keyword lists (e.g. `answer=[...]` for exact match).
        reward_model: a sequence-classification model (num_labels=1) scoring prompt + response at its last token.
        reward_fn: instead of a reward model, `reward_fn(prompts, responses, **columns) -> list[float]`.
        value_model: a sequence-classification model (usually a copy of the reward model) used per token as the
            value function; None puts a zero-initialised value head on the policy's last hidden states.
        ref_model: the frozen reference. None: a frozen copy of the policy, or for a PEFT policy the same model
            with its adapter disabled (no second copy in memory).
        reward_tokenizer: the reward (and value) model's tokenizer, checked against the policy's.
        peft_config: a PEFT config to wrap a full `policy` with.
        accelerator: an `accelerate.Accelerator`; one is created when None.
    """

    def __init__(
        self,
        config: PPOConfig,
        policy: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        train_dataset: datasets.Dataset | Sequence[str],
        *,
        reward_model: PreTrainedModel | None = None,
        reward_fn: RewardFunction | None = None,
        value_model: PreTrainedModel | None = None,
        ref_model: PreTrainedModel | None = None,
        reward_tokenizer: PreTrainedTokenizerBase | None = None,
        peft_config=None,
        accelerator: Accelerator | None = None,
    ):
        if (reward_model is None) == (reward_fn is None):
            raise ValueError("Pass exactly one of reward_model (a scoring model) or reward_fn (a Python function).")
        if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
            raise ValueError(
                "The tokenizer needs an eos_token (the stop token) and a pad_token. For GPT-2: "
                "tokenizer.pad_token = tokenizer.eos_token, or add a dedicated pad token and resize the embeddings."
            )
        if reward_tokenizer is not None:
            check_tokenizers_match(tokenizer, reward_tokenizer)
        for role, trained in (("policy", policy if peft_config is None else None), ("value_model", value_model)):
            if trained is not None and not any(parameter.requires_grad for parameter in trained.parameters()):
                raise ValueError(
                    f"The {role} has no trainable parameters (PEFT's merge_and_unload keeps a loaded adapter's "
                    f"weights frozen; toolkit.adapters.merge_adapter does not): call {role}.requires_grad_(True)."
                )
        if ref_model is not None and ref_model is policy:
            raise ValueError("ref_model is the policy itself; pass a separate copy, or None for a frozen copy.")
        if value_model is not None and value_model is reward_model:
            raise ValueError(
                "value_model is the reward model itself, which stays frozen; pass a copy (copy.deepcopy(reward_model) "
                "or a second load_reward_model(path)) so the value function can train."
            )

        self.config = config
        self.tokenizer = tokenizer
        self.reward_fn = reward_fn
        mixed_precision = "bf16" if config.bf16 else "fp16" if config.fp16 else "no"
        self.accelerator = accelerator or Accelerator(cpu=config.use_cpu, mixed_precision=mixed_precision)
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        if launched > 1 and self.accelerator.num_processes == 1:
            raise ValueError(
                f"This job was launched as {launched} processes, but each one set itself up alone (every process "
                "would run the whole job). On a machine without GPUs pass --use_cpu true, so the processes join over "
                "gloo."
            )
        if self.accelerator.gradient_accumulation_steps != 1:
            raise ValueError(
                "PPOTrainer accumulates gradients itself (config.gradient_accumulation_steps); create the "
                "Accelerator with gradient_accumulation_steps=1."
            )
        if config.reuse_freed_memory and self.accelerator.device.type == "cpu":
            reuse_freed_memory()
        set_seed(config.seed + self.accelerator.process_index)  # each process samples different responses

        if peft_config is not None:
            from peft import get_peft_model

            policy = get_peft_model(policy, peft_config)
        if ref_model is None and not is_peft_model(policy):
            ref_model = deepcopy(policy)
        self.ref_model = ref_model
        self.reward_model = reward_model
        for frozen in (ref_model, reward_model):
            if frozen is not None:
                disable_dropout(frozen)
                frozen.requires_grad_(False).eval().to(self.accelerator.device)
        for trained in (policy, value_model):
            if trained is not None:
                disable_dropout(trained)

        self.prompts, self.prompt_columns = self._read_prompts(train_dataset)
        self.prompt_ids = [list(ids) for ids in tokenizer(self.prompts)["input_ids"]]
        self._check_lengths([("policy", policy), ("reward model", reward_model), ("value model", value_model)])

        self.global_batch_size = config.batch_size * self.accelerator.num_processes
        if config.max_steps > 0:
            self.num_steps = config.max_steps
        else:
            self.num_steps = math.ceil((config.total_episodes or len(self.prompts)) / self.global_batch_size)

        if config.activation_checkpointing:
            for trained in (policy, value_model):
                if trained is not None:
                    enable_activation_checkpointing(trained, config.activation_checkpointing_kwargs)
        model = PolicyAndValueModel(policy, value_model)
        optimizer = self._create_optimizer(model)
        self.scheduler = get_scheduler(
            config.lr_scheduler_type,
            optimizer,
            num_warmup_steps=config.get_warmup_steps(self.num_steps),
            num_training_steps=self.num_steps,
            scheduler_specific_kwargs=config.lr_scheduler_kwargs or {},
        )
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        if config.adaptive_kl:
            self.kl_controller = AdaptiveKLController(config.kl_coef, config.kl_target, config.kl_horizon)
        else:
            self.kl_controller = FixedKLController(config.kl_coef)
        self.state = PPOState()
        # transformers' own callbacks report the metrics (report_to: TensorBoard, W&B, trackio, ...), as in Trainer.
        callbacks = get_reporting_integration_callbacks(config.report_to)
        self.callbacks = CallbackHandler(callbacks, self.unwrapped_model, tokenizer, self.optimizer, self.scheduler)
        self.trainer_state = TrainerState(
            is_local_process_zero=self.accelerator.is_local_main_process,
            is_world_process_zero=self.accelerator.is_main_process,
        )
        self.trainer_state.max_steps = self.num_steps
        self.trainer_state.logging_steps = steps_from(config.logging_steps, self.num_steps)
        self.trainer_state.save_steps = steps_from(config.save_steps, self.num_steps)
        self.control = TrainerControl()

        self.generation_config = GenerationConfig(
            max_new_tokens=config.max_new_tokens,
            do_sample=True,
            temperature=config.temperature,
            top_k=config.top_k,
            top_p=config.top_p,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        self.output_dir = Path(config.output_dir)
        self.last_rollout: Rollout | None = None
        self.phase_seconds: dict[str, float] = {}  # this step's seconds per phase: generation, passes, update
        self._prompt_orders: dict[int, list[int]] = {}  # the prompt order of the current pass over the data

    # ----------------------------------------------------------------------------------------------------------------
    # Setup helpers

    def _create_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """The optimizer `optim` names (transformers' own mapping), with weight decay on matrices only: not on
        biases, norms or the value head's bias, as Trainer leaves out biases and LayerNorm weights."""
        trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
        groups = [
            {"params": [p for p in trained if p.ndim >= 2], "weight_decay": self.config.weight_decay},
            {"params": [p for p in trained if p.ndim < 2], "weight_decay": 0.0},
        ]
        optimizer_class, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.config)
        return optimizer_class([group for group in groups if group["params"]], **optimizer_kwargs)

    @staticmethod
    def _read_prompts(dataset: datasets.Dataset | Sequence[str]) -> tuple[list[str], dict[str, list]]:
        if isinstance(dataset, datasets.Dataset):
            if "prompt" not in dataset.column_names:
                raise ValueError(f"The prompt dataset needs a 'prompt' column; it has {dataset.column_names}.")
            columns = {name: dataset[name] for name in dataset.column_names if name != "prompt"}
            prompts = list(dataset["prompt"])
        else:
            prompts, columns = list(dataset), {}
        if not prompts:
            raise ValueError("The prompt dataset is empty.")
        for index, prompt in enumerate(prompts):
            if not isinstance(prompt, str) or not prompt:
                raise ValueError(f"Prompt {index} is {prompt!r}; every prompt must be a non-empty string.")
        return prompts, columns

    def _check_lengths(self, named_models: list[tuple[str, torch.nn.Module | None]]) -> None:
        """Fail before training when the longest query plus max_new_tokens does not fit a model's context."""
        longest = max(range(len(self.prompt_ids)), key=lambda index: len(self.prompt_ids[index]))
        needed = len(self.prompt_ids[longest]) + self.config.max_new_tokens
        for name, model in named_models:
            limit = model_context_length(unwrap_peft(model)) if model is not None else None
            if limit is not None and needed > limit:
                raise ValueError(
                    f"Prompt {longest} has {len(self.prompt_ids[longest])} tokens; with max_new_tokens="
                    f"{self.config.max_new_tokens} query + response need {needed} positions but the {name}'s context "
                    f"is {limit}. Shorten or drop the longest prompts, or lower max_new_tokens."
                )

    @property
    def unwrapped_model(self) -> PolicyAndValueModel:
        return self.accelerator.unwrap_model(self.model)

    @property
    def policy(self) -> torch.nn.Module:
        return self.unwrapped_model.policy

    @contextmanager
    def reference(self):
        """The reference causal LM: the frozen copy, or the PEFT policy with its adapter disabled."""
        if self.ref_model is not None:
            yield self.ref_model
        else:
            with self.policy.disable_adapter():
                yield self.policy

    def prompt_indices(self, step: int) -> list[int]:
        """This process's prompts for `step`: a fixed function of (seed, step), so a resumed run sees the same data.

        The prompts are visited in a fresh random order each pass (the same order on every process); each process
        takes its own slice of the step's global batch.
        """
        start = step * self.global_batch_size + self.accelerator.process_index * self.config.batch_size
        indices = []
        for position in range(start, start + self.config.batch_size):
            data_epoch, offset = divmod(position, len(self.prompts))
            if data_epoch not in self._prompt_orders:
                generator = torch.Generator().manual_seed(self.config.seed + data_epoch)
                self._prompt_orders = {data_epoch: torch.randperm(len(self.prompts), generator=generator).tolist()}
            indices.append(self._prompt_orders[data_epoch][offset])
        return indices

    # ----------------------------------------------------------------------------------------------------------------
    # Rollouts

    @contextmanager
    def _timed(self, phase: str):
        """Add the wall time of the block to this step's `phase_seconds[phase]` (the `time/...` metrics). Host time:
        on a GPU it includes only the kernels the block waits for."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phase_seconds[phase] = self.phase_seconds.get(phase, 0.0) + time.perf_counter() - start

    def decode_responses(self, responses: torch.Tensor, response_mask: torch.Tensor) -> list[str]:
        return [
            self.tokenizer.decode(row[mask.bool()].tolist(), skip_special_tokens=True)
            for row, mask in zip(responses, response_mask)
        ]

    @torch.no_grad()
    def score_responses(
        self,
        prompt_indices: list[int],
        queries: torch.Tensor,
        query_mask: torch.Tensor,
        responses: torch.Tensor,
        response_mask: torch.Tensor,
        has_eos: torch.Tensor,
    ) -> torch.Tensor:
        """Score each truncated response (B,): reward model at the last real token, or the reward function; then
        subtract missing_eos_penalty from responses that never emitted EOS."""
        if self.reward_model is not None:
            input_ids = torch.cat([queries, responses], dim=1)
            attention_mask = torch.cat([query_mask, response_mask], dim=1)
            scores = sequence_scores(self.reward_model, input_ids, attention_mask).float()
        else:
            prompts = [self.prompts[index] for index in prompt_indices]
            columns = {
                name: [column[index] for index in prompt_indices] for name, column in self.prompt_columns.items()
            }
            rewards = self.reward_fn(prompts, self.decode_responses(responses, response_mask), **columns)
            scores = torch.tensor([float(reward) for reward in rewards], device=responses.device)
        if self.config.missing_eos_penalty is not None:
            scores = torch.where(has_eos, scores, scores - self.config.missing_eos_penalty)
        return scores

    @torch.no_grad()
    def rollout(self, prompt_indices: list[int]) -> Rollout:
        """Generate, truncate, score, and record log-probs and values for the prompts at `prompt_indices`."""
        device = self.accelerator.device
        model = self.unwrapped_model.eval()
        prompt_ids = [self.prompt_ids[index] for index in prompt_indices]
        queries, query_mask = (tensor.to(device) for tensor in left_pad(prompt_ids, self.tokenizer.pad_token_id))
        query_length = queries.shape[1]

        with self._timed("generation"):
            generated = model.policy.generate(
                input_ids=queries, attention_mask=query_mask, generation_config=self.generation_config
            )
        responses, response_mask, has_eos = truncate_after_eos(
            generated[:, query_length:], self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        )
        input_ids = torch.cat([queries, responses], dim=1)  # (B, L)
        attention_mask = torch.cat([query_mask, response_mask], dim=1)  # (B, L)

        logprobs, ref_logprobs, values = [], [], []
        chunk = self.config.rollout_forward_batch_size or len(prompt_indices)
        temperature = self.config.temperature
        for start in range(0, len(prompt_indices), chunk):
            rows = slice(start, start + chunk)
            with self._timed("policy_and_value"):
                logits, chunk_values = model(input_ids[rows], attention_mask[rows], query_length)
                logprobs.append(logprobs_from_logits(logits / temperature, responses[rows]))
                values.append(chunk_values)
            with self._timed("reference"), self.reference() as reference:
                ref_logprobs.append(
                    response_logprobs(reference, input_ids[rows], attention_mask[rows], query_length, temperature)
                )
        with self._timed("reward"):
            scores = self.score_responses(prompt_indices, queries, query_mask, responses, response_mask, has_eos)
        mask = response_mask.float()
        return Rollout(
            prompt_indices=list(prompt_indices),
            queries=queries,
            query_mask=query_mask,
            responses=responses,
            response_mask=response_mask,
            has_eos=has_eos,
            logprobs=torch.cat(logprobs) * mask,
            ref_logprobs=torch.cat(ref_logprobs) * mask,
            values=torch.cat(values) * mask,
            scores=scores,
        )

    # ----------------------------------------------------------------------------------------------------------------
    # Optimisation

    def _optimise(self, rollout: Rollout, advantages: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
        """PPO epochs over the rollout batch. Returns per-micro-batch statistics (num_micro_batches, 7): policy loss,
        value loss, policy clip fraction, value clip fraction, approx KL, entropy, mean ratio."""
        config = self.config
        self.model.train()
        input_ids, attention_mask, mask = rollout.input_ids, rollout.attention_mask, rollout.response_mask.float()
        query_length = rollout.queries.shape[1]
        statistics = []
        for _ in range(config.num_ppo_epochs):
            order = torch.randperm(len(rollout.prompt_indices), device=input_ids.device)
            for mini_start in range(0, len(order), config.mini_batch_size):
                mini_batch = order[mini_start : mini_start + config.mini_batch_size]
                micro_batches = mini_batch.split(config.micro_batch_size)
                for micro_index, rows in enumerate(micro_batches):
                    # Synchronise gradients across processes only on the mini-batch's last backward pass.
                    last = micro_index == len(micro_batches) - 1
                    with nullcontext() if last else self.accelerator.no_sync(self.model):
                        logits, values = self.model(input_ids[rows], attention_mask[rows], query_length)
                        logits = logits / config.temperature  # (b, R, V)
                        logprobs = logprobs_from_logits(logits, rollout.responses[rows])  # (b, R)
                        policy = clipped_policy_loss(
                            logprobs, rollout.logprobs[rows], advantages[rows], mask[rows], config.cliprange
                        )
                        value = clipped_value_loss(
                            values, rollout.values[rows], returns[rows], mask[rows], config.cliprange_value
                        )
                        loss = policy.loss + config.vf_coef * value.loss
                        self.accelerator.backward(loss / len(micro_batches))
                    with torch.no_grad():
                        entropy = masked_mean(entropy_from_logits(logits), mask[rows])
                        ratio = masked_mean(torch.exp(logprobs - rollout.logprobs[rows]), mask[rows])
                    statistics.append(
                        torch.stack(
                            [
                                policy.loss.detach(),
                                value.loss.detach(),
                                policy.clip_fraction,
                                value.clip_fraction,
                                policy.approx_kl,
                                entropy,
                                ratio,
                            ]
                        )
                    )
                if config.max_grad_norm > 0:
                    self.accelerator.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad()
        return torch.stack(statistics).float()

    def step(self) -> dict[str, float]:
        """One PPO step: rollout, rewards and advantages, PPO epochs. Returns this step's metrics."""
        config = self.config
        started = time.perf_counter()
        self.phase_seconds = {}
        rollout = self.rollout(self.prompt_indices(self.state.step))
        with torch.no_grad():
            mask = rollout.response_mask.float()
            kl = kl_penalty(rollout.logprobs, rollout.ref_logprobs, config.kl_estimator) * mask  # (B, R)
            kl_coef = self.kl_controller.value
            rewards, non_score_rewards = compute_rewards(rollout.scores, kl, mask, kl_coef)
            if config.whiten_rewards:
                rewards = masked_whiten(rewards, mask, shift_mean=False)
            advantages, returns = compute_gae(rewards, rollout.values, mask, config.gamma, config.lam)
            advantages = masked_whiten(advantages, mask)
        learning_rate = self.scheduler.get_last_lr()[0]
        with self._timed("update"):
            statistics = self._optimise(rollout, advantages, returns)
        self.scheduler.step()

        # Metrics over all processes: gather per example (or per equal-sized micro-batch), then average.
        gather = self.accelerator.gather
        scores = gather(rollout.scores)
        sequence_kl = gather(kl.sum(1))
        non_score = gather(non_score_rewards.sum(1))
        lengths = gather(mask.sum(1))
        eos = gather(rollout.has_eos.float())
        averages = gather(statistics).mean(0).tolist()
        self.kl_controller.update(sequence_kl.mean().item(), n_steps=self.global_batch_size)
        self.state.step += 1
        metrics = {
            "step": self.state.step,
            "episodes": self.state.step * self.global_batch_size,
            "objective/scores": scores.mean().item(),
            "objective/scores_std": scores.std().item() if len(scores) > 1 else 0.0,
            "objective/kl": sequence_kl.mean().item(),
            "objective/kl_coef": kl_coef,
            "objective/non_score_reward": non_score.mean().item(),
            "objective/rlhf_reward": (scores + non_score).mean().item(),
            "loss/policy": averages[0],
            "loss/value": averages[1],
            "policy/clip_fraction": averages[2],
            "value/clip_fraction": averages[3],
            "policy/approx_kl": averages[4],
            "policy/entropy": averages[5],
            "policy/ratio": averages[6],
            "rollout/response_length": lengths.mean().item(),
            "rollout/eos_fraction": eos.mean().item(),
            "lr": learning_rate,
            "episodes_per_second": self.global_batch_size / (time.perf_counter() - started),
            **{f"time/{phase}": seconds for phase, seconds in self.phase_seconds.items()},
        }
        self.state.history.append(metrics)
        self.last_rollout = rollout
        return metrics

    def train(self, resume_from_checkpoint: str | Path | None = None, plot: bool = True) -> list[dict]:
        """Run PPO steps until max_steps, logging (metrics.jsonl and `report_to`), printing samples and saving
        checkpoints; save the final models, the metrics and (`plot`) their curves in output_dir. Returns the metrics
        history."""
        config = self.config
        if resume_from_checkpoint is not None:
            self.load_checkpoint(resume_from_checkpoint)
        is_main = self.accelerator.is_main_process
        if is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            # Start the log from the restored history, so a resumed run does not repeat lines.
            with open(self.output_dir / METRICS_LOG_FILE, "w") as log:
                log.writelines(
                    json.dumps(metrics) + "\n" for metrics in self.state.history if self._should_log(metrics)
                )
        self.trainer_state.global_step = self.state.step
        self.control = self.callbacks.on_train_begin(config, self.trainer_state, self.control)
        progress = tqdm(
            total=self.num_steps,
            initial=self.state.step,
            desc="PPO",
            disable=bool(config.disable_tqdm) or not self.accelerator.is_local_main_process,
        )
        with stopping.stop_on_signals():
            while self.state.step < self.num_steps:
                metrics = self.step()
                step = self.state.step
                for name in ("loss/policy", "loss/value"):
                    if not math.isfinite(metrics[name]):
                        raise stopping.diverged(name.replace("/", " "), metrics[name], step)
                progress.update(1)
                progress.set_postfix(score=f"{metrics['objective/scores']:.3f}", kl=f"{metrics['objective/kl']:.3f}")
                if self._should_log(metrics):
                    self._log(metrics)
                if is_main and config.sample_steps and step % config.sample_steps == 0:
                    progress.write(f"step {step}\n{self.sample_table(self.last_rollout)}")
                stop = stopping.agreed()  # every process, at the same step
                if stop is not None or (config.save_strategy == "steps" and step % self.trainer_state.save_steps == 0):
                    checkpoint = self.save_checkpoint()
                if stop is not None:
                    progress.close()
                    resume = "Resume with --resume_from_checkpoint latest"
                    raise stopping.JobStopped(stop, f"at step {step}; checkpoint saved in {checkpoint}. {resume}")
        progress.close()
        stopping.check_finite_weights(self.unwrapped_model, self.state.step)
        self.save_model(self.output_dir)
        self.control = self.callbacks.on_train_end(config, self.trainer_state, self.control)
        if is_main and plot:
            draw_run_curves(plot_ppo_curves, self.state.history, self.output_dir / CURVES_FILE, config.kl_estimator)
        return self.state.history

    def _log(self, metrics: dict) -> None:
        """One step's metrics to metrics.jsonl (main process) and to every `report_to` integration."""
        if self.accelerator.is_main_process:
            with open(self.output_dir / METRICS_LOG_FILE, "a") as log:
                log.write(json.dumps(metrics) + "\n")
        self.trainer_state.global_step = metrics["step"]
        self.trainer_state.log_history.append(metrics)
        logs = {key: value for key, value in metrics.items() if key != "step"}
        self.control = self.callbacks.on_log(self.config, self.trainer_state, self.control, logs)

    # ----------------------------------------------------------------------------------------------------------------
    # Reporting

    def _should_log(self, metrics: dict) -> bool:
        return metrics["step"] % self.trainer_state.logging_steps == 0

    def sample_table(self, rollout: Rollout, max_width: int = 60) -> str:
        """A plain-text table of a few prompts, responses and scores from `rollout`."""
        count = min(self.config.num_samples_to_print, len(rollout.prompt_indices))
        responses = self.decode_responses(rollout.responses[:count], rollout.response_mask[:count])

        def cell(text: str) -> str:
            text = repr(text)[1:-1]  # newlines and tabs stay on one line
            return text if len(text) <= max_width else text[: max_width - 3] + "..."

        rows = [
            (cell(self.prompts[index]), cell(response), f"{score:.3f}")
            for index, response, score in zip(rollout.prompt_indices, responses, rollout.scores.tolist())
        ]
        header = ("query", "response", "score")
        widths = [max(len(row[column]) for row in [header, *rows]) for column in range(3)]
        lines = [" | ".join(text.ljust(width) for text, width in zip(row, widths)) for row in [header, *rows]]
        lines.insert(1, "-+-".join("-" * width for width in widths))
        return "\n".join(lines)

    # ----------------------------------------------------------------------------------------------------------------
    # Saving and resuming

    def save_model(self, directory: str | Path) -> None:
        """Write the policy (full model or PEFT adapter) with the tokenizer to directory/policy, and the value model
        to directory/value (or the value head to directory/value_head.safetensors)."""
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            directory = Path(directory)
            model = self.unwrapped_model
            model.policy.save_pretrained(directory / POLICY_DIR)
            self.tokenizer.save_pretrained(directory / POLICY_DIR)
            if model.value_head is not None:
                save_file(model.value_head.state_dict(), directory / VALUE_HEAD_FILE)
            else:
                model.value_model.model.save_pretrained(directory / VALUE_DIR)
        self.accelerator.wait_for_everyone()

    def save_checkpoint(self, directory: str | Path | None = None) -> Path:
        """A resumable checkpoint, nothing in it pickled: the trained weights (safetensors), the optimizer and
        scheduler states (tensors and numbers, loaded with `weights_only=True`), every process's random states, and
        the step, metrics and KL controller (JSON), plus the models for inference (`save_model`). Its
        `trainer_state.json` is written last, so a checkpoint holding one is complete (`toolkit.runs`)."""
        directory = Path(directory or self.output_dir / f"checkpoint-{self.state.step}")
        directory.mkdir(parents=True, exist_ok=True)
        self.accelerator.wait_for_everyone()
        save_file(random_states(), directory / f"{RNG_FILE_PREFIX}{self.accelerator.process_index}.safetensors")
        (directory / f"{RNG_FILE_PREFIX}{self.accelerator.process_index}.json").write_text(
            json.dumps(python_random_states())
        )
        self.save_model(directory)
        if self.accelerator.is_main_process:
            trained = {
                name: p.detach().cpu() for name, p in self.unwrapped_model.named_parameters() if p.requires_grad
            }
            save_file(trained, directory / TRAINED_WEIGHTS_FILE)
            torch.save(self.optimizer.state_dict(), directory / OPTIMIZER_FILE)
            torch.save(self.scheduler.state_dict(), directory / SCHEDULER_FILE)
            kl = self.kl_controller.state_dict()
            state = {"step": self.state.step, "history": self.state.history, "kl_controller": kl}
            (directory / PPO_STATE_FILE).write_text(json.dumps(state))
            self.trainer_state.global_step = self.state.step
            self.trainer_state.save_to_json(str(directory / TRAINER_STATE_FILE))
        self.accelerator.wait_for_everyone()
        if self.config.save_total_limit and self.accelerator.is_main_process:
            rotate_checkpoints(self.output_dir, self.config.save_total_limit, directory)
        return directory

    def load_checkpoint(self, directory: str | Path) -> None:
        """Restore everything `save_checkpoint` wrote; the next `step()` continues exactly where that run was.
        Nothing is unpickled: tensors come from safetensors or `torch.load(weights_only=True)`, the rest from JSON."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"No checkpoint folder at {directory}.")
        if not (directory / TRAINER_STATE_FILE).is_file():
            raise ValueError(f"{directory} is not a complete PPO checkpoint: it has no {TRAINER_STATE_FILE}.")
        parameters = dict(self.unwrapped_model.named_parameters())
        with torch.no_grad():
            for name, tensor in load_file(directory / TRAINED_WEIGHTS_FILE).items():
                parameters[name].copy_(tensor)
        # Read onto the CPU: a gloo job's device is saved as "cpu:0", which torch cannot map back, and the optimizer
        # moves each state to its parameter's device as it loads.
        self.optimizer.load_state_dict(torch.load(directory / OPTIMIZER_FILE, map_location="cpu", weights_only=True))
        self.scheduler.load_state_dict(torch.load(directory / SCHEDULER_FILE, weights_only=True))
        state = json.loads((directory / PPO_STATE_FILE).read_text())
        self.state.step, self.state.history = state["step"], list(state["history"])
        self.kl_controller.load_state_dict(state["kl_controller"])
        rank = self.accelerator.process_index
        set_random_states(
            load_file(directory / f"{RNG_FILE_PREFIX}{rank}.safetensors"),
            json.loads((directory / f"{RNG_FILE_PREFIX}{rank}.json").read_text()),
        )
        if self.state.step > self.num_steps:
            raise ValueError(
                f"The checkpoint is at step {self.state.step}, past this run's max_steps={self.num_steps}."
            )


def random_states() -> dict[str, torch.Tensor]:
    """torch's CPU and CUDA generator states, as tensors (saved with safetensors)."""
    states = {"cpu": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        states |= {f"cuda_{index}": state for index, state in enumerate(torch.cuda.get_rng_state_all())}
    return states


def python_random_states() -> dict:
    """Python's and numpy's generator states, as JSON."""
    numpy_state = np.random.get_state()
    return {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
    }


def set_random_states(tensors: dict[str, torch.Tensor], python: dict) -> None:
    torch.random.set_rng_state(tensors["cpu"])
    cuda = [tensors[key] for key in sorted(tensors) if key.startswith("cuda_")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = python["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = python["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))


__all__ = ["PPOState", "PPOTrainer"]
