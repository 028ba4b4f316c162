r"""DPO on preference pairs (TRL's DPOTrainer), from an SFT model, full or LoRA; no reward model.

    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/dpo.py --config recipes/configs/dpo/tiny_cpu.yaml

parse -> pairs (hh-rlhf files, Hub, or the arithmetic task's corrupted and policy-sampled pairs) -> policy (SFT
model, LoRA on top; the reference is the adapter-disabled base or a frozen copy) -> DPOTrainer -> train -> held-out
preference accuracy -> save (model, curves, metrics.json, run.json) -> push.
"""

from dataclasses import dataclass, field

from transformers import set_seed
from trl import DPOConfig, DPOTrainer, TrlParser

from ..adapters import describe_parameters
from ..loading import load_tokenizer
from ..parsing import argument_parser
from ..rlhf.preferences import PreferenceDataArguments, load_preference_splits
from ..runs import prepare_output_dir
from ..training import AdapterArguments, RunArguments, train_and_save
from .common import exit_on_stop, load_sft_model, push_finished_run, recorded_run

PAIR_COLUMNS = ["prompt", "chosen", "rejected"]


@dataclass
class DPOModelArguments:
    model_name_or_path: str = field(
        default="outputs/sft-tiny",
        metadata={
            "help": "The SFT model to align: a full model folder, a LoRA adapter folder (merged first), or a Hub id."
        },
    )


def build_parser() -> TrlParser:
    return argument_parser(
        (DPOModelArguments, PreferenceDataArguments, AdapterArguments, RunArguments, DPOConfig), "dpo"
    )


def run(
    model_args: DPOModelArguments,
    data_args: PreferenceDataArguments,
    adapter_args: AdapterArguments,
    run_args: RunArguments,
    config: DPOConfig,
) -> dict:
    """Direct preference optimisation of an SFT model on chosen/rejected pairs; metrics add the held-out pairs'
    preference accuracy (`eval_rewards/accuracies`: the policy prefers the chosen answer more than the reference does)
    and reward margin."""
    main_process = config.process_index == 0
    config.resume_from_checkpoint = prepare_output_dir(
        config.output_dir,
        run_args.overwrite_output_dir,
        config.resume_from_checkpoint,
        max_steps=config.max_steps,
        main_process=main_process,
    )
    set_seed(config.seed)
    splits = load_preference_splits(data_args, config.seed)
    if "prompt" not in splits["train"].column_names:
        raise ValueError(
            f"DPO needs a prompt for each pair; {data_args.dataset} has only {splits['train'].column_names}. For "
            "hh-rlhf dialogues pass --explicit_prompt true."
        )
    splits = splits.select_columns(PAIR_COLUMNS)
    tokenizer = load_tokenizer(model_args.model_name_or_path, pad_with_eos=True)
    policy, peft_config = load_sft_model(model_args.model_name_or_path, adapter_args, config.output_dir, "DPO")
    # The reference: for LoRA the adapter-disabled policy, for full training a frozen copy TRL makes.
    trainer = DPOTrainer(
        model=policy,
        args=config,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    if main_process:
        print(f"policy ({adapter_args.method}): {describe_parameters(trainer.model)}")
    record = dict(method=adapter_args.method, base_model=model_args.model_name_or_path, datasets=[data_args.dataset])
    with recorded_run(config.output_dir, "dpo", main_process=main_process, **record):
        metrics = train_and_save(trainer, config, plot=run_args.plot)
    push_finished_run(run_args, config.output_dir, main_process)
    return metrics


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, adapter_args, run_args, config = build_parser().parse_args_and_config(argv)
    with exit_on_stop():
        metrics = run(model_args, data_args, adapter_args, run_args, config)
    if config.process_index == 0:
        print({key: round(value, 4) if isinstance(value, float) else value for key, value in metrics.items()})
    return metrics
