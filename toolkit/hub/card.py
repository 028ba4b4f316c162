"""The model card `toolkit push` writes (`huggingface_hub.ModelCard`), from what the run folder records.

The facts come from the run's files, read through `toolkit.runs`: its record (`run.json`: job, method, base model,
data), `trainer_state.json` and `adapter_config.json` (hyperparameters), `metrics.json` (the run's summary: what it
trained on, its headline figures, every metric), a `toolkit eval` `results.json` (model-index), and the training
curves image. What each job is called comes from the job registry (`toolkit.jobs`).
"""

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .._compat import HFValidationError, validate_repo_id
from ..data import describe_source
from ..evaluation import TASKS
from ..jobs import JOBS
from ..loading import is_peft_adapter
from ..runs import (
    METRICS_FILE,
    RESULTS_JSON,
    SUMMARY_HEAD,
    TRAINER_STATE_FILE,
    RunRecord,
    model_dir,
    read_json,
    run_of_model,
)

if TYPE_CHECKING:
    from .upload import PushArguments

LIBRARY_TAG = "finetune-toolkit"
DEFAULT_BRANCH = "main"
PEFT_METHODS = {"LORA": "lora", "PROMPT_TUNING": "prompt_tuning"}
UNRECORDED = "unrecorded"
# What a folder's kind (`RunRecord.kind`) means on the card: a job's own description, or a training method's.
METHOD_DESCRIPTIONS = {
    "full": "full fine-tuning",
    "lora": "LoRA fine-tuning (an adapter)",
    "prompt_tuning": "soft prompt tuning (an adapter)",
    UNRECORDED: "a method the folder does not record (pass --method to name it)",
}


def card_kinds() -> list[str]:
    """The kinds a card can name: the training methods and every job whose folders are not known by their method."""
    return [*METHOD_DESCRIPTIONS, *(name for name, job in JOBS.items() if not job.named_by_method)]


def describe_method(kind: str) -> str:
    return JOBS[kind].description if kind in JOBS else METHOD_DESCRIPTIONS.get(kind, kind)


MODEL_SHAPE_KEYS = (
    "model_type",
    "num_hidden_layers",
    "n_layer",
    "num_attention_heads",
    "n_head",
    "hidden_size",
    "n_embd",
    "vocab_size",
    "max_position_embeddings",
    "n_positions",
)
TRAINER_STATE_KEYS = ("global_step", "max_steps", "num_train_epochs", "train_batch_size", "eval_steps", "save_steps")
ADAPTER_KEYS = (
    "peft_type",
    "r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "modules_to_save",
    "num_virtual_tokens",
    "prompt_tuning_init",
)
DEFAULT_INTENDED_USE = (
    "Research and teaching: a small model trained with finetune-toolkit to show {method} end to end, and a "
    "baseline to compare other runs against."
)


def is_local_path(name: str) -> bool:
    return Path(name).expanduser().exists() or Path(name).is_absolute() or name.startswith((".", "~"))


def is_hub_id(name: str) -> bool:
    if is_local_path(name):
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def public_name(source: str) -> str:
    """How a model or data source appears on a public card: a Hub id as is, a local path by its name only."""
    return Path(source).name if is_local_path(source) else source


@dataclass(frozen=True)
class RunFolder:
    """Where a run's files are: the model (config.json or adapter_config.json), the run's own files (metrics,
    curves, record), and what the run recorded about itself (None for a folder no run recorded itself in)."""

    model_dir: Path
    run_dir: Path
    record: RunRecord | None

    @property
    def is_adapter(self) -> bool:
        return is_peft_adapter(self.model_dir)


def is_model_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file() or is_peft_adapter(folder)


def locate_run(path: str | Path) -> RunFolder:
    """The run of a folder a recipe wrote (its --output_dir), or of the model folder inside it (a PPO run's
    policy/): where the model is comes from the run's record."""
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"{path} does not exist: pass the folder a recipe wrote (its --output_dir).")
    if not folder.is_dir():
        raise ValueError(f"{path} is a file: pass the folder that holds config.json or adapter_config.json.")
    run_dir, record = run_of_model(folder)
    model = model_dir(run_dir, record) if run_dir == folder else folder
    if is_model_folder(model):
        return RunFolder(model, run_dir, record)
    raise ValueError(
        f"{path} is not a model or adapter folder: it holds neither config.json nor adapter_config.json. Pass the "
        "folder save_pretrained wrote (a recipe's --output_dir, or the model folder inside it)."
    )


def detect_method(run: RunFolder) -> str:
    """What the run recorded (pretrain, full, lora, prompt_tuning, reward, ppo); for a folder no run recorded
    itself in, what PEFT and transformers recorded (an adapter's PEFT type, a sequence-classification head), else
    "unrecorded"."""
    if run.record is not None:
        return run.record.kind
    config = read_json(run.model_dir / "config.json")
    adapter = read_json(run.model_dir / "adapter_config.json")
    classifier = any(name.endswith("ForSequenceClassification") for name in config.get("architectures") or [])
    if classifier or adapter.get("task_type") == "SEQ_CLS":
        return "reward"
    if adapter:
        peft_type = str(adapter.get("peft_type", "adapter"))
        return PEFT_METHODS.get(peft_type, peft_type.lower())
    return UNRECORDED


def named_base_model(run: RunFolder, base_model: str | None) -> str | None:
    """The base model as given, as the adapter names it (what it loads on), or as the run recorded it."""
    adapter_base = read_json(run.model_dir / "adapter_config.json").get("base_model_name_or_path")
    return base_model or adapter_base or (run.record.base_model if run.record else None)


def card_base_model(named_base: str | None) -> str | None:
    """The base model for the card's metadata: a Hub id, or None (trained from scratch, or a local base)."""
    if named_base and not is_hub_id(named_base):
        warnings.warn(
            f"The base model {named_base!r} is a local folder, so the card cannot link it and an adapter on the Hub "
            "cannot load it. Push the base model too and pass --base_model <its repo id>.",
            stacklevel=2,
        )
        return None
    return named_base


def hyperparameters(run: RunFolder) -> dict:
    """What the run's JSON files say about how it was trained (trainer_state.json, adapter_config.json)."""
    state = read_json(run.run_dir / TRAINER_STATE_FILE)
    values = {key: state[key] for key in TRAINER_STATE_KEYS if state.get(key) is not None}
    learning_rates = [row["learning_rate"] for row in state.get("log_history", []) if "learning_rate" in row]
    if learning_rates:
        values["peak_learning_rate"] = max(learning_rates)
    adapter = read_json(run.model_dir / "adapter_config.json")
    values.update({key: adapter[key] for key in ADAPTER_KEYS if adapter.get(key) not in (None, [], {})})
    return values


def flatten_numbers(values: dict, prefix: str = "") -> dict:
    """Numbers of a metrics.json's own metrics, nested dicts (PPO's first/last step) as `outer/inner` keys."""
    numbers = {}
    for key, value in values.items():
        if isinstance(value, dict):
            numbers.update(flatten_numbers(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            numbers[f"{prefix}{key}"] = value
    return numbers


def results_file(run: RunFolder, results_path: str | None) -> Path | None:
    if results_path is not None:
        if not Path(results_path).is_file():
            raise FileNotFoundError(f"--results_path {results_path} does not exist (write it with `toolkit eval`).")
        return Path(results_path)
    default = run.run_dir / RESULTS_JSON
    return default if default.is_file() else None


def training_facts(summary: dict) -> str:
    """What the run trained on, how fast, how long and in how much memory, from its summary's head."""
    facts = []
    if summary.get("units") is not None:
        rate = summary.get("units_per_second")
        facts.append(f"{summary['units']:,.0f} {summary.get('unit')}" + (f" ({rate:,.1f} a second)" if rate else ""))
    if summary.get("seconds") is not None:
        facts.append(f"{summary['seconds']:,.0f} s wall time")
    if summary.get("peak_memory_mib") is not None:
        facts.append(f"peak memory {summary['peak_memory_mib']:,.0f} MiB")
    return f"Trained on {'; '.join(facts)}.\n\n" if facts else ""


def model_path_of(row: dict) -> str:
    return str(row.get("model_path", row.get("model")))


def select_results(path: Path, run: RunFolder, results_model: str | None) -> list[dict]:
    """The rows of a `toolkit eval` results.json that are about the model being pushed."""
    rows = json.loads(path.read_text()).get("results")
    if not isinstance(rows, list):
        raise ValueError(f"{path} has no 'results' list; pass a results.json written by `toolkit eval`.")
    names = sorted({str(row.get("model")) for row in rows})
    if results_model is not None:
        chosen = [row for row in rows if results_model in (row.get("model"), model_path_of(row))]
        if not chosen:
            raise ValueError(f"{path} has no results for {results_model!r}; it holds {', '.join(names)}.")
        return chosen
    ours = {run.model_dir.resolve(), run.run_dir.resolve()}
    chosen = [row for row in rows if Path(model_path_of(row)).resolve() in ours]
    if chosen or len({model_path_of(row) for row in rows}) <= 1:  # a file about one model is about this one
        return chosen or rows
    raise ValueError(
        f"{path} holds results for several models ({', '.join(names)}), none saved in {run.model_dir}: pass "
        "--results_model with the name of the one to report."
    )


def eval_results(rows: list[dict]) -> list[EvalResult]:
    """One model-index entry per headline metric (all float metrics for a task `toolkit eval` does not list).

    The model-index groups results by task type and dataset, and one task name stands for the whole group, so
    tasks scored on the same data would be mislabelled: the task goes into the metric's name instead."""
    entries = []
    for row in rows:
        task, metrics = row["task"], row.get("metrics", {})
        headline = row.get("headline") or (TASKS[task].headline if task in TASKS else ())
        names = [name for name, _ in headline]
        names = names or [name for name, value in metrics.items() if isinstance(value, float)]
        data = public_name(str(row.get("data", task)))
        for name in names:
            value = metrics.get(name)
            if isinstance(value, int | float) and math.isfinite(value):
                entries.append(
                    EvalResult(
                        task_type="text-generation",
                        dataset_type=data,
                        dataset_name=data,
                        metric_type=name,
                        metric_name=name if name == task else f"{task} {name}",
                        metric_value=value,
                    )
                )
    return entries


def format_card_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(sorted(str(item) for item in value))
    return str(value)


def table(rows: dict, header: tuple[str, str]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    return "\n".join(lines + [f"| {key} | {format_card_value(value)} |" for key, value in rows.items()])


def usage_snippet(repo_id: str, revision: str, method: str, run: RunFolder) -> str:
    pinned = "" if revision == DEFAULT_BRANCH else f', revision="{revision}"'
    if run.is_adapter:
        return (
            "```python\n"
            "from peft import AutoPeftModelForCausalLM\n"
            "from transformers import AutoTokenizer\n\n"
            "# Loads the base model, then this adapter; trust_remote_code runs a toolkit GPT base's shipped code.\n"
            f'model = AutoPeftModelForCausalLM.from_pretrained("{repo_id}"{pinned}, trust_remote_code=True)\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}"{pinned})\n'
            "```"
        )
    auto_class = "AutoModelForSequenceClassification" if method == "reward" else "AutoModelForCausalLM"
    remote = "auto_map" in read_json(run.model_dir / "config.json")
    # AutoTokenizer reads config.json too, so it needs the flag as well to load without a prompt.
    trust = ", trust_remote_code=True" if remote else ""
    return (
        "```python\n"
        f"from transformers import {auto_class}, AutoTokenizer\n\n"
        + ("# The model's code ships with its weights: no toolkit install needed.\n" if remote else "")
        + f'model = {auto_class}.from_pretrained("{repo_id}"{pinned}{trust})\n'
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}"{pinned}{trust})\n'
        "```"
    )


def default_limitations(method: str, datasets: list[str]) -> str:
    data = ", ".join(map(describe_source, datasets)) if datasets else "its training run's data"
    lines = [
        f"- Trained on {data} only: expect poor output on anything else.",
        "- Small language models make arithmetic and factual errors: check every answer.",
        "- Not evaluated for safety, bias or toxicity, and not tuned to refuse harmful requests; do not use it where "
        "mistakes matter.",
    ]
    if method == "prompt_tuning":
        lines.append(
            "- PEFT 0.21's generation with prompt tuning emits wrong tokens under transformers 5.x; generate with "
            "`toolkit.generation.generate`."
        )
    return "\n".join(lines)


def build_model_card(args: "PushArguments", run: RunFolder, method: str, curves_file: str | None) -> ModelCard:
    """The card: metadata (base model, datasets, tags, model-index) and a body a reader can act on."""
    named_base = named_base_model(run, args.base_model)
    base_model = card_base_model(named_base)
    datasets = [public_name(name) for name in args.datasets or (run.record.datasets if run.record else [])]
    results_path = results_file(run, args.results_path)
    rows = select_results(results_path, run, args.results_model) if results_path else []
    name = args.repo_id.split("/")[1]
    adapter = read_json(run.model_dir / "adapter_config.json")
    tags = [LIBRARY_TAG, method] + ([PEFT_METHODS.get(adapter.get("peft_type"), "peft")] if adapter else [])
    data = ModelCardData(
        model_name=name,
        base_model=base_model,
        datasets=datasets or None,
        license=args.license,
        library_name="peft" if run.is_adapter else "transformers",
        pipeline_tag="text-classification" if method == "reward" else "text-generation",
        tags=tags,
        eval_results=eval_results(rows) or None,
    )

    if base_model:
        base_text = f"[{base_model}](https://huggingface.co/{base_model})"
    elif named_base:
        base_text = f"a local model (`{public_name(named_base)}`)"
    else:
        base_text = "none (trained from scratch)" if method == "pretrain" else "not recorded"
    description = describe_method(method)
    config = read_json(run.model_dir / "config.json")
    shape = {key: config[key] for key in MODEL_SHAPE_KEYS if key in config}
    sections = [
        f"# {name}",
        f"Trained with finetune-toolkit by {description}.",
        f"- **Method:** `{method}`\n- **Base model:** {base_text}\n"
        f"- **Training data:** {', '.join(map(describe_source, datasets)) if datasets else 'not recorded'}",
        "## How to use",
        usage_snippet(args.repo_id, args.revision, method, run),
    ]
    if shape:
        sections += ["## Model", table(shape, ("setting", "value"))]
    summary = read_json(run.run_dir / METRICS_FILE)
    training, headline = hyperparameters(run), summary.get("headline") or {}
    metrics = flatten_numbers({key: value for key, value in summary.items() if key not in SUMMARY_HEAD})
    if training or metrics or headline or curves_file:
        sections.append("## Training")
    if training:
        sections += ["### Hyperparameters", table(training, ("setting", "value"))]
    if headline or summary.get("units"):
        sections += ["### Results", training_facts(summary) + table(headline, ("metric", "value"))]
    if metrics:
        sections += [f"### Every metric at the end of training ({METRICS_FILE})", table(metrics, ("metric", "value"))]
    if curves_file:
        sections.append(f"![Training curves]({curves_file})")
    if rows:
        lines = ["| data | metric | value |", "| --- | --- | --- |"]
        lines += [
            f"| {entry.dataset_name} | {entry.metric_name} | {format_card_value(entry.metric_value)} |"
            for entry in data.eval_results or []
        ]
        sections += ["## Evaluation", "\n".join(lines)]
        protocols = [f"- {row['task']}: {row['protocol']}" for row in rows if row.get("protocol")]
        if protocols:
            sections.append("Protocols:\n\n" + "\n".join(protocols))
    sections += [
        "## Intended use",
        args.intended_use or DEFAULT_INTENDED_USE.format(method=description),
        "## Limitations",
        args.limitations or default_limitations(method, datasets),
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n")
