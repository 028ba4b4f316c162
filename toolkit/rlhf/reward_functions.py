"""Rewards for online RL: verifiable Python functions that score responses without a reward model, a trained reward
model as such a function, and the checked, named functions TRL's GRPO and RLOO trainers call."""

import importlib
import math
from collections.abc import Callable, Iterable, Sequence
from numbers import Real

from ..loading import load_tokenizer
from ..tasks.arithmetic import INVALID, extract_strict, verify, verify_flexible
from .reward_model import load_reward_model, reward_scores

RewardFunction = Callable[..., list[float]]


def exact_match_reward(
    prompts: Sequence[str], responses: Sequence[str], final_answer: Sequence[str], strict: bool = True, **columns
) -> list[float]:
    """1.0 where the response answers the gold `final_answer`, else 0.0: the arithmetic task's `verify` (the number
    after `#### `, the format the model was fine-tuned on), or with `strict=False` its `verify_flexible` (the last
    number in the response, as lm-evaluation-harness's flexible-extract)."""
    check = verify if strict else verify_flexible
    return [float(check(response, gold)) for response, gold in zip(responses, final_answer, strict=True)]


def format_reward(prompts: Sequence[str], responses: Sequence[str], **columns) -> list[float]:
    """1.0 where the response states a final answer in the task's format (`#### <number>`), right or wrong."""
    return [float(extract_strict(response) != INVALID) for response in responses]


REWARD_FUNCTIONS = {"exact_match": exact_match_reward, "format": format_reward}
REWARD_MODEL = "model"


def reward_model_function(path: str, batch_size: int = 16) -> RewardFunction:
    """A trained reward model (a folder written by reward.py) as a reward function: the score of prompt + response +
    EOS, read where the reward model learned it (TRL's own reward-model path scores the text without the EOS)."""
    model, tokenizer = load_reward_model(path), load_tokenizer(path, pad_with_eos=True)
    eos = tokenizer.eos_token or ""

    def reward_model(prompts: Sequence[str], responses: Sequence[str], **columns) -> list[float]:
        texts = [prompt + response + eos for prompt, response in zip(prompts, responses, strict=True)]
        return reward_scores(model, tokenizer, texts, batch_size).tolist()

    return reward_model


def import_reward_function(path: str) -> RewardFunction:
    """`package.module:function` (or `package.module.function`), importable from the current environment."""
    module_name, _, function_name = path.rpartition(":") if ":" in path else path.rpartition(".")
    if not module_name:
        raise ValueError(
            f"Unknown reward {path!r}: name one of {[*REWARD_FUNCTIONS, REWARD_MODEL]} or a function to import as "
            "'package.module:function'."
        )
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"Cannot import the reward function {path!r}: {error}.") from error
    if not callable(function):
        raise ValueError(f"The reward {path!r} is a {type(function).__name__}, not a function.")
    return function


def checked_reward(function: RewardFunction, name: str) -> RewardFunction:
    """`function` as TRL calls it (prompts=, completions=, dataset columns as keywords), refusing what would
    otherwise train silently on garbage: a count other than one reward per completion, or a reward that is not a
    finite number (None stays allowed: TRL's "this reward does not apply here")."""

    def reward(prompts: Sequence[str], completions: Sequence[str], **columns) -> list[float | None]:
        returned = function(prompts, completions, **columns)
        if isinstance(returned, str | bytes) or not isinstance(returned, Iterable):
            raise ValueError(
                f"The reward function {name!r} returned {returned!r}, not a list: it must return one number per "
                "completion, in order (None for a completion it does not score)."
            )
        values = list(returned)
        if len(values) != len(completions):
            raise ValueError(
                f"The reward function {name!r} returned {len(values)} values for {len(completions)} completions; it "
                "must return one number per completion, in order."
            )
        for index, value in enumerate(values):
            if value is not None and not (isinstance(value, Real) and math.isfinite(value)):
                raise ValueError(
                    f"The reward function {name!r} returned {value!r} for completion {index} "
                    f"({completions[index][:60]!r}); rewards must be finite numbers (None to skip a completion)."
                )
        return values

    reward.__name__ = name  # TRL logs rewards/<name>/mean
    return reward


def reward_functions(names: Sequence[str], reward_model_name_or_path: str | None = None) -> list[RewardFunction]:
    """The checked reward functions for `--reward_funcs`: registered names, 'model' (a trained reward model folder
    given as `reward_model_name_or_path`) or import paths; weigh them with TRL's `reward_weights`."""
    if not names:
        raise ValueError(f"--reward_funcs is empty; name at least one of {[*REWARD_FUNCTIONS, REWARD_MODEL]}.")
    functions = []
    for name in names:
        if name == REWARD_MODEL:
            if reward_model_name_or_path is None:
                raise ValueError(
                    "--reward_funcs model needs --reward_model_name_or_path (a folder written by reward.py)."
                )
            function = reward_model_function(reward_model_name_or_path)
        elif name in REWARD_FUNCTIONS:
            function = REWARD_FUNCTIONS[name]
        else:
            function = import_reward_function(name)
        functions.append(checked_reward(function, name.rpartition(":")[2].rpartition(".")[2]))
    return functions


__all__ = [
    "REWARD_FUNCTIONS",
    "REWARD_MODEL",
    "checked_reward",
    "exact_match_reward",
    "format_reward",
    "import_reward_function",
    "reward_functions",
    "reward_model_function",
]
