r"""A scalar reward model on preference pairs (TRL's RewardTrainer), from a pretrained causal LM, full or LoRA.

    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/reward.py --config recipes/configs/reward/tiny_cpu.yaml

parse -> pairs (hh-rlhf files, Hub, or the arithmetic task's corrupted and policy-sampled pairs) -> reward model ->
RewardTrainer -> train -> held-out pairwise accuracy -> save (model, curves); `run_job` records and pushes.
"""

import logging
from dataclasses import dataclass, field

from trl import RewardConfig

from ..adapters import apply_lora, describe_parameters
from ..loading import load_tokenizer
from ..rlhf.preferences import PreferenceDataArguments, load_preference_splits
from ..rlhf.reward_model import evaluate_reward_model, make_reward_trainer, reward_model_from_causal_lm
from ..runs import JobResult
from ..training import AdapterArguments, RunArguments, per_step, train_and_save, training_result
from .common import OpenedRun

logger = logging.getLogger(__name__)


@dataclass
class RewardModelArguments:
    model_name_or_path: str = field(
        default="outputs/pretrain-tiny",
        metadata={"help": "The causal LM the reward model starts from (its backbone; the score head is new)."},
    )


ARGUMENTS = (RewardModelArguments, PreferenceDataArguments, AdapterArguments, RunArguments, RewardConfig)
HEADLINE = ("heldout_accuracy", "heldout_accuracy_ci_low", "heldout_accuracy_ci_high", "heldout_margin")


def run(
    opened: OpenedRun,
    model_args: RewardModelArguments,
    data_args: PreferenceDataArguments,
    adapter_args: AdapterArguments,
    run_args: RunArguments,
    config: RewardConfig,
) -> JobResult:
    """A scalar reward model on a causal LM's backbone (full or LoRA + score head), trained with TRL's
    RewardTrainer; metrics add pairwise accuracy and margin on held-out pairs, computed per pair."""
    splits = load_preference_splits(data_args, config.seed)
    tokenizer = load_tokenizer(model_args.model_name_or_path, pad_with_eos=True)
    model = reward_model_from_causal_lm(model_args.model_name_or_path, tokenizer)
    if adapter_args.method == "lora":
        model = apply_lora(
            model,
            **adapter_args.lora_options(),
            task_type="SEQ_CLS",
            modules_to_save=["score"],  # the new score head trains in full next to the adapters
        )
    if opened.main_process:
        logger.info(f"reward model ({adapter_args.method}): {describe_parameters(model)}")
    trainer = make_reward_trainer(model, tokenizer, splits["train"], splits["validation"], args=config)

    def held_out(trainer) -> dict:
        scores = evaluate_reward_model(trainer.model, tokenizer, splits["validation"], max_length=config.max_length)
        return {f"heldout_{name}": value for name, value in scores.items()}

    opened.start()
    metrics = train_and_save(trainer, config, plot=run_args.plot, after_training=held_out)
    return training_result(trainer, metrics, per_step(config), HEADLINE, opened.resumed_step)
