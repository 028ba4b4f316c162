"""Where training data comes from: local files, Hub datasets, or the built-in arithmetic task.

Everything ends as a `datasets.DatasetDict` with a "train" and a "validation" split (or, streamed, an
`IterableDatasetDict` read as it is tokenized), checked for emptiness and for the columns the recipe needs, with
errors that name the file, line or column at fault.
"""

import codecs
import gzip
import json
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import datasets
import pyarrow
from huggingface_hub import HfApi

from .._compat import DatasetGenerationError
from ..tasks.arithmetic import arithmetic_source

SYNTHETIC_NAME = "arithmetic"  # the built-in task's name as a data source, the one place a job's data names it
# WikiText's files end in .raw; any of these may also be gzip-compressed (name.jsonl.gz), as hh-rlhf's are.
FILE_BUILDERS = {
    ".txt": "text",
    ".raw": "text",
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".parquet": "parquet",
}
TEXT_SUFFIXES = (".txt", ".raw", ".csv")  # .json and .jsonl are checked line by line


def data_suffix(path: Path) -> str:
    """The suffix that says the format: `.jsonl` for both `pairs.jsonl` and `pairs.jsonl.gz`."""
    return path.suffixes[-2] if path.suffix == ".gz" and len(path.suffixes) > 1 else path.suffix


def open_binary(path: str | Path):
    return gzip.open(path, "rb") if Path(path).suffix == ".gz" else open(path, "rb")


def check_utf8(path: str | Path, chunk_size: int = 1 << 22) -> None:
    """Raise a ValueError naming the file and the byte offset where it stops being UTF-8 text."""
    decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
    fix = f"Convert it, e.g. `iconv -f latin1 -t utf-8 {Path(path).name}`, or pass a UTF-8 file."
    with open_binary(path) as handle:
        while chunk := handle.read(chunk_size):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"{path}: not UTF-8 text at byte {offset + error.start} ({error.reason}). {fix}"
                ) from None
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ValueError(f"{path}: ends inside a UTF-8 character (cut short, or not UTF-8). {fix}") from None


def read_text_file(path: str | Path) -> str:
    """A UTF-8 text file's contents, with an error that names the file and byte when it is not UTF-8."""
    check_utf8(path)
    return Path(path).read_text(encoding="utf-8")


def check_jsonl(path: Path) -> None:
    """Parse every line, so a malformed one is reported by file and line instead of deep inside pyarrow."""
    check_utf8(path)
    rows = 0
    with open_binary(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            rows += 1
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{path}:{number}: malformed JSON line ({error.msg} at column {error.colno})."
                ) from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object per line, got {type(row).__name__}.")
    if not rows:
        raise ValueError(f"{path} holds no rows: expected one JSON object per line.")


def data_file_paths(path: Path) -> list[Path]:
    """The data files a local file or folder stands for: itself, or every data file under it, in a fixed order."""
    return sorted(p for p in path.rglob("*") if data_suffix(p) in FILE_BUILDERS) if path.is_dir() else [path]


def _data_files(path: Path) -> tuple[str, list[str]]:
    files = data_file_paths(path)
    if not files:
        raise ValueError(f"{path} holds no data files ({', '.join(FILE_BUILDERS)}, optionally .gz).")
    suffixes = {data_suffix(p) for p in files}
    builders = {FILE_BUILDERS.get(s) for s in suffixes}
    if None in builders or len(builders) != 1:
        raise ValueError(
            f"Cannot read {path}: expected files of one kind among {', '.join(FILE_BUILDERS)} (optionally .gz), "
            f"found {sorted(suffixes)}."
        )
    for file in files:
        if file.stat().st_size == 0:
            raise ValueError(f"{file} is empty.")
        suffix = data_suffix(file)
        if suffix == ".jsonl" or (suffix == ".json" and _looks_like_json_lines(file)):
            check_jsonl(file)
        elif suffix in TEXT_SUFFIXES:
            check_utf8(file)
    return builders.pop(), [str(p) for p in files]


def _looks_like_json_lines(path: Path) -> bool:
    check_utf8(path)
    with open_binary(path) as handle:
        return not handle.read(64).lstrip().startswith(b"[")


def load_raw(
    source: str,
    *,
    config_name: str | None = None,
    text_sample_by: str = "document",
    synthetic_sizes: Mapping[str, int] | None = None,
    synthetic_difficulty: int | Iterable[int] = (1, 2),
    streaming: bool = False,
) -> datasets.DatasetDict | datasets.IterableDatasetDict:
    """Load `source` as it is: a local file or folder, 'arithmetic', or a Hub dataset id.

    'arithmetic' is the built-in task (`toolkit.tasks.arithmetic.arithmetic_source`): the first `synthetic_sizes`
    problems of each split, at `synthetic_difficulty`, with a column for every job's use, so each job reads it by
    its columns as it reads a file. With `streaming`, files and Hub datasets are opened with the same builders as
    iterable datasets, whose rows are read as they are consumed and never stored in datasets' Arrow cache."""
    if source == SYNTHETIC_NAME:
        if streaming:
            raise ValueError(
                f"--dataset {SYNTHETIC_NAME} is generated in memory and cannot be streamed: drop --dataset_streaming."
            )
        sizes = synthetic_sizes or {"train": 2000, "validation": 200, "test": 200}
        return arithmetic_source(sizes, synthetic_difficulty)
    path = Path(source).expanduser()
    if path.exists():
        try:
            builder, files = _data_files(path)
            kwargs = {"sample_by": text_sample_by} if builder == "text" else {}
            return datasets.load_dataset(builder, data_files={"train": files}, streaming=streaming, **kwargs)
        except (EOFError, OSError, zlib.error, pyarrow.ArrowException, DatasetGenerationError) as error:
            cause = error.__cause__ or error  # datasets wraps the reader's own error
            raise ValueError(
                f"Could not read {source} ({type(cause).__name__}: {str(cause).splitlines()[0]}): a file is cut "
                "short or damaged, or is not what its name says (.gz: gzip; .parquet: Parquet)."
            ) from error
    if data_suffix(Path(source)) in FILE_BUILDERS or source.startswith((".", "/", "~")):
        raise ValueError(f"Data file {source!r} does not exist.")
    return datasets.load_dataset(source, config_name, streaming=streaming)


def describe_source(source: str) -> str:
    """A data source as a model card names it."""
    builtin = source == SYNTHETIC_NAME
    return f"{source} (finetune-toolkit's built-in synthetic GSM8K-style problems)" if builtin else source


def source_identity(source: str) -> dict:
    """What the rows `load_raw(source)` gives depend on, for naming files made from them: a local file or folder's
    data files with their sizes and modification and change times (an edit that keeps the size and sets the old
    modification time back still sets the change time, which only the kernel writes), or a Hub dataset's id and
    current revision."""
    path = Path(source).expanduser()
    if path.exists():
        stats = [(file, file.stat()) for file in data_file_paths(path)]
        return {"files": [[str(file.resolve()), s.st_size, s.st_mtime_ns, s.st_ctime_ns] for file, s in stats]}
    return {"hub_dataset": source, "revision": HfApi().dataset_info(source).sha}


def split_names(
    raw: datasets.DatasetDict | datasets.IterableDatasetDict, train_split: str, validation_split: str | None
) -> tuple[str, str | None]:
    """The training split's name and the validation split's: the one asked for, else 'validation', 'valid' or
    'test' when the data has one, else None."""
    if train_split not in raw:
        raise ValueError(f"Split {train_split!r} not found; the data has splits {list(raw)}.")
    if validation_split is None:
        return train_split, next((name for name in ("validation", "valid", "test") if name in raw), None)
    if validation_split not in raw:
        raise ValueError(f"Split {validation_split!r} not found; the data has splits {list(raw)}.")
    return train_split, validation_split


def train_validation_splits(
    raw: datasets.DatasetDict,
    *,
    train_split: str = "train",
    validation_split: str | None = None,
    validation_fraction: float = 0.1,
) -> datasets.DatasetDict:
    """Pick the train and validation splits, carving the validation split out of train when there is none.

    The carved split is a fixed shuffle (seed 0), so changing a run's training seed never moves rows between the
    training and the held-out data. A single-row training set (one document, e.g. Tiny Shakespeare) cannot be split
    by rows: it is returned with no validation split, and `pack_for_language_modeling` holds out the tail of the
    token stream instead."""
    train_split, validation_split = split_names(raw, train_split, validation_split)
    train = raw[train_split]
    if len(train) == 0:
        raise ValueError(f"The {train_split!r} split is empty.")
    if validation_split is not None:
        return datasets.DatasetDict(train=train, validation=raw[validation_split])
    if len(train) < 2 or validation_fraction <= 0:
        return datasets.DatasetDict(train=train)
    held_out = train.train_test_split(test_size=validation_fraction, seed=0)
    return datasets.DatasetDict(train=held_out["train"], validation=held_out["test"])


def require_columns(dataset: datasets.Dataset | datasets.IterableDataset, columns: list[str], source: str) -> None:
    available = dataset.column_names
    if available is None:  # a streamed dataset whose builder learns its columns from the data: its first row
        available = list(next(iter(dataset), {}))
    missing = [c for c in columns if c not in available]
    if missing:
        raise ValueError(
            f"{source}: column(s) {missing} not found; available columns: {available}. "
            "Name the right ones with --text_column / --prompt_column / --completion_column."
        )


def require_text(dataset: datasets.Dataset, columns: list[str], source: str) -> None:
    """Every value of the columns must be a string: a number, a list or a null names its column and row."""
    for column in columns:
        feature = dataset.features[column]
        if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
            raise ValueError(
                f"{source}: column {column!r} holds {feature} values, not text. Name a text column, or convert it."
            )
        if dataset.data.column(column).null_count == 0:
            continue  # Arrow counts nulls as it stores them: no need to read (and page in) the text itself
        for start in range(0, len(dataset), 10_000):
            require_text_values(dataset[start : start + 10_000][column], column, source, first_row=start)


def require_text_values(values: list, column: str, source: str, *, first_row: int = 0) -> None:
    """Every value must be a string (rows counted from `first_row`): a null or a non-text value names its row."""
    for row, value in enumerate(values, start=first_row):
        if value is None:
            raise ValueError(f"{source}: row {row} has no {column!r} (null). Drop or fill the rows without text.")
        if not isinstance(value, str):
            raise ValueError(
                f"{source}: row {row} of column {column!r} holds {type(value).__name__} {value!r}, not text. "
                "Name a text column, or convert it."
            )


def select_first(dataset: datasets.Dataset, limit: int | None) -> datasets.Dataset:
    return dataset.select(range(min(limit, len(dataset)))) if limit is not None else dataset
