"""Evaluation: corpus perplexity, sacreBLEU BLEU/chrF and GSM8K accuracy, as tasks and as functions.

Every result object prints its numbers together with the protocol that produced them:

- `perplexity_of_texts` / `perplexity_of_dataset` / `perplexity_of_file` -> `PerplexityResult`: token, word and
  byte perplexity and bits per byte, sliding windows, lm-evaluation-harness `loglikelihood_rolling` by default.
- `bleu_score` / `bleu_score_files` / `generate_and_score_bleu` -> `BleuResult`: corpus BLEU and chrF with their
  sacreBLEU signatures.
- `evaluate_gsm8k` / `score_gsm8k` -> `Gsm8kResult`: k-shot exact match under lm-evaluation-harness's strict-match
  and flexible-extract extractors, with per-example records.
- `load_metric(name)`: the same metrics as offline `evaluate` modules ("perplexity", "bleu", "gsm8k").

`TASKS` maps each task name to its class (`toolkit.evaluation.task.Task`: flags, data, per-process records,
scoring); `toolkit eval` (`toolkit.pipelines.eval`) runs them over models and processes. A new task is one file
plus its entry here.
"""

from pathlib import Path
from typing import TYPE_CHECKING

from .bleu import BleuArguments, BleuResult, BleuTask, bleu_score, bleu_score_files, generate_and_score_bleu
from .gsm8k import (
    LEGACY_STOP_STRINGS,
    STOP_STRINGS,
    Gsm8kArguments,
    Gsm8kResult,
    Gsm8kTask,
    evaluate_gsm8k,
    fewshot_prompts,
    gsm8k_exact_match,
    load_gsm8k,
    score_gsm8k,
)
from .perplexity import (
    PerplexityArguments,
    PerplexityResult,
    PerplexityTask,
    perplexity_of_dataset,
    perplexity_of_file,
    perplexity_of_texts,
)

if TYPE_CHECKING:
    import evaluate

TASKS = {task.name: task for task in (PerplexityTask, Gsm8kTask, BleuTask)}
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
    "TASKS",
    "BleuArguments",
    "BleuResult",
    "BleuTask",
    "Gsm8kArguments",
    "Gsm8kResult",
    "Gsm8kTask",
    "PerplexityArguments",
    "PerplexityResult",
    "PerplexityTask",
    "bleu_score",
    "bleu_score_files",
    "evaluate_gsm8k",
    "fewshot_prompts",
    "generate_and_score_bleu",
    "gsm8k_exact_match",
    "load_gsm8k",
    "load_metric",
    "metric_path",
    "perplexity_of_dataset",
    "perplexity_of_file",
    "perplexity_of_texts",
    "score_gsm8k",
]
