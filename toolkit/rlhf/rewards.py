"""Verifiable rewards: Python functions that score responses without a reward model."""

from collections.abc import Sequence

from ..evaluation.gsm8k import extract_flexible, extract_strict, normalize_answer


def exact_match_reward(
    prompts: Sequence[str], responses: Sequence[str], final_answer: Sequence[str], strict: bool = True, **columns
) -> list[float]:
    """1.0 where the response's answer equals the gold `final_answer`, else 0.0 (GSM8K-style scoring).

    `strict` reads the number after `#### ` (the format the model was fine-tuned on); otherwise the last number in
    the response counts, as lm-evaluation-harness's flexible-extract does."""
    extract = extract_strict if strict else extract_flexible
    return [
        float(normalize_answer(extract(response)) == normalize_answer(gold))
        for response, gold in zip(responses, final_answer, strict=True)
    ]


REWARD_FUNCTIONS = {"exact_match": exact_match_reward}
