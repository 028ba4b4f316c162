r"""Corpus perplexity of a causal LM, with sliding windows for texts longer than the model's context.

Protocol (lm-evaluation-harness `loglikelihood_rolling` when stride == window): each document is tokenized without
special tokens and a start token (BOS, else EOS) is put in front, so the first token is scored too. Window ends
move by `stride` and each window reads the `context_length` tokens before its end; every token is scored exactly
once, by the first window that reaches it, so it sees as much context as the stride allows (at least
context_length - stride + 1 tokens after the first window). The last, partial window still reads a full window.
Log-probabilities are summed per document; perplexity is exp(total NLL / total tokens) over the whole corpus,
never a mean of per-document perplexities. Word and byte perplexities divide the same total NLL by the number of
whitespace-separated words (`len(re.split(r"\s+", text))`) and UTF-8 bytes of the original text.
"""

import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .. import stopping
from ..data import SYNTHETIC_NAME, read_text_file, require_columns, require_text
from ..generation import ModelOrPath, TokenizerOrPath, load_model_and_tokenizer
from ..loading import model_context_length
from .task import Shard, Task, TaskData, TaskResult, check_gathered, pick_split, task_source

IGNORE_INDEX = -100


@dataclass(frozen=True)
class PerplexityResult:
    """Corpus-level scores of one model on one set of texts, with the protocol that produced them.

    `str(result)` prints every number with its level, its count and the protocol.
    """

    loss: float  # mean negative log-likelihood per token, in nats
    perplexity: float  # exp(loss): token level
    num_tokens: int  # tokens scored (the start token is context, never scored)
    num_documents: int
    num_words: int
    num_bytes: int
    word_perplexity: float
    byte_perplexity: float
    bits_per_byte: float
    context_length: int
    stride: int
    add_start_token: bool
    document_log_likelihoods: list[float] = field(repr=False)  # summed log-prob (nats) of each scored document

    @property
    def protocol(self) -> str:
        """How the numbers were computed: window, stride, level and counts."""
        first_token = (
            "the first token of each document is scored after a prepended start token"
            if self.add_start_token
            else "the first token of each document is context only (not scored)"
        )
        rolling = " (lm-evaluation-harness loglikelihood_rolling)" if self.stride == self.context_length else ""
        return (
            f"corpus perplexity over {self.num_documents} document(s), {self.num_tokens} tokens: window "
            f"{self.context_length} tokens, stride {self.stride}{rolling}; every token scored once, those after the "
            f"first window with at least {self.context_length - self.stride + 1} token(s) of context; {first_token}"
        )

    def to_dict(self) -> dict:
        """The numbers and the protocol as a plain dict (per-document log-likelihoods left out)."""
        numbers = asdict(self)
        numbers.pop("document_log_likelihoods")
        return {**numbers, "protocol": self.protocol}

    def __str__(self) -> str:
        return "\n".join(
            [
                f"perplexity {self.perplexity:.4f} (token level; loss {self.loss:.4f} nats/token over "
                f"{self.num_tokens} tokens)",
                f"word_perplexity {self.word_perplexity:.4f} (per whitespace-separated word; {self.num_words} words)",
                f"byte_perplexity {self.byte_perplexity:.4f}, bits_per_byte {self.bits_per_byte:.4f} "
                f"(per UTF-8 byte; {self.num_bytes} bytes)",
                f"protocol: {self.protocol}",
            ]
        )


@dataclass(frozen=True)
class Window:
    """One forward pass: input `tokens[start:end]` predicts `tokens[start + 1 : end + 1]`; the last `num_scored`
    of those predictions are counted."""

    document: int
    start: int
    end: int
    num_scored: int


def exp_or_inf(value: float) -> float:
    """exp, but inf instead of OverflowError: an untrained model's word perplexity easily exceeds 1e308."""
    return math.exp(value) if value < math.log(sys.float_info.max) else math.inf


def rolling_windows(num_positions: int, context_length: int, stride: int, document: int = 0) -> list[Window]:
    """Windows over a sequence of `num_positions` tokens whose tokens 1..num_positions-1 are all scored once.

    Window ends advance by `stride`; each window reads the `context_length` tokens before its end.
    """
    last = num_positions - 1  # index of the last input position that still has a next token to predict
    windows, scored_until = [], 0
    end = min(context_length, last)
    while scored_until < last:
        windows.append(Window(document, max(0, end - context_length), end, end - scored_until))
        scored_until = end
        end = min(end + stride, last)
    return windows


def check_window(model: PreTrainedModel, context_length: int | None, stride: int | None) -> tuple[int, int]:
    """Resolve the defaults (the model's full context, stride = window) and reject settings that cannot work."""
    model_limit = model_context_length(model)
    if context_length is None:
        if model_limit is None:
            raise ValueError(
                "The model config has neither max_position_embeddings nor n_positions: pass context_length=..."
            )
        context_length = model_limit
    if context_length <= 0:
        raise ValueError(f"context_length must be positive, got {context_length}.")
    if model_limit is not None and context_length > model_limit:
        raise ValueError(
            f"context_length={context_length} is larger than the model's context (max_position_embeddings / "
            f"n_positions = {model_limit}). Use context_length <= {model_limit}, or leave it unset to use the "
            "model's full context."
        )
    stride = context_length if stride is None else stride
    if not 0 < stride <= context_length:
        raise ValueError(
            f"stride={stride} must be between 1 and context_length={context_length}: every token must be scored "
            "once. Use stride=context_length (the default, fastest) or a smaller stride for more context per token."
        )
    return context_length, stride


def start_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token put in front of each document: BOS if the tokenizer has one, else EOS (as lm-evaluation-harness)."""
    token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if token_id is None:
        raise ValueError(
            f"The tokenizer {type(tokenizer).__name__} has neither a BOS nor an EOS token to condition the first "
            "token on. Set tokenizer.eos_token, or pass add_start_token=False (the first token is then not scored)."
        )
    return token_id


@torch.no_grad()
def score_windows(
    model: PreTrainedModel,
    documents: list[list[int]],
    windows: list[Window],
    batch_size: int,
    show_progress: bool,
) -> list[float]:
    """Sum of log-probabilities of the scored tokens of each document, batching windows of any documents together."""
    log_likelihoods = [0.0] * len(documents)
    for first in tqdm(range(0, len(windows), batch_size), desc="perplexity", disable=not show_progress):
        stopping.check("during evaluation (perplexity)")
        batch = windows[first : first + batch_size]
        width = max(window.end - window.start for window in batch)
        # Right padding keeps positions 0..n-1 for real tokens; the pads come after them, so causal attention
        # never lets a real token see one, and their targets are ignored.
        input_ids = torch.zeros(len(batch), width, dtype=torch.long)
        targets = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros(len(batch), width, dtype=torch.long)
        for row, window in enumerate(batch):
            tokens = documents[window.document]
            length = window.end - window.start
            input_ids[row, :length] = torch.tensor(tokens[window.start : window.end])
            attention_mask[row, :length] = 1
            scored = slice(length - window.num_scored, length)
            targets[row, scored] = torch.tensor(tokens[window.start + 1 : window.end + 1][scored])

        # Without padding, no mask: attention then takes its causal fast path instead of a materialised mask.
        mask = attention_mask.to(model.device) if not attention_mask.all() else None
        logits = model(input_ids=input_ids.to(model.device), attention_mask=mask).logits
        logits = logits[:, -width:]  # a soft prompt (prompt tuning) adds positions before the input
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # half precision -> fp32, fp64 stays
        token_nll = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), targets.to(logits.device).flatten(), ignore_index=IGNORE_INDEX, reduction="none"
        ).view(len(batch), width)
        for window, window_nll in zip(batch, token_nll.double().sum(dim=1).tolist()):
            log_likelihoods[window.document] -= window_nll
    return log_likelihoods


def perplexity_of_texts(
    model: ModelOrPath,
    tokenizer: TokenizerOrPath,
    texts: Sequence[str],
    *,
    context_length: int | None = None,
    stride: int | None = None,
    batch_size: int = 4,
    add_start_token: bool = True,
    show_progress: bool = True,
) -> PerplexityResult:
    """Corpus perplexity of `model` on `texts`, each text one document (see the module docstring for the protocol).

    Args:
        model: a causal LM, or the folder / Hub id to load it from (with its tokenizer).
        tokenizer: the model's tokenizer; `None` when `model` is a folder that holds one.
        texts: the documents. Empty strings are skipped (they have no token to score).
        context_length: window length in tokens; defaults to the model's `max_position_embeddings`.
        stride: how far each window moves; defaults to `context_length` (lm-evaluation-harness). Smaller strides
            give each token more context and cost more forward passes.
        batch_size: windows per forward pass.
        add_start_token: condition the first token of each document on BOS (else EOS) and score it.
        show_progress: show a tqdm bar over the batches.
    """
    model, tokenizer = load_model_and_tokenizer(model, tokenizer)
    context_length, stride = check_window(model, context_length, stride)
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    window = dict(context_length=context_length, stride=stride, add_start_token=add_start_token)
    shard = Shard(batch_size=batch_size, show_progress=show_progress)
    result, _ = perplexity_from_records(texts, window_records(model, tokenizer, texts, shard, **window), **window)
    return result


def document_windows(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], context_length: int, stride: int, add_start_token: bool
) -> tuple[list[list[int]], list[Window]]:
    """Token ids of every non-empty text (after the start token) and the windows that score each token once."""
    prefix = [start_token_id(tokenizer)] if add_start_token else []
    documents, windows = [], []
    for text in texts:
        if not text:
            continue
        tokens = prefix + tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        windows += rolling_windows(len(tokens), context_length, stride, document=len(documents))
        documents.append(tokens)
    if not windows:
        raise ValueError(
            "No text to score: the input is empty, or every text is empty or a single token without a start token. "
            "Pass non-empty texts (or keep add_start_token=True so one-token texts are scored)."
        )
    return documents, windows


def corpus_result(
    originals: Sequence[str],
    log_likelihoods: list[float],
    num_tokens: int,
    context_length: int,
    stride: int,
    add_start_token: bool,
) -> PerplexityResult:
    """Corpus-level numbers from per-document log-likelihood sums: token, word and byte levels."""
    total_nll = -sum(log_likelihoods)
    num_words = sum(len(re.split(r"\s+", text)) for text in originals)
    num_bytes = sum(len(text.encode("utf-8")) for text in originals)
    return PerplexityResult(
        loss=total_nll / num_tokens,
        perplexity=exp_or_inf(total_nll / num_tokens),
        num_tokens=num_tokens,
        num_documents=len(originals),
        num_words=num_words,
        num_bytes=num_bytes,
        word_perplexity=exp_or_inf(total_nll / num_words),
        byte_perplexity=exp_or_inf(total_nll / num_bytes),
        bits_per_byte=total_nll / num_bytes / math.log(2),
        context_length=context_length,
        stride=stride,
        add_start_token=add_start_token,
        document_log_likelihoods=log_likelihoods,
    )


def window_records(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    shard: Shard,
    *,
    context_length: int,
    stride: int,
    add_start_token: bool = True,
) -> list[dict]:
    """This process's share of the windows, scored: one record per window {"window", "document", "log_likelihood",
    "num_tokens"}, in window order. Windows, not documents, are shared out, so a single-document corpus (a whole
    WikiText file) is split too."""
    documents, windows = document_windows(tokenizer, texts, context_length, stride, add_start_token)
    share = shard.share(len(windows))
    mine = windows[share.start : share.stop]
    # Each window as its own "document" makes score_windows return per-window sums (same batches, same numbers).
    own = [Window(index, window.start, window.end, window.num_scored) for index, window in enumerate(mine)]
    model.eval()
    log_likelihoods = score_windows(
        model, [documents[w.document] for w in mine], own, shard.batch_size, shard.show_progress
    )
    return [
        {"window": index, "document": window.document, "log_likelihood": ll, "num_tokens": window.num_scored}
        for index, window, ll in zip(share, mine, log_likelihoods)
    ]


def perplexity_from_records(
    texts: Sequence[str], records: list[dict], *, context_length: int, stride: int, add_start_token: bool = True
) -> tuple[PerplexityResult, list[dict]]:
    """Corpus perplexity from the gathered window records, plus one record per document.

    The per-document sums are accumulated window by window in the single-process order, so any number of
    processes gives the one-process result bit for bit."""
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


TABLE_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")  # other files are read as plain text


def text_file_documents(path: Path, sample_by: str) -> list[str]:
    """A plain text file (WikiText's `wiki.test.raw`, `.txt`, ...) as documents, read exactly as it is."""
    text = read_text_file(path)
    if not text:
        raise ValueError(f"{path} is empty: there is nothing to score. Pass a file that contains text.")
    separators = {"document": None, "paragraph": "\n\n", "line": "\n"}
    if sample_by not in separators:
        raise ValueError(f"perplexity_sample_by={sample_by!r}: use one of {', '.join(separators)}.")
    return [text] if separators[sample_by] is None else text.split(separators[sample_by])


@dataclass
class PerplexityArguments:
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


class PerplexityTask(Task):
    """Corpus perplexity of a text file, a data file's column, or the arithmetic test problems as texts."""

    name = "perplexity"
    arguments = PerplexityArguments
    headline = (("perplexity", "lower"), ("word_perplexity", "lower"), ("bits_per_byte", "lower"))

    def load(self) -> TaskData:
        args = self.args
        source = Path(args.perplexity_data)
        if source.is_file() and source.suffix not in TABLE_SUFFIXES:
            texts = text_file_documents(source, args.perplexity_sample_by)
        else:
            raw = task_source(
                args,
                args.perplexity_data,
                "test",
                args.synthetic_size,
                config_name=args.perplexity_dataset_config,
                text_sample_by=args.perplexity_sample_by,
            )
            dataset = pick_split(raw, args.perplexity_split, args.perplexity_data)
            require_columns(dataset, [args.perplexity_text_column], args.perplexity_data)
            require_text(dataset, [args.perplexity_text_column], args.perplexity_data)
            texts = dataset[args.perplexity_text_column]
        texts = [text for text in texts if text][: args.limit]
        if not texts:
            raise ValueError(
                f"{args.perplexity_data} holds no text in column {args.perplexity_text_column!r}: every row is empty."
            )
        return TaskData(args.perplexity_data, texts)

    def window(self, model: PreTrainedModel) -> dict:
        context_length, stride = check_window(model, self.args.context_length, self.args.stride)
        return dict(context_length=context_length, stride=stride, add_start_token=self.args.add_start_token)

    def records(self, model, tokenizer, data: TaskData, shard: Shard) -> list[dict]:
        return window_records(model, tokenizer, data.items, shard, **self.window(model))

    def score(self, model, data: TaskData, records: list[dict]) -> TaskResult:
        result, per_document = perplexity_from_records(data.items, records, **self.window(model))
        return TaskResult(result, result.protocol, per_document)


def perplexity_of_dataset(
    model: ModelOrPath,
    tokenizer: TokenizerOrPath,
    dataset: Dataset,
    *,
    text_column: str = "text",
    **options,
) -> PerplexityResult:
    """Corpus perplexity on one column of a `datasets.Dataset`, each row a document; options as in
    `perplexity_of_texts`."""
    if text_column not in dataset.column_names:
        raise ValueError(
            f"The dataset has no column {text_column!r} (columns: {dataset.column_names}). "
            "Pass text_column=<the column holding the text>."
        )
    return perplexity_of_texts(model, tokenizer, dataset[text_column], **options)


def perplexity_of_file(
    model: ModelOrPath,
    tokenizer: TokenizerOrPath,
    path: str | os.PathLike,
    **options,
) -> PerplexityResult:
    """Corpus perplexity of a UTF-8 text file read as one document (e.g. WikiText-2 `wiki.test.raw`); options as in
    `perplexity_of_texts`."""
    text = read_text_file(path)
    if not text:
        raise ValueError(f"{path} is empty: there is nothing to score. Pass a file that contains text.")
    return perplexity_of_texts(model, tokenizer, [text], **options)


__all__ = [
    "PerplexityArguments",
    "PerplexityResult",
    "PerplexityTask",
    "perplexity_from_records",
    "perplexity_of_texts",
    "perplexity_of_dataset",
    "perplexity_of_file",
    "rolling_windows",
    "window_records",
]
