"""Corpus BLEU and chrF with sacreBLEU, reported with their signatures so scores are comparable across papers.

sacreBLEU scores detokenized text with its own tokenization (`13a` by default, as WMT's `mteval-v13a.pl`), so
never pre-tokenize hypotheses or references. Scores are on the 0-100 scale.
"""

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from sacrebleu.metrics import BLEU, CHRF

from ..data import SYNTHETIC_NAME, read_text_file, require_columns, require_text
from ..generation import ModelOrPath, TokenizerOrPath, load_model_and_tokenizer
from .gsm8k import LEGACY_STOP_STRINGS
from .task import (
    Shard,
    Task,
    TaskData,
    TaskResult,
    gathered_outputs,
    generation_records,
    pick_split,
    task_source,
)

References = Sequence[str] | Sequence[Sequence[str]]


@dataclass(frozen=True)
class BleuResult:
    """Corpus BLEU and chrF of one system; `str(result)` prints each score with its sacreBLEU signature."""

    bleu: float  # 0-100
    precisions: list[float]  # 1- to 4-gram precisions, 0-100
    brevity_penalty: float
    hypothesis_length: int  # tokens after sacreBLEU's tokenization
    reference_length: int
    chrf: float  # 0-100
    num_segments: int
    bleu_signature: str
    chrf_signature: str

    def to_dict(self) -> dict:
        """The numbers and both signatures as a plain dict."""
        return asdict(self)

    def __str__(self) -> str:
        precisions = "/".join(f"{precision:.1f}" for precision in self.precisions)
        return (
            f"BLEU {self.bleu:.2f} ({precisions}, BP {self.brevity_penalty:.3f}, hyp_len {self.hypothesis_length}, "
            f"ref_len {self.reference_length}; {self.num_segments} segments; {self.bleu_signature})\n"
            f"chrF {self.chrf:.2f} ({self.num_segments} segments; {self.chrf_signature})"
        )


def reference_streams(references: References, num_hypotheses: int) -> list[list[str | None]]:
    """Per-hypothesis references -> sacreBLEU's reference streams (stream k holds every segment's k-th reference).

    A hypothesis with fewer references than others gets `None` in the missing streams, which sacreBLEU skips.
    """
    if len(references) != num_hypotheses:
        raise ValueError(
            f"{num_hypotheses} hypotheses but {len(references)} references: give one reference, or one list of "
            "references, per hypothesis, in the same order."
        )
    per_segment = [[refs] if isinstance(refs, str) else list(refs) for refs in references]
    if any(not refs for refs in per_segment):
        raise ValueError("Every hypothesis needs at least one reference; some have an empty list.")
    num_streams = max(len(refs) for refs in per_segment)
    return [[refs[k] if k < len(refs) else None for refs in per_segment] for k in range(num_streams)]


def bleu_score(
    hypotheses: Sequence[str],
    references: References,
    *,
    tokenize: str = "13a",
    lowercase: bool = False,
    smooth_method: str = "exp",
    chrf_word_order: int = 0,
) -> BleuResult:
    """Corpus BLEU and chrF of `hypotheses` against `references`.

    Args:
        hypotheses: one detokenized segment per item.
        references: one reference per hypothesis (a string), or a list of references per hypothesis.
        tokenize: sacreBLEU tokenizer: "13a" (default, WMT), "intl", "char", "zh", or another sacreBLEU name.
        lowercase: case-insensitive BLEU.
        smooth_method: sacreBLEU smoothing ("exp", "floor", "add-k", "none").
        chrf_word_order: 0 for chrF, 2 for chrF++.
    """
    if not hypotheses:
        raise ValueError("No hypotheses to score: pass at least one segment.")
    if tokenize not in BLEU.TOKENIZERS:
        raise ValueError(f"tokenize={tokenize!r} is not a sacreBLEU tokenizer; use one of {sorted(BLEU.TOKENIZERS)}.")
    streams = reference_streams(references, len(hypotheses))
    bleu = BLEU(tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method)
    chrf = CHRF(word_order=chrf_word_order, lowercase=lowercase)
    bleu_result = bleu.corpus_score(list(hypotheses), streams)
    chrf_result = chrf.corpus_score(list(hypotheses), streams)
    return BleuResult(
        bleu=bleu_result.score,
        precisions=list(bleu_result.precisions),
        brevity_penalty=bleu_result.bp,
        hypothesis_length=bleu_result.sys_len,
        reference_length=bleu_result.ref_len,
        chrf=chrf_result.score,
        num_segments=len(hypotheses),
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
    )


def read_segments(path: str | os.PathLike) -> list[str]:
    """One segment per line of a UTF-8 file (the final newline does not start an extra segment)."""
    text = read_text_file(path)
    if not text:
        raise ValueError(f"{path} is empty: a hypothesis or reference file needs one segment per line.")
    return text.removesuffix("\n").split("\n")


def bleu_score_files(
    hypothesis_file: str | os.PathLike,
    reference_files: str | os.PathLike | Sequence[str | os.PathLike],
    **options,
) -> BleuResult:
    """Corpus BLEU and chrF of a hypothesis file against one or more reference files aligned line by line;
    options as in `bleu_score`."""
    if isinstance(reference_files, (str, os.PathLike)):
        reference_files = [reference_files]
    hypotheses = read_segments(hypothesis_file)
    streams = []
    for reference_file in reference_files:
        references = read_segments(reference_file)
        if len(references) != len(hypotheses):
            raise ValueError(
                f"The hypothesis file {hypothesis_file} has {len(hypotheses)} lines but the reference file "
                f"{reference_file} has {len(references)} lines; the files must be aligned line by line."
            )
        streams.append(references)
    return bleu_score(hypotheses, [list(segment_refs) for segment_refs in zip(*streams)], **options)


def generate_and_score_bleu(
    model: ModelOrPath,
    tokenizer: TokenizerOrPath,
    prompts: Sequence[str],
    references: References,
    *,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    stop_strings: Sequence[str] = ("\n",),
    show_progress: bool = True,
    **options,
) -> tuple[BleuResult, list[str]]:
    """Translate `prompts` greedily (batched, left-padded), then score the outputs; returns (result, hypotheses).

    Each output is cut at the first stop string (a newline by default: one segment per line) and stripped of
    surrounding whitespace. Remaining options are those of `bleu_score`.
    """
    if len(prompts) != len(references):
        raise ValueError(
            f"{len(prompts)} prompts but {len(references)} references: give one reference (or one list of "
            "references) per prompt."
        )
    model, tokenizer = load_model_and_tokenizer(model, tokenizer)
    shard = Shard(batch_size=batch_size, show_progress=show_progress)
    records = generation_records(
        model, tokenizer, prompts, shard, max_new_tokens=max_new_tokens, stop_strings=stop_strings
    )
    hypotheses = [output.strip() for output in gathered_outputs(records, len(prompts))]
    return bleu_score(hypotheses, references, **options), hypotheses


def generation_protocol(result: BleuResult, max_new_tokens: int, stop_strings: Sequence[str]) -> str:
    return (
        f"corpus BLEU and chrF over {result.num_segments} segments: greedy outputs, at most {max_new_tokens} new "
        f"tokens, cut at {list(stop_strings)} or EOS, stripped; BLEU {result.bleu_signature}; "
        f"chrF {result.chrf_signature}"
    )


@dataclass
class BleuArguments:
    bleu_data: str = field(
        default=SYNTHETIC_NAME,
        metadata={
            "help": "BLEU prompts: a data file with prompt and reference columns, 'arithmetic' (prompt = 'Question: "
            "q\\nAnswer:', reference = the worked solution), or, with bleu_reference_files, a text file of prompts."
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


class BleuTask(Task):
    """Greedy outputs for prompts against references: the arithmetic task (question -> worked solution), a
    prompt/reference data file, or line-aligned text files."""

    name = "bleu"
    arguments = BleuArguments
    headline = (("bleu", "higher"), ("chrf", "higher"))

    @property
    def stop_strings(self) -> list[str]:
        if self.args.bleu_stop_strings is not None:
            return self.args.bleu_stop_strings
        return ["\n"] if self.args.bleu_reference_files else list(LEGACY_STOP_STRINGS)

    def load(self) -> TaskData:
        args = self.args
        if args.bleu_reference_files:
            prompts = read_segments(args.bleu_data)
            streams = [read_segments(path) for path in args.bleu_reference_files]
            for path, stream in zip(args.bleu_reference_files, streams):
                if len(stream) != len(prompts):
                    raise ValueError(
                        f"The prompt file {args.bleu_data} has {len(prompts)} lines but the reference file {path} "
                        f"has {len(stream)}; they must be aligned line by line."
                    )
            references = [list(segment) for segment in zip(*streams)]
        else:
            dataset = pick_split(task_source(args, args.bleu_data, "test", args.synthetic_size), None, args.bleu_data)
            require_columns(dataset, [args.bleu_prompt_column, args.bleu_reference_column], args.bleu_data)
            require_text(dataset, [args.bleu_prompt_column], args.bleu_data)
            prompts, references = dataset[args.bleu_prompt_column], dataset[args.bleu_reference_column]
        if not prompts:
            raise ValueError(f"{args.bleu_data} holds no prompts.")
        return TaskData(args.bleu_data, list(prompts[: args.limit]), list(references[: args.limit]))

    def records(self, model, tokenizer, data: TaskData, shard: Shard) -> list[dict]:
        max_new_tokens = self.args.bleu_max_new_tokens
        return generation_records(
            model, tokenizer, data.items, shard, max_new_tokens=max_new_tokens, stop_strings=self.stop_strings
        )

    def score(self, model, data: TaskData, records: list[dict]) -> TaskResult:
        hypotheses = [output.strip() for output in gathered_outputs(records, len(data.items))]
        result = bleu_score(hypotheses, data.golds, tokenize=self.args.bleu_tokenize)
        per_segment = [
            {"index": index, "prompt": prompt, "hypothesis": hypothesis, "references": references}
            for index, (prompt, hypothesis, references) in enumerate(zip(data.items, hypotheses, data.golds))
        ]
        protocol = generation_protocol(result, self.args.bleu_max_new_tokens, self.stop_strings)
        return TaskResult(result, protocol, per_segment)


__all__ = [
    "BleuArguments",
    "BleuResult",
    "BleuTask",
    "bleu_score",
    "bleu_score_files",
    "generate_and_score_bleu",
    "read_segments",
]
