"""Verifiable rewards: Python functions that score responses without a reward model."""

from collections.abc import Sequence

from ..tasks.arithmetic import verify, verify_flexible


def exact_match_reward(
    prompts: Sequence[str], responses: Sequence[str], final_answer: Sequence[str], strict: bool = True, **columns
) -> list[float]:
    """1.0 where the response answers the gold `final_answer`, else 0.0: the arithmetic task's `verify` (the number
    after `#### `, the format the model was fine-tuned on), or with `strict=False` its `verify_flexible` (the last
    number in the response, as lm-evaluation-harness's flexible-extract)."""
    check = verify if strict else verify_flexible
    return [float(check(response, gold)) for response, gold in zip(responses, final_answer, strict=True)]


REWARD_FUNCTIONS = {"exact_match": exact_match_reward}
