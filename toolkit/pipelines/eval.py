r"""Evaluation: several models x several tasks (`toolkit.evaluation.TASKS`), sharded over processes, one report.

    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/eval.py --config recipes/configs/eval/tiny_cpu.yaml

parse -> load every task's data (bad data fails before any model loads) -> per model: load, then per task: this
process's records, gathered, scored once -> results.json, results.md, results.png, <model>/<task>.jsonl, run.json
(--compare_runs: comparison.md and comparison.png, the models' scores beside their alignment runs' costs and KL).

Models: anything `toolkit.loading.load_causal_lm` loads (a base model, a full fine-tune, a LoRA or prompt-tuning
adapter folder, a Hub id), or a run folder, whose record says where its model is (a PPO run: its policy/).
Under `accelerate launch --num_processes N` each process takes whole batches of every task (see
`toolkit.evaluation.task`), so the numbers do not depend on N.
"""

import gc
import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import PartialState
from transformers import PreTrainedTokenizerBase

from .. import stopping
from .._compat import gather_object
from ..evaluation import TASKS, BleuArguments, Gsm8kArguments, PerplexityArguments
from ..evaluation.report import TaskScore, plot_results, results_table
from ..evaluation.significance import mcnemar_exact
from ..evaluation.task import ArithmeticSourceArguments, Shard, Task
from ..loading import is_peft_adapter, load_causal_lm, load_tokenizer
from ..runs import (
    COMPARISON_CHART,
    COMPARISON_TABLE,
    RESULTS_CHART,
    RESULTS_JSON,
    RESULTS_TABLE,
    JobResult,
    model_dir,
    read_run,
)
from .common import OpenedRun

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class CommonEvalArguments:
    models: list[str] = field(
        metadata={
            "help": "Model folders or Hub ids: base models, full fine-tunes, PEFT adapter folders, run folders (a "
            "PPO run's policy is read from its record)."
        }
    )
    model_names: list[str] | None = field(
        default=None, metadata={"help": "Labels for the models, in the same order. None: the folder names."}
    )
    tasks: list[str] = field(
        default_factory=lambda: ["perplexity"], metadata={"help": f"Tasks to run, among {', '.join(TASKS)}."}
    )
    baseline: str | None = field(
        default=None,
        metadata={
            "help": "A model's name (label): every other model is compared with it on the same examples (exact "
            "McNemar test of the right/wrong outcomes: gained, lost, p-value) where a task has such outcomes (gsm8k)."
        },
    )
    compare_runs: bool = field(
        default=False,
        metadata={
            "help": "With --baseline: also write comparison.md and comparison.png, each model's headline score and "
            "change beside what its alignment run (PPO, DPO, GRPO, RLOO) cost: episodes (DPO: pairs) and their rate, "
            "peak memory, wall time, the sampled reward curve, and with --kl_prompts its KL to the baseline."
        },
    )
    kl_prompts: int = field(
        default=0,
        metadata={
            "help": "With --compare_runs: estimate every model's KL to the baseline from one answer sampled at "
            "temperature 1 for each of the first N prompts of the gsm8k (else bleu) task. 0: no KL column."
        },
    )
    limit: int | None = field(
        default=None,
        metadata={"help": "Examples per task for quick runs: documents (perplexity), questions, prompts. None: all."},
    )
    output_dir: str = field(default="outputs/eval", metadata={"help": "Where results and per-example records go."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow writing into an output_dir that already holds other results."}
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "Tokenizer folder or Hub id for every model. None: each model's own."}
    )
    dtype: str = field(default="auto", metadata={"help": "Weights dtype: 'auto' (as saved), 'float32', 'bfloat16'."})
    batch_size: int = field(default=8, metadata={"help": "Perplexity windows per forward pass; prompts per generate."})
    use_cpu: bool = field(default=False, metadata={"help": "Run on CPU even when GPUs are available."})


# Each task's flags come from its own file; the order of the bases puts the common flags first in --help.
@dataclass(kw_only=True)
class EvalArguments(
    BleuArguments, Gsm8kArguments, PerplexityArguments, ArithmeticSourceArguments, CommonEvalArguments
):
    """Every flag of `toolkit eval`: the common ones, then the arithmetic source's, then each task's. Checked when
    parsed, before any folder is touched."""

    def __post_init__(self):
        super().__post_init__()
        check_arguments(self)
        labels = model_labels(self)
        if self.baseline is not None and self.baseline not in labels:
            raise ValueError(f"--baseline {self.baseline!r} is none of the models' names: {labels}.")


ARGUMENTS = (EvalArguments,)


def looks_local(path: str) -> bool:
    """A path rather than a Hub id (`name` or `org/name`): asking the Hub about a mistyped folder takes a minute."""
    candidate = Path(path).expanduser()
    return (
        candidate.is_absolute()
        or path.startswith((".", "~"))
        or path.count("/") > 1
        or (candidate.parent != Path(".") and candidate.parent.is_dir())
    )


def model_labels(args: EvalArguments) -> list[str]:
    if args.model_names is not None:
        if len(args.model_names) != len(args.models):
            raise ValueError(
                f"{len(args.model_names)} model_names for {len(args.models)} models: one name per model, in order."
            )
        labels = args.model_names
    else:
        labels = [Path(path).name or path for path in args.models]
        if len(set(labels)) < len(labels):  # e.g. two checkpoint-500 folders
            labels = list(args.models)
    if len(set(labels)) < len(labels):
        raise ValueError(f"Model names must be distinct, got {labels}.")
    for label in labels:
        if file_name(label) in ("", ".", ".."):
            raise ValueError(f"Model name {label!r} cannot name a folder of per-example records; pick another.")
    return labels


def resolve_model(path: str) -> str:
    """The model folder to load: a run folder's model (its record says where; a PPO run's policy/), else `path`."""
    if not Path(path).exists() and looks_local(path):
        raise ValueError(
            f"Model path {path!r} does not exist. Pass a folder written by save_pretrained (a full model, a PEFT "
            "adapter folder, a run folder) or a Hub model id."
        )
    folder = Path(path)
    record = read_run(folder) if folder.is_dir() else None
    if record is not None and record.model_path is not None:
        folder = model_dir(folder, record)
    if folder.is_dir() and not any((folder / name).is_file() for name in ("config.json", "adapter_config.json")):
        inside = sorted(
            str(config.parent)
            for pattern in ("*/config.json", "*/adapter_config.json")
            for config in folder.glob(pattern)
        )
        hint = f" Model folders inside it: {', '.join(inside)}." if inside else ""
        raise ValueError(
            f"{path!r} is not a model folder: it holds neither config.json nor adapter_config.json.{hint}"
        )
    return str(folder) if folder != Path(path) else path


def tokenizer_for(path: str, tokenizer: str | None) -> PreTrainedTokenizerBase:
    """The model's tokenizer, checked before any model runs, with an error that says how to fix a missing one."""
    try:
        return load_tokenizer(tokenizer or path)
    except ValueError as error:
        raise ValueError(
            f"{error} Here: pass --tokenizer <folder or Hub id> to use one tokenizer for every model."
        ) from error


def check_arguments(args: EvalArguments) -> None:
    if not args.models:
        raise ValueError("No model to evaluate: pass --models <folder or Hub id> [...].")
    unknown = [task for task in args.tasks if task not in TASKS]
    if unknown or not args.tasks:
        raise ValueError(
            f"Unknown task(s) {unknown}: choose among {', '.join(TASKS)} (e.g. --tasks perplexity gsm8k)."
        )
    if len(set(args.tasks)) < len(args.tasks):
        raise ValueError(f"Each task once, please: got {args.tasks}.")
    if args.compare_runs and args.baseline is None:
        raise ValueError("--compare_runs compares every model with one of them: name it with --baseline <name>.")
    if args.kl_prompts and not (args.compare_runs and {"gsm8k", "bleu"} & set(args.tasks)):
        raise ValueError(
            "--kl_prompts samples answers to the prompts of a generation task for --compare_runs: add --compare_runs "
            "true and --tasks gsm8k (or bleu), or set --kl_prompts 0."
        )
    for name in ("batch_size", "limit", "gsm8k_max_new_tokens", "bleu_max_new_tokens"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ValueError(f"--{name} must be positive, got {value}.")


def file_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "model"


def write_records(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as file:
        for record in records:
            file.write(json.dumps(record, ensure_ascii=False) + "\n")


def compare_with_baseline(scores: list[TaskScore], outcomes: dict[tuple[str, str, str], list], baseline: str) -> None:
    """Add `<metric>_gained`, `<metric>_lost` and `<metric>_p_value` (exact McNemar against `baseline` on the same
    examples) to the metrics of every other model, for each metric with per-example outcomes."""
    for score in scores:
        for metric in TASKS[score.task].paired_outcomes:
            if score.model != baseline:
                test = mcnemar_exact(outcomes[baseline, score.task, metric], outcomes[score.model, score.task, metric])
                score.metrics.update({f"{metric}_{key}": value for key, value in test.items()})


def kl_to_baseline(
    args: EvalArguments, labels: list[str], paths: list[str], tokenizers: list, tasks: list[Task], task_data: list
) -> dict[str, float]:
    """Each model's KL to the baseline (`toolkit.evaluation.comparison.sampled_kl`) on the first `kl_prompts`
    prompts of the gsm8k (else bleu) task, with the baseline's tokenizer; the baseline's own is 0."""
    from ..evaluation.comparison import sampled_kl

    generation_task = next(name for name in ("gsm8k", "bleu") if name in args.tasks)
    prompts = task_data[[task.name for task in tasks].index(generation_task)].items[: args.kl_prompts]
    max_new_tokens = getattr(args, f"{generation_task}_max_new_tokens")
    device = str(PartialState().device)
    baseline_index = labels.index(args.baseline)
    reference = load_causal_lm(paths[baseline_index], dtype=args.dtype, device=device)
    kls = {args.baseline: 0.0}
    for label, path in zip(labels, paths):
        if label != args.baseline:
            model = load_causal_lm(path, dtype=args.dtype, device=device)
            estimates = sampled_kl(
                model,
                reference,
                tokenizers[baseline_index],
                prompts,
                max_new_tokens=max_new_tokens,
                batch_size=args.batch_size,
            )
            kls[label] = sum(estimates) / len(estimates)
            del model
    return kls


def write_comparison(
    args: EvalArguments, scores: list[TaskScore], labels: list[str], paths: list[str], kls: dict[str, float]
) -> str:
    """comparison.md and comparison.png in output_dir, on the first metric with paired outcomes (gsm8k: strict
    match); returns the table."""
    from ..evaluation.comparison import comparison_table, plot_comparison, training_summary

    task, metric = next((score.task, m) for score in scores for m in TASKS[score.task].paired_outcomes)
    by_model = {score.model: score for score in scores if score.task == task}
    rows = []
    for label, path in zip(labels, paths):
        metrics = by_model[label].metrics
        rows.append(
            {
                "name": label,
                "score": metrics[metric],
                "gained": metrics.get(f"{metric}_gained"),
                "lost": metrics.get(f"{metric}_lost"),
                "p_value": metrics.get(f"{metric}_p_value"),
                "kl": kls.get(label),
                "summary": training_summary(path) if Path(path).is_dir() else None,
            }
        )
    title = f"{task} {metric}"
    output_dir = Path(args.output_dir)
    table = comparison_table(rows, title, args.baseline)
    (output_dir / COMPARISON_TABLE).write_text(table + "\n")
    plot_comparison(rows, title, args.baseline, output_dir / COMPARISON_CHART)
    return table


def run(opened: OpenedRun, args: EvalArguments) -> JobResult:
    """Every model on every task; writes the report in `output_dir` (main process). The summary's metrics hold the
    report's rows (`results`), its headline every model's headline metrics per task."""
    labels = model_labels(args)
    state = PartialState()
    output_dir = Path(args.output_dir)
    tasks: list[Task] = [TASKS[name](args) for name in args.tasks]
    task_data = [task.load() for task in tasks]  # bad data fails before any model is loaded
    paths = [resolve_model(path) for path in args.models]
    tokenizers = [tokenizer_for(path, args.tokenizer) for path in paths]
    shard = Shard(state.process_index, state.num_processes, args.batch_size, state.is_local_main_process)

    scores, outcomes = [], {}
    opened.start(datasets=[data.source for data in task_data])
    with stopping.stop_on_signals():
        for label, path, tokenizer in zip(labels, paths, tokenizers):
            model = load_causal_lm(path, dtype=args.dtype, device=str(state.device))
            for task, data in zip(tasks, task_data):
                if opened.main_process:
                    logger.info(
                        f"{label}: {task.name} on {data.source} ({data.num_examples} examples, "
                        f"{state.num_processes} process(es))"
                    )
                scored = task.score(model, data, gather_object(task.records(model, tokenizer, data, shard)))
                metrics = {key: value for key, value in scored.result.to_dict().items() if key != "protocol"}
                scores.append(
                    TaskScore(
                        label,
                        path,
                        is_peft_adapter(path),
                        task.name,
                        data.source,
                        data.num_examples,
                        metrics,
                        scored.protocol,
                        [list(pair) for pair in task.headline],
                    )
                )
                for metric, field_name in task.paired_outcomes.items():
                    outcomes[label, task.name, metric] = [bool(row[field_name]) for row in scored.records]
                if opened.main_process:
                    write_records(output_dir / file_name(label) / f"{task.name}.jsonl", scored.records)
            del model
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

        if args.baseline is not None:
            compare_with_baseline(scores, outcomes, args.baseline)
        kls = kl_to_baseline(args, labels, paths, tokenizers, tasks, task_data) if args.kl_prompts else {}
        report = {
            "arguments": asdict(args),
            "num_processes": state.num_processes,
            "results": [asdict(score) for score in scores],
        }
        if opened.main_process:
            (output_dir / RESULTS_JSON).write_text(json.dumps(report, indent=2, default=str))
            table = results_table(scores, labels, args.baseline)
            (output_dir / RESULTS_TABLE).write_text(table + "\n")
            plot_results(scores, labels, output_dir / RESULTS_CHART)
            logger.info(table)
            if args.compare_runs:
                logger.info(write_comparison(args, scores, labels, paths, kls))
            logger.info(
                f"Results in {output_dir}: {RESULTS_JSON}, {RESULTS_TABLE}, {RESULTS_CHART}, <model>/<task>.jsonl"
            )
    state.wait_for_everyone()
    headline = {
        f"{score.model}/{score.task}/{metric}": score.metrics[metric]
        for score in scores
        for metric, _ in TASKS[score.task].headline
        if metric in score.metrics
    }
    examples = sum(score.num_examples for score in scores)
    seconds = time.time() - opened.started
    return JobResult(
        metrics=report, units=examples, units_per_second=examples / seconds if seconds > 0 else None, headline=headline
    )
