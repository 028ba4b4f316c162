"""Evaluation and benchmarks: corpus perplexity, sacreBLEU BLEU/chrF, GSM8K accuracy, and `evaluate` modules.

Every result object prints its numbers together with the protocol that produced them:

- `perplexity_of_texts` / `perplexity_of_dataset` / `perplexity_of_file` -> `PerplexityResult`: token, word and
  byte perplexity and bits per byte, sliding windows, lm-evaluation-harness `loglikelihood_rolling` by default.
- `bleu_score` / `bleu_score_files` / `generate_and_score_bleu` -> `BleuResult`: corpus BLEU and chrF with their
  sacreBLEU signatures.
- `evaluate_gsm8k` / `score_gsm8k` -> `Gsm8kResult`: k-shot exact match under lm-evaluation-harness's strict-match
  and flexible-extract extractors, with per-example records.
- `load_metric(name)`: the same metrics as offline `evaluate` modules ("perplexity", "bleu", "gsm8k").
- `evaluate_models(EvalArguments(...))`: several models x tasks, sharded over processes, with a comparison table and
  chart (`toolkit eval`, `recipes/eval.py`).
"""

from pathlib import Path
from typing import TYPE_CHECKING

from .bleu import BleuResult, bleu_score, bleu_score_files, generate_and_score_bleu
from .generation import generate_greedy, load_model_and_tokenizer
from .gsm8k import (
    LEGACY_STOP_STRINGS,
    STOP_STRINGS,
    Gsm8kResult,
    evaluate_gsm8k,
    fewshot_prompts,
    gsm8k_exact_match,
    load_gsm8k,
    score_gsm8k,
)
from .perplexity import PerplexityResult, perplexity_of_dataset, perplexity_of_file, perplexity_of_texts
from .runner import EvalArguments, evaluate_models

if TYPE_CHECKING:
    import evaluate

METRICS_DIR = Path(__file__).parent / "metrics"
METRIC_NAMES = ("perplexity", "bleu", "gsm8k")


def metric_path(name: str) -> Path:
    """The folder of the `evaluate` module `name` shipped with the toolkit."""
    if name not in METRIC_NAMES:
        raise ValueError(f"Unknown metric {name!r}. The toolkit ships: {', '.join(METRIC_NAMES)}.")
    return METRICS_DIR / name


def load_metric(name: str, **kwargs) -> "evaluate.EvaluationModule":
    """`evaluate.load` on the toolkit's own module `name` ("perplexity", "bleu" or "gsm8k"): local, offline.

    Keyword arguments go to `evaluate.load` (e.g. `cache_dir`, `keep_in_memory`).
    """
    import evaluate  # imported here: `evaluate` is slow to import and only this helper needs it

    return evaluate.load(str(metric_path(name)), **kwargs)


__all__ = [
    "LEGACY_STOP_STRINGS",
    "STOP_STRINGS",
    "BleuResult",
    "EvalArguments",
    "Gsm8kResult",
    "PerplexityResult",
    "bleu_score",
    "bleu_score_files",
    "evaluate_gsm8k",
    "evaluate_models",
    "fewshot_prompts",
    "generate_and_score_bleu",
    "generate_greedy",
    "gsm8k_exact_match",
    "load_gsm8k",
    "load_metric",
    "load_model_and_tokenizer",
    "metric_path",
    "perplexity_of_dataset",
    "perplexity_of_file",
    "perplexity_of_texts",
    "score_gsm8k",
]
