"""`toolkit eval` / `recipes/eval.py`: several model folders x several tasks, sharded over processes, one report.

Tasks: `perplexity` (corpus perplexity of a text file or dataset column), `gsm8k` (k-shot exact match on a GSM8K
JSONL file or the built-in `arithmetic` test split) and `bleu` (greedy outputs for prompts against references).
Models: anything `toolkit.loading.load_causal_lm` loads: a base model, a full fine-tune, a LoRA / prompt-tuning
adapter folder, a PPO policy folder, or a Hub id.

Sharding (`accelerate launch --num_processes N`): the unit of work is one batch of the single-process run
(`batch_size` perplexity windows or prompts). Each process takes a contiguous run of whole batches, as accelerate's
`split_between_processes` splits a list, without padding: no example is scored twice. The per-example results
(log-likelihood and token count of every window, the output of every prompt) are gathered with `gather_object` in
the global order, and the metrics are computed once from them. So every batch holds exactly what it holds in one
process, and on the same hardware the numbers equal, bit for bit, the single-process ones (and those of the
`toolkit.evaluation` functions with the same batch size), whatever the number of processes.

Outputs in `output_dir`: `results.json` (every metric, protocol, example count and model path per model x task),
`results.md` (a table, one column per headline metric), `results.png` (bar charts), and per-example records in
`<model name>/<task>.jsonl`.
"""

import gc
import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import matplotlib
import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from trl import TrlParser

from ..data import SYNTHETIC_NAME, load_raw, require_columns
from ..loading import is_peft_adapter, load_causal_lm, load_tokenizer
from ..tasks.arithmetic import as_prompt_completion, make_arithmetic_dataset
from .bleu import BleuResult, bleu_score, read_segments
from .generation import generate_greedy
from .gsm8k import (
    DEFAULT_SEED,
    LEGACY_STOP_STRINGS,
    STOP_STRINGS,
    Gsm8kResult,
    fewshot_prompts,
    load_gsm8k,
    score_gsm8k,
)
from .perplexity import PerplexityResult, Window, check_window, corpus_result, document_windows, score_windows

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

TASKS = ("perplexity", "gsm8k", "bleu")
# The columns of the comparison table and chart: (metric, better when "lower" or "higher").
HEADLINE_METRICS = {
    "perplexity": (("perplexity", "lower"), ("word_perplexity", "lower"), ("bits_per_byte", "lower")),
    "gsm8k": (("strict_match", "higher"), ("flexible_extract", "higher")),
    "bleu": (("bleu", "higher"), ("chrf", "higher")),
}
RESULTS_JSON, RESULTS_TABLE, RESULTS_CHART = "results.json", "results.md", "results.png"
TABLE_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")  # other files are read as plain text


@dataclass
class EvalArguments:
    models: list[str] = field(
        metadata={
            "help": "Model folders or Hub ids: base models, full fine-tunes, PEFT adapter folders, PPO policies."
        }
    )
    model_names: list[str] | None = field(
        default=None, metadata={"help": "Labels for the models, in the same order. None: the folder names."}
    )
    tasks: list[str] = field(
        default_factory=lambda: ["perplexity"], metadata={"help": f"Tasks to run, among {', '.join(TASKS)}."}
    )
    limit: int | None = field(
        default=None,
        metadata={"help": "Examples per task for quick runs: documents (perplexity), questions, prompts. None: all."},
    )
    output_dir: str = field(default="outputs/eval", metadata={"help": "Where results and per-example records go."})
    tokenizer: str | None = field(
        default=None, metadata={"help": "Tokenizer folder or Hub id for every model. None: each model's own."}
    )
    dtype: str = field(default="auto", metadata={"help": "Weights dtype: 'auto' (as saved), 'float32', 'bfloat16'."})
    batch_size: int = field(default=8, metadata={"help": "Perplexity windows per forward pass; prompts per generate."})
    use_cpu: bool = field(default=False, metadata={"help": "Run on CPU even when GPUs are available."})
    perplexity_data: str = field(
        default=SYNTHETIC_NAME,
        metadata={
            "help": "Perplexity text: a plain text file (.txt, WikiText's .raw, ...), a data file or folder (.jsonl, "
            ".json, .csv, .parquet), a Hub dataset id, or 'arithmetic' (the built-in test problems as texts)."
        },
    )
    perplexity_text_column: str = field(default="text", metadata={"help": "Column holding the documents."})
    perplexity_sample_by: str = field(
        default="document",
        metadata={
            "help": "Text files: one document per 'document' (the whole file, WikiText protocol), 'paragraph' "
            "or 'line'."
        },
    )
    perplexity_dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    perplexity_split: str | None = field(
        default=None, metadata={"help": "Split to score. None: 'test' if present, else the only split."}
    )
    context_length: int | None = field(
        default=None, metadata={"help": "Perplexity window in tokens. None: the model's full context."}
    )
    stride: int | None = field(
        default=None, metadata={"help": "How far windows move. None: the window (lm-evaluation-harness)."}
    )
    add_start_token: bool = field(
        default=True, metadata={"help": "Score each document's first token after a prepended BOS/EOS."}
    )
    gsm8k_data: str = field(
        default=SYNTHETIC_NAME,
        metadata={"help": "GSM8K questions: a JSON Lines file with question/answer, or 'arithmetic' (built-in test)."},
    )
    gsm8k_fewshot_data: str | None = field(
        default=SYNTHETIC_NAME,
        metadata={"help": "Where exemplars come from: a GSM8K train JSONL, 'arithmetic' (built-in train), or None."},
    )
    num_fewshot: int = field(default=5, metadata={"help": "GSM8K exemplars per prompt (5 in the harness)."})
    fewshot_seed: int = field(default=DEFAULT_SEED, metadata={"help": "Seed of the exemplar draw (harness: 1234)."})
    gsm8k_max_new_tokens: int = field(default=256, metadata={"help": "GSM8K generation budget (256 in the harness)."})
    bleu_data: str = field(
        default=SYNTHETIC_NAME,
        metadata={
            "help": "BLEU prompts: 'arithmetic' (prompt = 'Question: q\\nAnswer:', reference = the worked solution), "
            "a data file with prompt and reference columns, or, with bleu_reference_files, a text file of prompts."
        },
    )
    bleu_prompt_column: str = field(default="prompt", metadata={"help": "Data file column holding the prompts."})
    bleu_reference_column: str = field(
        default="reference", metadata={"help": "Data file column holding a reference or a list of references."}
    )
    bleu_reference_files: list[str] | None = field(
        default=None, metadata={"help": "Reference files aligned line by line with the prompt file in bleu_data."}
    )
    bleu_max_new_tokens: int = field(default=128, metadata={"help": "BLEU generation budget per prompt."})
    bleu_stop_strings: list[str] | None = field(
        default=None,
        metadata={
            "help": "Where outputs are cut. None: a newline for line-aligned files, else a blank line or 'Question:'."
        },
    )
    bleu_tokenize: str = field(default="13a", metadata={"help": "sacreBLEU tokenizer ('13a', 'intl', 'char', ...)."})
    synthetic_size: int = field(
        default=200, metadata={"help": "'arithmetic': test problems generated (then cut to limit)."}
    )
    synthetic_fewshot_size: int = field(default=200, metadata={"help": "'arithmetic': exemplar pool (train split)."})
    synthetic_difficulty: list[int] = field(
        default_factory=lambda: [1, 2], metadata={"help": "'arithmetic': difficulty levels (1-3) to mix."}
    )


@dataclass(frozen=True)
class TaskData:
    """What one task scores, loaded once for every model: documents, or prompts with their references."""

    task: str
    source: str
    texts: list[str] = field(default_factory=list)  # perplexity documents (non-empty)
    prompts: list[str] = field(default_factory=list)
    references: list = field(default_factory=list)  # bleu: a string or a list of strings per prompt
    examples: list[dict] = field(default_factory=list)  # gsm8k: {"question", "answer"}

    @property
    def num_examples(self) -> int:
        return len(self.texts) if self.task == "perplexity" else len(self.prompts)


@dataclass(frozen=True)
class TaskScore:
    """One model on one task: every number of the result, its protocol and where the examples came from."""

    model: str
    model_path: str
    adapter: bool
    task: str
    data: str
    num_examples: int
    metrics: dict
    protocol: str


# ---- sharding ------------------------------------------------------------------------------------------------------


def process_share(num_items: int, process_index: int, num_processes: int) -> range:
    """The contiguous items of one process, split as accelerate's `split_between_processes` does without padding:
    the first `num_items % num_processes` processes take one more. Shares are disjoint and cover every item."""
    if not 0 <= process_index < num_processes:
        raise ValueError(f"process_index {process_index} is not in range for {num_processes} processes.")
    per_process, extra = divmod(num_items, num_processes)
    start = process_index * per_process + min(process_index, extra)
    return range(start, start + per_process + (process_index < extra))


def batch_share(num_items: int, batch_size: int, process_index: int, num_processes: int) -> range:
    """The items of one process when whole batches of `batch_size` are shared out, so every batch is the batch of
    the single-process run and computes the same numbers."""
    batches = process_share(math.ceil(num_items / batch_size), process_index, num_processes)
    return range(min(batches.start * batch_size, num_items), min(batches.stop * batch_size, num_items))


# ---- perplexity ----------------------------------------------------------------------------------------------------


def perplexity_shard(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    context_length: int,
    stride: int,
    add_start_token: bool = True,
    batch_size: int = 8,
    process_index: int = 0,
    num_processes: int = 1,
    show_progress: bool = False,
) -> list[dict]:
    """This process's share of the windows, scored: one record per window {"document", "log_likelihood",
    "num_tokens"}, in window order. Windows, not documents, are shared out, so a single-document corpus (a whole
    WikiText file) is split too."""
    documents, windows = document_windows(tokenizer, texts, context_length, stride, add_start_token)
    share = batch_share(len(windows), batch_size, process_index, num_processes)
    mine = windows[share.start : share.stop]
    # Each window as its own "document" makes score_windows return per-window sums (same batches, same numbers).
    own = [Window(index, window.start, window.end, window.num_scored) for index, window in enumerate(mine)]
    model.eval()
    log_likelihoods = score_windows(model, [documents[w.document] for w in mine], own, batch_size, show_progress)
    return [
        {
            "window": index,
            "document": window.document,
            "log_likelihood": log_likelihood,
            "num_tokens": window.num_scored,
        }
        for index, window, log_likelihood in zip(share, mine, log_likelihoods)
    ]


def check_gathered(records: list[dict], key: str, expected: int | None = None) -> None:
    """Gathered records must hold every index exactly once, in order: a gap or a duplicate would bias the metric."""
    indices = [record[key] for record in records]
    if not indices or indices != list(range(len(indices))) or (expected is not None and len(indices) != expected):
        raise RuntimeError(
            f"The gathered records do not cover every {key} exactly once in order ({len(indices)} records"
            f"{'' if expected is None else f', {expected} expected'}). The processes disagree on the data: make "
            "sure every process reads the same files with the same arguments."
        )


def perplexity_from_records(
    texts: Sequence[str], records: list[dict], *, context_length: int, stride: int, add_start_token: bool = True
) -> tuple[PerplexityResult, list[dict]]:
    """Corpus perplexity from the gathered window records, plus one record per document.

    The per-document sums are accumulated window by window in the single-process order, so the result is bit for
    bit that of `perplexity_of_texts` with the same batch size."""
    check_gathered(records, "window")
    documents = [text for text in texts if text]
    log_likelihoods, num_tokens = [0.0] * len(documents), [0] * len(documents)
    for record in records:
        log_likelihoods[record["document"]] += record["log_likelihood"]
        num_tokens[record["document"]] += record["num_tokens"]
    result = corpus_result(documents, log_likelihoods, sum(num_tokens), context_length, stride, add_start_token)
    words = [len(re.split(r"\s+", text)) for text in documents]
    sizes = [len(text.encode("utf-8")) for text in documents]
    per_document = [
        {"index": index, "log_likelihood": ll, "num_tokens": tokens, "num_words": n_words, "num_bytes": n_bytes}
        for index, (ll, tokens, n_words, n_bytes) in enumerate(zip(log_likelihoods, num_tokens, words, sizes))
    ]
    return result, per_document


# ---- generation (gsm8k, bleu) --------------------------------------------------------------------------------------


def generation_shard(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    stop_strings: Sequence[str],
    batch_size: int = 8,
    process_index: int = 0,
    num_processes: int = 1,
    show_progress: bool = False,
) -> list[dict]:
    """Greedy outputs for this process's share of the prompts (whole batches): records {"index", "output"}."""
    share = batch_share(len(prompts), batch_size, process_index, num_processes)
    if not share:
        return []
    outputs = generate_greedy(
        model,
        tokenizer,
        prompts[share.start : share.stop],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        stop_strings=stop_strings,
        show_progress=show_progress,
    )
    return [{"index": index, "output": output} for index, output in zip(share, outputs)]


def gsm8k_generation(num_fewshot: int, seed: int, max_new_tokens: int) -> str:
    """The generation part of the GSM8K protocol, worded as `evaluate_gsm8k` words it."""
    return (
        f"{num_fewshot}-shot `Question:/Answer:` prompts (seed {seed}), greedy, at most {max_new_tokens} new tokens, "
        f"stop at {list(STOP_STRINGS)} or EOS"
    )


def bleu_protocol(result: BleuResult, max_new_tokens: int, stop_strings: Sequence[str]) -> str:
    return (
        f"corpus BLEU and chrF over {result.num_segments} segments: greedy outputs, at most {max_new_tokens} new "
        f"tokens, cut at {list(stop_strings)} or EOS, stripped; BLEU {result.bleu_signature}; "
        f"chrF {result.chrf_signature}"
    )


# ---- data ----------------------------------------------------------------------------------------------------------


def synthetic_examples(split: str, size: int, args: EvalArguments) -> datasets.Dataset:
    return make_arithmetic_dataset(split, size, args.synthetic_difficulty)


def pick_split(raw: datasets.DatasetDict, split: str | None, source: str) -> datasets.Dataset:
    """The named split; by default "test" if there is one, else the only split (a local file's "train")."""
    if split is None:
        if "test" in raw or len(raw) == 1:
            return raw["test" if "test" in raw else next(iter(raw))]
        raise ValueError(f"{source} has splits {list(raw)} and none is 'test': name the one to score.")
    if split not in raw:
        raise ValueError(f"Split {split!r} not found in {source}; it has splits {list(raw)}.")
    return raw[split]


def text_file_documents(path: Path, sample_by: str) -> list[str]:
    """A plain text file (WikiText's `wiki.test.raw`, `.txt`, ...) as documents, read exactly as it is."""
    text = path.read_text(encoding="utf-8")
    if not text:
        raise ValueError(f"{path} is empty: there is nothing to score. Pass a file that contains text.")
    separators = {"document": None, "paragraph": "\n\n", "line": "\n"}
    if sample_by not in separators:
        raise ValueError(f"perplexity_sample_by={sample_by!r}: use one of {', '.join(separators)}.")
    return [text] if separators[sample_by] is None else text.split(separators[sample_by])


def load_perplexity_data(args: EvalArguments) -> TaskData:
    source = Path(args.perplexity_data)
    if args.perplexity_data == SYNTHETIC_NAME:
        texts = synthetic_examples("test", args.synthetic_size, args).map(as_prompt_completion)["text"]
    elif source.is_file() and source.suffix not in TABLE_SUFFIXES:
        texts = text_file_documents(source, args.perplexity_sample_by)
    else:
        raw = load_raw(
            args.perplexity_data, config_name=args.perplexity_dataset_config, text_sample_by=args.perplexity_sample_by
        )
        dataset = pick_split(raw, args.perplexity_split, args.perplexity_data)
        require_columns(dataset, [args.perplexity_text_column], args.perplexity_data)
        texts = dataset[args.perplexity_text_column]
    texts = [text for text in texts if text][: args.limit]
    if not texts:
        raise ValueError(
            f"{args.perplexity_data} holds no text in column {args.perplexity_text_column!r}: every row is empty."
        )
    return TaskData("perplexity", args.perplexity_data, texts=texts)


def load_gsm8k_data(args: EvalArguments) -> TaskData:
    def examples_from(source: str, synthetic_split: str, synthetic_size: int) -> list[dict]:
        if source == SYNTHETIC_NAME:
            return load_gsm8k(synthetic_examples(synthetic_split, synthetic_size, args))
        if not Path(source).is_file():
            raise ValueError(f"GSM8K file {source!r} does not exist: pass a JSON Lines file or 'arithmetic'.")
        return load_gsm8k(source)

    examples = examples_from(args.gsm8k_data, "test", args.synthetic_size)[: args.limit]
    if args.num_fewshot > 0 and args.gsm8k_fewshot_data is None:
        raise ValueError(
            f"--num_fewshot {args.num_fewshot} needs --gsm8k_fewshot_data (a train JSONL or 'arithmetic')."
        )
    exemplars = (
        examples_from(args.gsm8k_fewshot_data, "train", args.synthetic_fewshot_size) if args.num_fewshot > 0 else []
    )
    prompts = fewshot_prompts(
        [example["question"] for example in examples], exemplars, args.num_fewshot, args.fewshot_seed
    )
    return TaskData("gsm8k", args.gsm8k_data, prompts=prompts, examples=examples)


def bleu_stop_strings(args: EvalArguments) -> list[str]:
    if args.bleu_stop_strings is not None:
        return args.bleu_stop_strings
    return ["\n"] if args.bleu_reference_files else list(LEGACY_STOP_STRINGS)


def load_bleu_data(args: EvalArguments) -> TaskData:
    if args.bleu_reference_files:
        prompts = read_segments(args.bleu_data)
        streams = [read_segments(path) for path in args.bleu_reference_files]
        for path, stream in zip(args.bleu_reference_files, streams):
            if len(stream) != len(prompts):
                raise ValueError(
                    f"The prompt file {args.bleu_data} has {len(prompts)} lines but the reference file {path} has "
                    f"{len(stream)}; they must be aligned line by line."
                )
        references = [list(segment) for segment in zip(*streams)]
    elif args.bleu_data == SYNTHETIC_NAME:
        rows = synthetic_examples("test", args.synthetic_size, args).map(as_prompt_completion)
        prompts, references = rows["prompt"], rows["answer"]
    else:
        dataset = pick_split(load_raw(args.bleu_data), None, args.bleu_data)
        require_columns(dataset, [args.bleu_prompt_column, args.bleu_reference_column], args.bleu_data)
        prompts, references = dataset[args.bleu_prompt_column], dataset[args.bleu_reference_column]
    if not prompts:
        raise ValueError(f"{args.bleu_data} holds no prompts.")
    return TaskData("bleu", args.bleu_data, prompts=prompts[: args.limit], references=references[: args.limit])


LOADERS = {"perplexity": load_perplexity_data, "gsm8k": load_gsm8k_data, "bleu": load_bleu_data}


# ---- models --------------------------------------------------------------------------------------------------------


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
    return labels


def tokenizer_for(path: str, tokenizer: str | None) -> PreTrainedTokenizerBase:
    """The model's tokenizer, checked before any model runs, with an error that says how to fix a missing one."""
    if not Path(path).exists() and looks_local(path):
        raise ValueError(
            f"Model path {path!r} does not exist. Pass a folder written by save_pretrained (a full model, a PEFT "
            "adapter folder or a PPO policy folder) or a Hub model id."
        )
    folder = Path(path)
    if folder.is_dir() and not any((folder / name).is_file() for name in ("config.json", "adapter_config.json")):
        inside = sorted(
            str(config.parent)
            for pattern in ("*/config.json", "*/adapter_config.json")
            for config in folder.glob(pattern)
        )
        hint = f" Model folders inside it: {', '.join(inside)}." if inside else ""
        raise ValueError(
            f"{path!r} is not a model folder: it holds neither config.json nor adapter_config.json.{hint} "
            "(A PPO run keeps its policy in <output_dir>/policy.)"
        )
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
    for name in ("batch_size", "limit", "gsm8k_max_new_tokens", "bleu_max_new_tokens"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ValueError(f"--{name} must be positive, got {value}.")


# ---- running -------------------------------------------------------------------------------------------------------


def run_task(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: TaskData,
    args: EvalArguments,
    state: PartialState,
) -> tuple[PerplexityResult | Gsm8kResult | BleuResult, str, list[dict]]:
    """One task on one model, sharded over the processes: (result, protocol, per-example records)."""
    shard = dict(
        batch_size=args.batch_size,
        process_index=state.process_index,
        num_processes=state.num_processes,
        show_progress=state.is_local_main_process,
    )
    if data.task == "perplexity":
        context_length, stride = check_window(model, args.context_length, args.stride)
        window = dict(context_length=context_length, stride=stride, add_start_token=args.add_start_token)
        records = gather_object(perplexity_shard(model, tokenizer, data.texts, **window, **shard))
        result, per_document = perplexity_from_records(data.texts, records, **window)
        return result, result.protocol, per_document

    max_new_tokens = args.gsm8k_max_new_tokens if data.task == "gsm8k" else args.bleu_max_new_tokens
    stop_strings = list(STOP_STRINGS) if data.task == "gsm8k" else bleu_stop_strings(args)
    records = gather_object(
        generation_shard(
            model, tokenizer, data.prompts, max_new_tokens=max_new_tokens, stop_strings=stop_strings, **shard
        )
    )
    check_gathered(records, "index", len(data.prompts))
    outputs = [record["output"] for record in records]
    if data.task == "gsm8k":
        generation = gsm8k_generation(args.num_fewshot, args.fewshot_seed, max_new_tokens)
        result = score_gsm8k(data.examples, outputs, data.prompts, generation)
        return result, result.protocol, result.records
    hypotheses = [output.strip() for output in outputs]
    result = bleu_score(hypotheses, data.references, tokenize=args.bleu_tokenize)
    per_segment = [
        {"index": index, "prompt": prompt, "hypothesis": hypothesis, "references": references}
        for index, (prompt, hypothesis, references) in enumerate(zip(data.prompts, hypotheses, data.references))
    ]
    return result, bleu_protocol(result, max_new_tokens, stop_strings), per_segment


def file_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "model"


def write_records(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as file:
        for record in records:
            file.write(json.dumps(record, ensure_ascii=False) + "\n")


def evaluate_models(args: EvalArguments) -> dict:
    """Every model on every task; writes the report in `output_dir` (main process) and returns its contents."""
    check_arguments(args)
    labels = model_labels(args)
    task_data = [LOADERS[task](args) for task in args.tasks]  # bad data fails before any model is loaded
    tokenizers = [tokenizer_for(path, args.tokenizer) for path in args.models]
    state = PartialState(cpu=args.use_cpu)
    output_dir = Path(args.output_dir)

    scores = []
    for label, path, tokenizer in zip(labels, args.models, tokenizers):
        model = load_causal_lm(path, dtype=args.dtype, device=str(state.device))
        for data in task_data:
            if state.is_main_process:
                print(
                    f"{label}: {data.task} on {data.source} ({data.num_examples} examples, "
                    f"{state.num_processes} process(es))"
                )
            result, protocol, records = run_task(model, tokenizer, data, args, state)
            metrics = {key: value for key, value in result.to_dict().items() if key != "protocol"}
            scores.append(
                TaskScore(
                    label, path, is_peft_adapter(path), data.task, data.source, data.num_examples, metrics, protocol
                )
            )
            if state.is_main_process:
                write_records(output_dir / file_name(label) / f"{data.task}.jsonl", records)
        del model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    report = {
        "arguments": asdict(args),
        "num_processes": state.num_processes,
        "results": [asdict(score) for score in scores],
    }
    if state.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / RESULTS_JSON).write_text(json.dumps(report, indent=2, default=str))
        table = results_table(scores, labels)
        (output_dir / RESULTS_TABLE).write_text(table + "\n")
        plot_results(scores, labels, output_dir / RESULTS_CHART)
        print(table)
        print(f"Results in {output_dir}: {RESULTS_JSON}, {RESULTS_TABLE}, {RESULTS_CHART}, <model>/<task>.jsonl")
    state.wait_for_everyone()
    return report


# ---- report --------------------------------------------------------------------------------------------------------


def headline_columns(scores: list[TaskScore]) -> list[tuple[str, str, str]]:
    tasks = list(dict.fromkeys(score.task for score in scores))
    return [(task, metric, better) for task in tasks for metric, better in HEADLINE_METRICS[task]]


def format_value(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4f}"


def results_table(scores: list[TaskScore], labels: list[str]) -> str:
    """A markdown table, one row per model and one column per headline metric, then the protocols."""
    columns = headline_columns(scores)
    by_key = {(score.model, score.task): score for score in scores}
    arrows = {"lower": "↓", "higher": "↑"}
    lines = [
        "| model | " + " | ".join(f"{task}: {metric} {arrows[better]}" for task, metric, better in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for label in labels:
        cells = [format_value(by_key[label, task].metrics[metric]) for task, metric, _ in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Protocols:"]
    protocols: dict[tuple[str, str], list[str]] = {}
    for score in scores:
        protocols.setdefault((score.task, score.protocol), []).append(score.model)
    for (task, protocol), models in protocols.items():
        lines.append(f"- {task} ({', '.join(models)}): {protocol}")
    return "\n".join(lines)


def plot_results(scores: list[TaskScore], labels: list[str], path: Path) -> Path:
    """Bar charts comparing the models, one panel per headline metric; log scale for widely spread perplexities."""
    columns = headline_columns(scores)
    by_key = {(score.model, score.task): score for score in scores}
    num_columns = min(3, len(columns))
    num_rows = math.ceil(len(columns) / num_columns)
    figure, axes = plt.subplots(num_rows, num_columns, figsize=(4.2 * num_columns, 3.4 * num_rows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, (task, metric, better) in zip(axes.flat, columns):
        values = [by_key[label, task].metrics[metric] for label in labels]
        finite = [value for value in values if math.isfinite(value)]
        heights = [value if math.isfinite(value) else 0.0 for value in values]
        bars = axis.bar(labels, heights, color=[colors[i % len(colors)] for i in range(len(labels))])
        for bar, value in zip(bars, values):
            axis.annotate(
                format_value(value),
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        if "perplexity" in metric and finite and min(finite) > 0 and max(finite) / min(finite) > 50:
            axis.set_yscale("log")
        elif finite and min(finite) >= 0:
            axis.set_ylim(bottom=0)
        axis.set_title(f"{task}: {metric} ({better} is better)", fontsize=10)
        axis.tick_params(axis="x", labelrotation=20, labelsize=8)
        axis.grid(axis="y", alpha=0.3)
    for axis in list(axes.flat)[len(columns) :]:
        axis.set_visible(False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    """`toolkit eval --config recipes/configs/eval/tiny_cpu.yaml` (or flags); under `accelerate launch -m
    toolkit.cli eval ...` the work is sharded over the processes."""
    (args,) = TrlParser(EvalArguments, prog="toolkit eval").parse_args_and_config(
        sys.argv[1:] if argv is None else argv
    )
    evaluate_models(args)
    return 0


__all__ = [
    "EvalArguments",
    "TASKS",
    "TaskScore",
    "batch_share",
    "evaluate_models",
    "generation_shard",
    "perplexity_from_records",
    "perplexity_shard",
    "process_share",
]
