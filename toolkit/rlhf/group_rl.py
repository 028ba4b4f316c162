"""GRPO and RLOO, TRL's critic-free online RL: the configs our recipes parse (TRL's own, checked for whole prompt
groups up front with a message in the flags users set) and the trainer each config runs."""

from dataclasses import dataclass

import trl


class WholeGroupsCheck:
    """A generation step samples `num_generations` completions of each prompt; the completions of one step
    (per_device_train_batch_size x processes x gradient_accumulation_steps, unless generation_batch_size or
    steps_per_generation say otherwise) must hold whole groups."""

    def __post_init__(self):
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


@dataclass
class GRPOConfig(WholeGroupsCheck, trl.GRPOConfig):
    __doc__ = trl.GRPOConfig.__doc__


@dataclass
class RLOOConfig(WholeGroupsCheck, trl.RLOOConfig):
    __doc__ = trl.RLOOConfig.__doc__


TRAINERS = {GRPOConfig: trl.GRPOTrainer, RLOOConfig: trl.RLOOTrainer}

__all__ = ["GRPOConfig", "RLOOConfig", "TRAINERS"]
