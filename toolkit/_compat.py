"""Version-sensitive code, in one place: names the libraries keep outside their stable top-level API, and every
override of a library's internals, each with the version it was written against.

When a dependency moves one of these, this file is the one to change. (The model files in toolkit/models/ are
exported next to saved weights and import on their own; `bench/trl_ppo.py` runs in TRL 1.12's own environment.)
"""

import errno
from pathlib import Path

import datasets
import numpy as np
import torch

# accelerate 1.15: gathering Python objects (per-example evaluation records) across processes.
from accelerate.utils import gather_object

# datasets 4.x: the error its builders wrap a file reader's own error in.
from datasets.exceptions import DatasetGenerationError

# huggingface_hub: repository id validation; it talks to the Hub through httpx2 (2.x) or httpx (1.x), whose
# connection failures (refused, unresolved, timed out) are not wrapped in huggingface_hub's own errors.
from huggingface_hub import constants as hub_constants
from huggingface_hub.utils import HFValidationError, validate_repo_id

try:
    from httpx2 import TransportError as HubConnectionError
except ImportError:
    from httpx import TransportError as HubConnectionError

# peft 0.21: the default LoRA targets it knows per model type.
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULT_LORA_TARGETS
from transformers import TrainerCallback

# transformers 5.24: the reporting integrations behind `report_to` and the Trainer's callback machinery (PPO drives
# them too), checkpoint folder naming.
from transformers.integrations import get_reporting_integration_callbacks
from transformers.trainer_callback import CallbackHandler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .stopping import JobStopped, agreed


def hub_offline() -> bool:
    """huggingface_hub 1.x: whether HF_HUB_OFFLINE is on (read into its constants at import), in which case every
    request raises its OfflineModeIsEnabled."""
    return bool(hub_constants.HF_HUB_OFFLINE)


# torch 2.13 and safetensors 0.x: a save that runs out of disk space names no OS error in torch's zip writer
# ("[enforce fail at inline_container.cc:672] . unexpected pos ..." or "basic_ios::clear"), and safetensors reports
# the OS error in its own text ("... Os { code: 28, kind: StorageFull ...").
WRITE_FAILURE_TEXTS = ("inline_container.cc", "basic_ios::clear", "StorageFull", "QuotaExceeded")


def is_failed_write(error: BaseException) -> bool:
    """Whether `error` is a write that failed for lack of space: the OS's ENOSPC or EDQUOT, or a library's wording of
    a failed write (which may have another cause: check the disk)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(text in str(error) for text in WRITE_FAILURE_TEXTS)


def datasets_cache_folder() -> Path:
    """datasets 4.x: the folder datasets keeps its cache in (`HF_DATASETS_CACHE`), read when called, so a changed
    setting is followed."""
    return Path(datasets.config.HF_DATASETS_CACHE)


def dataset_fingerprint(dataset) -> str:
    """datasets 4.x: the fingerprint a `Dataset` carries (its source plus every transform applied, hashed); what
    datasets' own cache names files by. Not part of its public API."""
    return dataset._fingerprint


def per_example_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, 2): summed next-token NLL and number of scored tokens per example; -100 labels are not scored.

    Logits may be longer than labels (a soft prompt is prepended): the last T positions line up with the labels."""
    logits = logits[:, -labels.shape[1] :].float()  # (B, T, V)
    targets = labels[:, 1:]  # (B, T-1)
    scored = targets != -100
    nll = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), targets.masked_fill(~scored, 0), reduction="none"
    )  # (B, T-1)
    return torch.stack([(nll * scored).sum(-1), scored.sum(-1).float()], dim=-1).double()


def generate_after_soft_prompt(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs) -> torch.Tensor:
    """PEFT 0.21 and 0.22 with transformers 5.24 and 5.25: a prompt-tuned model's own `generate` looks for the cache
    under its pre-5.x name and re-inserts the soft prompt at every step (peft#2379), emitting wrong tokens. Here the
    soft prompt is prepended as embeddings and the base model generates from `inputs_embeds`;
    returns the new tokens (B, new)."""
    base = model.get_base_model()
    prompt = model.get_prompt(batch_size=input_ids.shape[0]).to(base.dtype)  # (B, P, C)
    embeds = torch.cat([prompt, base.get_input_embeddings()(input_ids)], dim=1)  # (B, P + T, C)
    mask = torch.cat([attention_mask.new_ones(prompt.shape[:2]), attention_mask], dim=1)
    # Left padding sits after the soft prompt; positions come from the mask so real tokens keep theirs.
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    return base.generate(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, **kwargs)


def model_from_config(model_class, config, **kwargs):
    """transformers 5.24: a new model of `model_class` from `config` with `from_pretrained`'s settings honoured
    (`attn_implementation`, dtype) is the private `_from_config`; `from_config` exists on Auto classes only."""
    return model_class._from_config(config, **kwargs)


class WholeGroupsCheck:
    """TRL 1.16's GRPOConfig / RLOOConfig, refusing with a message in the flags users set: a generation step
    samples `num_generations` completions of each prompt, and the completions of one step (per_device_train_batch_size
    x processes x gradient_accumulation_steps, unless generation_batch_size or steps_per_generation say otherwise)
    must hold whole groups. A group needs two completions or more, which TRL checks only after dividing by it."""

    def __post_init__(self):
        if self.num_generations is not None and self.num_generations < 2:
            raise ValueError(
                f"--num_generations must be at least 2 (each completion is scored against the others of its prompt), "
                f"got {self.num_generations}."
            )
        try:
            super().__post_init__()
        except ValueError as error:
            # TRL checks this after TrainingArguments knows the number of processes, in its own terms.
            if (message := self.whole_groups_error()) is not None:
                raise ValueError(message) from error
            raise

    def whole_groups_error(self) -> str | None:
        if getattr(self, "distributed_state", None) is None or not self.num_generations:
            return None
        steps = self.steps_per_generation or self.gradient_accumulation_steps
        completions = self.generation_batch_size or self.per_device_train_batch_size * self.world_size * steps
        if completions % self.num_generations == 0:
            return None
        return (
            f"--num_generations {self.num_generations} does not divide the {completions} completions sampled per "
            f"generation step (--per_device_train_batch_size {self.per_device_train_batch_size} x {self.world_size} "
            f"processes x {steps} steps): make --per_device_train_batch_size a multiple of {self.num_generations}, or "
            f"--num_generations a divisor of {completions}."
        )


class DatasetEpochCallback(TrainerCallback):
    """Gives a training dataset the epoch the Trainer begins (`dataset.set_epoch`), resumed runs included.

    accelerate 1.16 passes its dataloader's epoch on to the dataset only when the sampler it wraps takes none: a
    fresh one-process run's dataset gets it, but under DDP and in a run resumed mid-epoch (the skipping dataloader)
    it never does. Dataloader workers get a copy of the dataset when an epoch's iteration starts, after this callback,
    unless they persist across epochs (`--dataloader_persistent_workers`, which the pretraining pipeline refuses with
    random blocks)."""

    def __init__(self, dataset):  # a dataset with set_epoch (toolkit.data.RandomBlocks)
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(int(state.epoch))  # state.epoch counts epochs done, with the fraction of this one


class TokenWeightedEvaluation:
    """Trainer mixin (transformers 5.24 `prediction_step` / `evaluation_loop`, TRL 1.16's fused LM head): the eval loss
    is the NLL summed per example over the whole evaluation set, gathered across processes (accelerate drops the
    duplicated padding examples), then divided once by the token count. Trainer's own eval loss averages per-batch
    means, which moves with the batch size and the number of processes.

    With `fused_lm_head` (TRL's SFTTrainer patches the model so) one forward pass gives the per-token log-probs,
    entropy and top-1 hits, so `eval_entropy` and `eval_mean_token_accuracy` are token-weighted the same way."""

    fused_lm_head = False

    def get_eval_dataloader(self, eval_dataset=None):
        """Every example, also under `--dataloader_drop_last true`, which Trainer applies to evaluation too (that
        setting keeps training batches full; a dropped last eval batch silently leaves examples unscored)."""
        drop_last = self.args.dataloader_drop_last
        self.args.dataloader_drop_last = False
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.args.dataloader_drop_last = drop_last

    def evaluate(self, *args, **kwargs):
        """An evaluation during training gives way to a stop request between batches (`toolkit.stopping`): it returns
        no metrics, and the step boundary that follows saves a checkpoint and stops."""
        try:
            return super().evaluate(*args, **kwargs)
        except JobStopped:
            if not self.is_in_train:
                raise
            return {}

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        if self.is_in_train and (name := agreed()) is not None:  # in step on every process: Trainer pads the batches
            raise JobStopped(name, "during evaluation")
        inputs = self._prepare_inputs(inputs)
        labels = inputs["labels"]
        with torch.no_grad(), self.compute_loss_context_manager():
            if self.fused_lm_head:
                outputs = model(**inputs, fused_lm_head=True)
                mask = outputs.label_mask.float()
                sums = torch.stack(
                    [
                        -outputs.log_probs.sum(-1),
                        mask.sum(-1),
                        (outputs.entropy * mask).sum(-1),
                        (outputs.is_top1.float() * mask).sum(-1),
                    ],
                    dim=-1,
                ).double()  # (B, 4)
            else:
                logits = model(**{key: value for key, value in inputs.items() if key != "labels"}).logits
                sums = per_example_nll(logits, labels)  # (B, 2)
        loss = (sums[:, 0].sum() / sums[:, 1].sum().clamp(min=1)).float()
        return loss.detach(), sums, None

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None, **kwargs):
        output = super().evaluation_loop(dataloader, description, False, ignore_keys, **kwargs)
        prefix = kwargs.get("metric_key_prefix", "eval")
        sums = np.concatenate(output.predictions) if isinstance(output.predictions, list) else output.predictions
        tokens = sums[:, 1].sum()
        output.metrics[f"{prefix}_loss"] = float(sums[:, 0].sum() / tokens)
        output.metrics[f"{prefix}_tokens"] = int(tokens)
        if sums.shape[1] == 4:
            output.metrics[f"{prefix}_entropy"] = float(sums[:, 2].sum() / tokens)
            output.metrics[f"{prefix}_mean_token_accuracy"] = float(sums[:, 3].sum() / tokens)
        return output._replace(predictions=None)


__all__ = [
    "DatasetGenerationError",
    "WRITE_FAILURE_TEXTS",
    "is_failed_write",
    "DatasetEpochCallback",
    "WholeGroupsCheck",
    "generate_after_soft_prompt",
    "model_from_config",
    "PEFT_DEFAULT_LORA_TARGETS",
    "PREFIX_CHECKPOINT_DIR",
    "CallbackHandler",
    "HFValidationError",
    "HubConnectionError",
    "hub_offline",
    "TokenWeightedEvaluation",
    "gather_object",
    "get_reporting_integration_callbacks",
    "per_example_nll",
    "validate_repo_id",
]
