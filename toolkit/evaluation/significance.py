"""Whether one model beats another on the same examples: the exact McNemar test on paired right/wrong outcomes."""

import math
from collections.abc import Sequence


def mcnemar_exact(baseline: Sequence[bool], candidate: Sequence[bool]) -> dict[str, float]:
    """Two-sided exact McNemar test of two models scored on the same examples, in the same order.

    Only the examples the two disagree on count: `gained` (the candidate right, the baseline wrong) and `lost` (the
    reverse). Under the null hypothesis each disagreement goes either way with probability 1/2, so
    p = min(1, 2 * P(Binomial(gained + lost, 1/2) <= min(gained, lost))); p = 1 when they never disagree.
    """
    if len(baseline) != len(candidate):
        raise ValueError(
            f"McNemar's test pairs the same examples: {len(baseline)} baseline outcomes, {len(candidate)} candidate."
        )
    gained = sum(1 for old, new in zip(baseline, candidate) if new and not old)
    lost = sum(1 for old, new in zip(baseline, candidate) if old and not new)
    disagreements = gained + lost
    tail = sum(math.comb(disagreements, k) for k in range(min(gained, lost) + 1)) / 2**disagreements
    return {"gained": gained, "lost": lost, "p_value": min(1.0, 2 * tail)}


__all__ = ["mcnemar_exact"]
