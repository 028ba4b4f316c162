"""`toolkit push` / `recipes/push.py`: upload a model or adapter folder to the Hugging Face Hub with a model card.

The upload is staged once into a folder, and that folder is exactly what `HfApi.upload_folder` sends; with
`--dry_run true` it is written (to `<model_path>/hub-upload` by default) and nothing is uploaded, so what you inspect
is what would be uploaded. Staged: the weights and configs, the tokenizer, our GPT's code files named by `auto_map`
(the Hub copy loads with `trust_remote_code=True` where `toolkit` is not installed), the run's `metrics.json`,
`trainer_state.json` and training curves, and a `README.md` model card (`huggingface_hub.ModelCard`): base model,
datasets, method, hyperparameters read from the run's JSON files, evaluation scores from a `toolkit eval`
results.json as model-index, the curves image, intended use and limitations. Left out: checkpoints and other
subfolders, `training_args.bin` (a pickle, which can hold a Hub token), and anything that is not a model,
tokenizer or run file.

The token comes from `HF_TOKEN` or `hf auth login` (`huggingface_hub.get_token()`). It is handed to `HfApi` only,
which sends it in the Authorization header; it is never printed, logged or written to disk, and a staged file that
contains it stops the upload.
"""

import fnmatch
import json
import math
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from accelerate import PartialState
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, get_token
from huggingface_hub.utils import HFValidationError, validate_repo_id
from transformers import AutoTokenizer
from trl import TrlParser

from . import __version__, models
from .data import SYNTHETIC_NAME
from .evaluation.runner import HEADLINE_METRICS, RESULTS_JSON
from .loading import is_peft_adapter
from .training.trainer import CURVES_FILE, METRICS_FILE

LIBRARY_TAG = "finetune-toolkit"
DEFAULT_BRANCH = "main"
DRY_RUN_FOLDER = "hub-upload"
TRAINER_STATE_FILE = "trainer_state.json"
PPO_CURVES_FILE = "ppo_metrics.png"
PPO_LOG_FILE = "metrics.jsonl"
CARD_FILE = "README.md"
# Top-level files of a model folder that are uploaded. Everything else stays: subfolders (checkpoints, merged/,
# runs/), training_args.bin (a pickle that can hold a Hub token), logs, and any README (the card replaces it).
MODEL_FILE_PATTERNS = (
    "*.safetensors",
    "pytorch_model*.bin",
    "adapter_model.bin",
    "*.json",
    "*.py",
    "*.jinja",
    "*.model",
    "*.tiktoken",
    "merges.txt",
    "vocab.txt",
    CURVES_FILE,
    PPO_CURVES_FILE,
)
# A PPO run keeps its metrics and curves next to policy/, the folder that is uploaded.
PPO_RUN_FILES = (METRICS_FILE, PPO_CURVES_FILE)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "tokenizer.model",
    "chat_template.jinja",
)
# Not searched for the token: weights can be gigabytes, and no code writes text into them.
BINARY_SUFFIXES = (".safetensors", ".bin", ".png", ".model")
PEFT_METHODS = {"LORA": "lora", "PROMPT_TUNING": "prompt_tuning"}
METHOD_DESCRIPTIONS = {
    "pretrain": "pretraining from scratch",
    "full": "full fine-tuning",
    "lora": "LoRA fine-tuning (an adapter)",
    "prompt_tuning": "soft prompt tuning (an adapter)",
    "ppo": "PPO reinforcement learning from a reward",
    "reward": "reward modeling (a scalar score per sequence)",
}
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


@dataclass
class PushArguments:
    model_path: str = field(
        metadata={
            "help": "Folder a recipe wrote (its output_dir): a full model, a PEFT adapter, or a PPO run (its "
            "policy/ is uploaded). `toolkit push <path>` takes it as the first word."
        }
    )
    repo_id: str = field(metadata={"help": "Hub repository, <user or org>/<name>; created if missing."})
    private: bool = field(
        default=False, metadata={"help": "Create the repository as private (an existing one keeps its visibility)."}
    )
    revision: str = field(default=DEFAULT_BRANCH, metadata={"help": "Branch to commit to; created if missing."})
    commit_message: str | None = field(
        default=None, metadata={"help": "Commit message. None: 'Upload <method> model with finetune-toolkit'."}
    )
    tokenizer_path: str | None = field(
        default=None,
        metadata={"help": "Tokenizer folder or Hub id to upload instead of the folder's own (or where it has none)."},
    )
    base_model: str | None = field(
        default=None,
        metadata={
            "help": "Hub id of the model this one was trained from: card metadata, and an adapter's config points "
            "at it. None: the adapter's recorded base, if that is a Hub id."
        },
    )
    datasets: list[str] | None = field(
        default=None,
        metadata={"help": "Training data for the card: Hub dataset ids, or 'arithmetic' (the built-in problems)."},
    )
    method: str | None = field(
        default=None,
        metadata={"help": f"Training method for the card ({', '.join(METHOD_DESCRIPTIONS)}). None: detected."},
    )
    results_path: str | None = field(
        default=None,
        metadata={
            "help": f"A `toolkit eval` {RESULTS_JSON} whose scores go into the card as model-index. None: "
            f"<model_path>/{RESULTS_JSON} if there is one."
        },
    )
    results_model: str | None = field(
        default=None,
        metadata={
            "help": "The model of results_path to report, by name or path. None: the rows whose model path is "
            "model_path (relative paths are read from the current folder), or all rows if the file holds one model."
        },
    )
    license: str | None = field(default=None, metadata={"help": "License id for the card (mit, apache-2.0, ...)."})
    intended_use: str | None = field(
        default=None, metadata={"help": "The card's intended-use paragraph. None: a research/teaching default."}
    )
    limitations: str | None = field(
        default=None, metadata={"help": "The card's limitations paragraph. None: defaults for a small model."}
    )
    dry_run: bool = field(
        default=False, metadata={"help": "Write the folder that would be uploaded to dry_run_dir; upload nothing."}
    )
    dry_run_dir: str | None = field(
        default=None,
        metadata={
            "help": f"Where a dry run writes; a previous dry run's folder is replaced. None: "
            f"<model_path>/{DRY_RUN_FOLDER}."
        },
    )
    endpoint: str | None = field(
        default=None,
        metadata={"help": "Hub URL (a private Hub, a test server). None: HF_ENDPOINT or https://huggingface.co."},
    )


@dataclass(frozen=True)
class RunFolder:
    """Where a run's files are: the model (config.json or adapter_config.json) and the run's metrics and curves,
    the same folder except for PPO, which saves its policy to <output_dir>/policy."""

    model_dir: Path
    run_dir: Path

    @property
    def is_adapter(self) -> bool:
        return is_peft_adapter(self.model_dir)

    @property
    def is_ppo(self) -> bool:
        return self.model_dir != self.run_dir


@dataclass(frozen=True)
class StagedUpload:
    folder: Path
    files: list[str]
    method: str


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    revision: str
    files: list[str]  # paths in the repository, sorted
    dry_run_dir: Path | None  # the staged folder of a dry run; None after an upload (its temporary folder is gone)
    commit_url: str | None  # None for a dry run


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def write_json(path: Path, data: dict) -> None:
    path.unlink(missing_ok=True)  # staged files may be hard links: replace, never write through into the run
    path.write_text(json.dumps(data, indent=2) + "\n")


def is_model_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file() or is_peft_adapter(folder)


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


def describe_data(name: str) -> str:
    return f"{name} (finetune-toolkit's built-in synthetic GSM8K-style problems)" if name == SYNTHETIC_NAME else name


def public_name(source: str) -> str:
    """How a model or data source appears on a public card: a Hub id as is, a local path by its name only."""
    return Path(source).name if is_local_path(source) else source


def check_repo_id(repo_id: str) -> None:
    try:
        validate_repo_id(repo_id)
        valid = repo_id.count("/") == 1
    except HFValidationError:
        valid = False
    if not valid:
        raise ValueError(
            f"--repo_id {repo_id!r} is not a Hub repository id: use <user or org>/<name>, e.g. alice/gpt-tiny "
            "(letters, digits, '-', '_' and '.'; at most 96 characters; no '--' or '..')."
        )


def locate_run(path: str | Path) -> RunFolder:
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"{path} does not exist: pass the folder a recipe wrote (its --output_dir).")
    if not folder.is_dir():
        raise ValueError(f"{path} is a file: pass the folder that holds config.json or adapter_config.json.")
    if is_model_folder(folder):
        in_ppo_run = folder.name == "policy" and (folder.parent / PPO_LOG_FILE).is_file()
        return RunFolder(folder, folder.parent if in_ppo_run else folder)
    if is_model_folder(folder / "policy"):
        return RunFolder(folder / "policy", folder)
    raise ValueError(
        f"{path} is not a model or adapter folder: it holds neither config.json nor adapter_config.json. Pass the "
        "folder save_pretrained wrote (a recipe's --output_dir; for PPO, its output_dir or output_dir/policy)."
    )


def detect_method(run: RunFolder) -> str:
    """ppo, reward, the adapter's PEFT type (lora, prompt_tuning, ...), the method SFT wrote to metrics.json, or
    pretrain for any other training run; a model folder with no training record counts as full."""
    if run.is_ppo:
        return "ppo"
    config = read_json(run.model_dir / "config.json")
    adapter = read_json(run.model_dir / "adapter_config.json")
    classifier = any(name.endswith("ForSequenceClassification") for name in config.get("architectures") or [])
    if classifier or adapter.get("task_type") == "SEQ_CLS":
        return "reward"
    if adapter:
        peft_type = str(adapter.get("peft_type", "adapter"))
        return PEFT_METHODS.get(peft_type, peft_type.lower())
    metrics = read_json(run.run_dir / METRICS_FILE)
    if "method" in metrics:
        return str(metrics["method"])
    return "pretrain" if metrics else "full"


def named_base_model(run: RunFolder, base_model: str | None) -> str | None:
    """The base model as given, or as the adapter recorded it (a Hub id or a local path)."""
    return base_model or read_json(run.model_dir / "adapter_config.json").get("base_model_name_or_path")


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
    """Numbers of a metrics.json, nested dicts (PPO's first/last step) as `outer/inner` keys."""
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
    """One model-index entry per headline metric (all float metrics for a task the runner does not list).

    The model-index groups results by task type and dataset, and one task name stands for the whole group, so
    tasks scored on the same data would be mislabelled: the task goes into the metric's name instead."""
    entries = []
    for row in rows:
        task, metrics = row["task"], row.get("metrics", {})
        names = [name for name, _ in HEADLINE_METRICS.get(task, ())]
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


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(sorted(str(item) for item in value))
    return str(value)


def table(rows: dict, header: tuple[str, str]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    return "\n".join(lines + [f"| {key} | {format_value(value)} |" for key, value in rows.items()])


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
    data = ", ".join(map(describe_data, datasets)) if datasets else "its training run's data"
    lines = [
        f"- Trained on {data} only: expect poor output on anything else.",
        "- Small language models make arithmetic and factual errors: check every answer.",
        "- Not evaluated for safety, bias or toxicity, and not tuned to refuse harmful requests; do not use it where "
        "mistakes matter.",
    ]
    if method == "prompt_tuning":
        lines.append(
            "- PEFT 0.21's generation with prompt tuning emits wrong tokens under transformers 5.x; generate with "
            "`toolkit.adapters.generate`."
        )
    return "\n".join(lines)


def build_model_card(args: PushArguments, run: RunFolder, method: str, curves_file: str | None) -> ModelCard:
    """The card: metadata (base model, datasets, tags, model-index) and a body a reader can act on."""
    named_base = named_base_model(run, args.base_model)
    base_model = card_base_model(named_base)
    datasets = [public_name(name) for name in args.datasets or []]
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
    description = METHOD_DESCRIPTIONS.get(method, method)
    config = read_json(run.model_dir / "config.json")
    shape = {key: config[key] for key in MODEL_SHAPE_KEYS if key in config}
    sections = [
        f"# {name}",
        f"Trained with finetune-toolkit by {description}.",
        f"- **Method:** `{method}`\n- **Base model:** {base_text}\n"
        f"- **Training data:** {', '.join(map(describe_data, datasets)) if datasets else 'not recorded'}",
        "## How to use",
        usage_snippet(args.repo_id, args.revision, method, run),
    ]
    if shape:
        sections += ["## Model", table(shape, ("setting", "value"))]
    training, metrics = hyperparameters(run), flatten_numbers(read_json(run.run_dir / METRICS_FILE))
    if training or metrics or curves_file:
        sections.append("## Training")
    if training:
        sections += ["### Hyperparameters", table(training, ("setting", "value"))]
    if metrics:
        sections += [f"### Results at the end of training ({METRICS_FILE})", table(metrics, ("metric", "value"))]
    if curves_file:
        sections.append(f"![Training curves]({curves_file})")
    if rows:
        lines = ["| data | metric | value |", "| --- | --- | --- |"]
        lines += [
            f"| {entry.dataset_name} | {entry.metric_name} | {format_value(entry.metric_value)} |"
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


def has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file()


def is_staged(name: str, tokenizer_from_folder: bool) -> bool:
    if not tokenizer_from_folder and name in TOKENIZER_FILES:
        return False
    return any(fnmatch.fnmatch(name, pattern) for pattern in MODEL_FILE_PATTERNS)


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows (weights are not copied), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def auto_map_modules(config: dict) -> set[str]:
    """The local code files config.json's auto_map names ("owner/repo--module.Class" lives in another repo)."""
    references = []
    for value in config.get("auto_map", {}).values():
        references += value if isinstance(value, list) else [value]
    return {f"{ref.rsplit('.', 1)[0]}.py" for ref in references if ref and "--" not in ref}


def stage_remote_code(folder: Path) -> None:
    """Make sure every code file auto_map names is staged; our GPT's come from the package when missing."""
    config = read_json(folder / "config.json")
    for module in sorted(auto_map_modules(config) - {path.name for path in folder.iterdir()}):
        packaged = Path(models.__file__).parent / module
        if config.get("model_type") != models.GPTConfig.model_type or not packaged.is_file():
            raise ValueError(
                f"config.json's auto_map names {module}, which is not in the model folder: the Hub copy could not "
                "load with trust_remote_code=True. Save the model with save_pretrained, which copies its code."
            )
        shutil.copy2(packaged, folder / module)


def files_containing(folder: Path, secret: str) -> list[str]:
    return sorted(
        path.name
        for path in folder.iterdir()
        if path.suffix not in BINARY_SUFFIXES and secret.encode() in path.read_bytes()
    )


def stage_upload(args: PushArguments, folder: Path, token: str | None = None) -> StagedUpload:
    """Write into the empty `folder` exactly what is uploaded, checking the Hub copy will load."""
    run = locate_run(args.model_path)
    tokenizer_from_folder = args.tokenizer_path is None
    if tokenizer_from_folder and not has_tokenizer(run.model_dir):
        raise ValueError(
            f"{run.model_dir} has no tokenizer (tokenizer.json / tokenizer_config.json), and the Hub copy would be "
            "unusable without one. Save it next to the model (tokenizer.save_pretrained(folder)) or pass "
            "--tokenizer_path <tokenizer folder or Hub id>, e.g. the base model's."
        )
    method = args.method or detect_method(run)
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(run.model_dir.iterdir())
    if run.is_ppo:
        sources += [run.run_dir / name for name in PPO_RUN_FILES if (run.run_dir / name).is_file()]
    left_out = [path.name for path in sources if not (path.is_file() and is_staged(path.name, tokenizer_from_folder))]
    for source in sources:
        if source.name not in left_out:
            link_or_copy(source, folder / source.name)
    if left_out:
        print(f"Not uploaded from {run.model_dir}: {', '.join(left_out)}")
    if args.tokenizer_path is not None:
        AutoTokenizer.from_pretrained(args.tokenizer_path).save_pretrained(folder)
    if run.is_adapter and args.base_model and is_hub_id(args.base_model):
        adapter = read_json(folder / "adapter_config.json")
        write_json(folder / "adapter_config.json", {**adapter, "base_model_name_or_path": args.base_model})
    stage_remote_code(folder)
    curves_file = next((name for name in (CURVES_FILE, PPO_CURVES_FILE) if (folder / name).is_file()), None)
    build_model_card(args, run, method, curves_file).save(folder / CARD_FILE)
    if token and (leaks := files_containing(folder, token)):
        raise ValueError(
            f"These files would upload your Hugging Face token: {', '.join(leaks)}. Nothing was uploaded; remove the "
            f"token from them in {args.model_path} (and revoke it if they were shared)."
        )
    return StagedUpload(folder, sorted(path.name for path in folder.iterdir()), method)


def is_previous_dry_run(folder: Path) -> bool:
    card = folder / CARD_FILE
    only_files = all(path.is_file() for path in folder.iterdir())
    return only_files and card.is_file() and LIBRARY_TAG in (ModelCard.load(card).data.tags or [])


def prepare_dry_run_dir(folder: Path) -> None:
    """Leave `folder` missing or empty: a previous dry run's folder is replaced, anything else refused."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--dry_run_dir {folder} is a file; pass a folder.")
    if folder.is_dir() and any(folder.iterdir()):
        if not is_previous_dry_run(folder):
            raise ValueError(
                f"--dry_run_dir {folder} already holds files that are not a previous dry run; pass another folder."
            )
        shutil.rmtree(folder)


def dry_run(args: PushArguments, token: str | None) -> PushResult:
    folder = Path(args.dry_run_dir or Path(args.model_path) / DRY_RUN_FOLDER)
    prepare_dry_run_dir(folder)
    try:
        staged = stage_upload(args, folder, token)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # no half-written (or token-holding) folder left behind
        raise
    print(f"Dry run, nothing uploaded. {args.repo_id} (branch {args.revision}) would get, from {folder}:")
    for name in staged.files:
        print(f"  {name} ({(folder / name).stat().st_size:,} bytes)")
    return PushResult(args.repo_id, args.revision, staged.files, folder, None)


def push(args: PushArguments, token: str | None = None) -> PushResult:
    """Stage the folder and upload it (create the repo and the branch if missing); with dry_run, only stage it.

    `token` defaults to `HF_TOKEN` or the `hf auth login` token; a dry run needs none."""
    check_repo_id(args.repo_id)
    token = token or get_token()
    if args.dry_run:
        return dry_run(args, token)
    if token is None:
        raise ValueError(
            "No Hugging Face token: set HF_TOKEN or run `hf auth login` (the token needs write access), or pass "
            "--dry_run true to write the upload folder without uploading."
        )
    with tempfile.TemporaryDirectory(prefix="hub-upload-") as temporary:
        staged = stage_upload(args, Path(temporary), token)
        api = HfApi(endpoint=args.endpoint, token=token, library_name=LIBRARY_TAG, library_version=__version__)
        # private=None, not False: an organization whose repos default to private keeps that default.
        api.create_repo(args.repo_id, private=args.private or None, exist_ok=True)
        if args.revision != DEFAULT_BRANCH:
            api.create_branch(args.repo_id, branch=args.revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=args.repo_id,
            folder_path=staged.folder,
            revision=args.revision,
            commit_message=args.commit_message or f"Upload {staged.method} model with finetune-toolkit",
        )
    print(f"Uploaded {len(staged.files)} files to {args.repo_id} (branch {args.revision}): {commit.commit_url}")
    return PushResult(args.repo_id, args.revision, staged.files, None, commit.commit_url)


def push_folder(path: str | Path, repo_id: str, *, token: str | None = None, **options) -> PushResult:
    """`push` from Python, e.g. at the end of a training recipe: `options` are PushArguments fields (private,
    revision, commit_message, base_model, datasets, results_path, dry_run, ...). Call it on the main process only."""
    return push(PushArguments(model_path=str(path), repo_id=repo_id, **options), token=token)


def push_on_main_process(args: PushArguments) -> PushResult | None:
    """`push` once under `accelerate launch --num_processes N`: on the main process only."""
    # cpu=True: the state is only asked which process this is, and an upload needs no accelerator.
    return push(args) if PartialState(cpu=True).is_main_process else None


def parse_arguments(argv: list[str] | None, prog: str = "toolkit push") -> PushArguments:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):  # `toolkit push <path> ...`: the first word is the folder
        argv = ["--model_path", *argv]
    (args,) = TrlParser(PushArguments, prog=prog).parse_args_and_config(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    push_on_main_process(parse_arguments(argv))
    return 0
