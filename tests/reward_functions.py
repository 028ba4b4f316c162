"""Reward functions the GRPO/RLOO tests name as `reward_functions:<name>` (tests/ is on sys.path under pytest), as a
user names their own: called as TRL calls reward functions, prompts, completions and the dataset's columns."""

import math
import os
import signal

from accelerate import PartialState


def digit_share(prompts, completions, **columns):
    """The share of digits in each completion: varies between the tiny models' samples, so the groups' advantages
    are not all zero and the policy moves."""
    return [sum(character.isdigit() for character in text) / max(len(text), 1) for text in completions]


def digit_share_then_sigterm(prompts, completions, trainer_state, **columns):
    """digit_share, and a SIGTERM to this process while step 4 is being generated (the stop a scheduler sends)."""
    if trainer_state.global_step == 3:
        os.kill(os.getpid(), signal.SIGTERM)
    return digit_share(prompts, completions)


def process_index(prompts, completions, **columns):
    """Each completion scored by the rank that generated it: 0 on the main process, 1 on the second."""
    return [float(PartialState().process_index)] * len(completions)


def one_too_few(prompts, completions, **columns):
    return [0.0] * (len(completions) - 1)


def returns_none(prompts, completions, **columns):
    return None


def nan_for_the_last(prompts, completions, **columns):
    return [0.0] * (len(completions) - 1) + [math.nan]


def none_for_every_completion(prompts, completions, **columns):
    """A reward that does not apply to any completion (TRL's `None`): the logged reward and its spread are NaN."""
    return [None] * len(completions)


def near_the_largest_float(prompts, completions, **columns):
    """Finite rewards whose spread overflows to inf."""
    return [1e308 * (index % 2) for index in range(len(completions))]
