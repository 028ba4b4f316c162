r"""DPO on preference pairs (TRL's DPOTrainer), from an SFT model, full or LoRA; no reward model.

    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/dpo.py --config recipes/configs/dpo/tiny_cpu.yaml

parse -> pairs (hh-rlhf files, Hub, or the arithmetic task's corrupted and policy-sampled pairs) -> policy (SFT
model, LoRA on top; the reference is the adapter-disabled base or a frozen copy) -> DPOTrainer -> train -> held-out
preference accuracy -> save (model, curves); `run_job` records and pushes.
"""

import logging
from dataclasses import dataclass, field

from trl import DPOConfig, DPOTrainer

from ..adapters import describe_parameters
from ..evaluation.preference_accuracy import preference_accuracy_change, preferred_chosen
from ..loading import load_tokenizer
from ..rlhf.preferences import PreferenceDataArguments, load_preference_splits
from ..runs import JobResult
from ..training import AdapterArguments, RunArguments, per_step, train_and_save, training_result
from .common import OpenedRun, load_sft_model

logger = logging.getLogger(__name__)

PAIR_COLUMNS = ["prompt", "chosen", "rejected"]


@dataclass
class DPOModelArguments:
    model_name_or_path: str = field(
        default="outputs/sft-tiny",
        metadata={
            "help": "The SFT model to align: a full model folder, a LoRA adapter folder (merged first), or a Hub id."
        },
    )


ARGUMENTS = (DPOModelArguments, PreferenceDataArguments, AdapterArguments, RunArguments, DPOConfig)
HEADLINE = ("eval_preference_accuracy_before", "eval_preference_accuracy", "eval_preference_accuracy_p_value")


def run(
    opened: OpenedRun,
    model_args: DPOModelArguments,
    data_args: PreferenceDataArguments,
    adapter_args: AdapterArguments,
    run_args: RunArguments,
    config: DPOConfig,
) -> JobResult:
    """Direct preference optimisation of an SFT model on chosen/rejected pairs. Metrics: TRL's on the held-out pairs
    (`eval_rewards/accuracies`: the policy prefers the chosen answer more than the reference does; reward margins),
    and the policy's own preference accuracy on them before and after (`eval_preference_accuracy[_before]`: log p of
    chosen > log p of rejected), with the pairs gained, lost and the McNemar p-value."""
    splits = load_preference_splits(data_args, config.seed)
    if "prompt" not in splits["train"].column_names:
        raise ValueError(
            f"DPO needs a prompt for each pair; {data_args.dataset} has only {splits['train'].column_names}. For "
            "hh-rlhf dialogues pass --explicit_prompt true."
        )
    splits = splits.select_columns(PAIR_COLUMNS)
    tokenizer = load_tokenizer(model_args.model_name_or_path, pad_with_eos=True)
    policy, peft_config = load_sft_model(model_args.model_name_or_path, adapter_args, config.output_dir)
    # The reference: for LoRA the adapter-disabled policy, for full training a frozen copy TRL makes.
    trainer = DPOTrainer(
        model=policy,
        args=config,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    if opened.main_process:
        logger.info(f"policy ({adapter_args.method}): {describe_parameters(trainer.model)}")
    held_out, batch_size = splits["validation"], config.per_device_eval_batch_size
    cut = dict(max_length=config.max_length, truncation_mode=config.truncation_mode)  # the pairs as DPO sees them
    # Before training the policy is the reference (a fresh LoRA adds zero; full training starts from a copy).
    before = preferred_chosen(trainer.model, tokenizer, held_out, batch_size, **cut)

    def held_out_preferences(trained: DPOTrainer) -> dict:
        after = preferred_chosen(trained.model, tokenizer, held_out, batch_size, **cut)
        return preference_accuracy_change(before, after)

    opened.start()
    metrics = train_and_save(trainer, config, plot=run_args.plot, after_training=held_out_preferences)
    return training_result(trainer, metrics, per_step(config), HEADLINE, opened.resumed_step)
