"""Tokenization and packing for language modeling: documents become one flat token stream read as fixed blocks.

The stream is a 1-D integer array (2 or 4 bytes a token, never Python lists). A corpus read from files or the Hub is
tokenized once (`datasets.map`, cached) and its stream written once to a flat token file beside datasets' cache,
named by the tokenized data's fingerprint (corpus, tokenizer, settings) and read memory-mapped, as nanoGPT's
`train.bin` is: memory stays flat at any corpus size, and later runs and every DDP rank reuse the file. A streamed
corpus goes straight from its rows into such a file, without datasets' cache. Blocks are slices of the stream made
when an item is read (every `stride` tokens, or at seeded random offsets), and the labels are the inputs themselves
(the model shifts them), so no token is stored twice."""

import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from .._compat import dataset_fingerprint, datasets_cache_folder
from ..runs import disk_full
from .sources import require_text_values

# Longer texts are tokenized in pieces: a tokenizer's working memory is ~100x the text (a 10 MB line took 3.7 GB).
LONG_TEXT = 1 << 16  # characters
PIECES_PER_CALL = 4  # pieces tokenized together (in parallel by fast tokenizers)
# A piece ends before a single space between two non-spaces, where pre-tokenizers (GPT-2's regex, whitespace, one
# character per token) always start a new token, so the ids are those of the whole text (tested).
PIECE_BOUNDARY = re.compile(r"(?<=\S) (?=\S)")
UNBROKEN_TEXT = (
    f"A text runs over {LONG_TEXT:,} characters without a space between two words (CJK, minified JSON, base64, DNA "
    "on one line): it is cut there anyway, to bound memory, and a token that spans such a cut becomes two."
)


def text_pieces(text: str, size: int = LONG_TEXT) -> Iterator[str]:
    """`text` in pieces of at least `size` characters (the last may be shorter), cut at the first `PIECE_BOUNDARY`
    after `size`; where none comes within `LONG_TEXT` more characters, cut there (with a warning: a token may be
    split at such a cut). So no piece is longer than `size` + `LONG_TEXT`."""
    start = 0
    while len(text) - start > size:
        boundary = PIECE_BOUNDARY.search(text, start + size, start + size + LONG_TEXT)
        if boundary is None and len(text) - start <= size + LONG_TEXT:
            break
        if boundary is None:
            warnings.warn(UNBROKEN_TEXT, stacklevel=2)
        cut = start + size + LONG_TEXT if boundary is None else boundary.start()
        yield text[start:cut]
        start = cut
    yield text[start:]


def encode_documents(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], *, append_eos: bool = True
) -> list[np.ndarray]:
    """Each text's token ids (`id_dtype` of the vocabulary), closed by EOS so documents stay apart; texts longer than
    `LONG_TEXT` characters are tokenized in pieces (the same ids)."""
    eos = [tokenizer.eos_token_id] if append_eos and tokenizer.eos_token_id is not None else []
    dtype = id_dtype(len(tokenizer))

    def encode(pieces: list[str]) -> list[list[int]]:
        return tokenizer(pieces, add_special_tokens=False, return_attention_mask=False, verbose=False)["input_ids"]

    def encode_long(text: str) -> np.ndarray:
        pieces, parts = list(text_pieces(text)), []
        for first in range(0, len(pieces), PIECES_PER_CALL):
            parts += [np.array(ids, dtype=dtype) for ids in encode(pieces[first : first + PIECES_PER_CALL])]
        return np.concatenate([*parts, np.array(eos, dtype=dtype)])

    short = [index for index, text in enumerate(texts) if len(text) <= LONG_TEXT]
    encoded = dict(zip(short, encode([texts[index] for index in short]) if short else []))
    return [
        np.array(encoded[index] + eos, dtype=dtype) if index in encoded else encode_long(text)
        for index, text in enumerate(texts)
    ]


def tokenize_texts(
    dataset: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    text_column: str,
    *,
    num_proc: int | None = None,
    append_eos: bool = True,
) -> datasets.Dataset:
    """Token ids per row (batched, cached by `datasets`), each document closed by EOS (`encode_documents`)."""

    def tokenize(batch):
        return {"input_ids": encode_documents(tokenizer, batch[text_column], append_eos=append_eos)}

    return dataset.map(
        tokenize,
        batched=True,
        num_proc=num_proc,
        remove_columns=dataset.column_names,
        desc="Tokenizing",
    )


def id_dtype(vocabulary_size: int) -> type[np.integer]:
    """The smallest integer type for token ids: uint16 when the vocabulary fits (GPT-2's 50,257 do), else int32."""
    return np.uint16 if vocabulary_size <= 2**16 else np.int32


TOKEN_FILE_PREFIX = "tokens-"
ROWS_PER_WRITE = 10_000
STREAMED_TOKEN_FILES = "toolkit-token-files"  # the folder of streamed corpora's token files in datasets' cache
# Rows tokenized together when streaming, as datasets.map batches: a batch's ids are Python lists until written.
ROWS_PER_STREAMED_BATCH = 1000


def token_stream(tokenized: datasets.Dataset) -> np.ndarray:
    """Every row's `input_ids` in order as one flat array (uint16 when every id fits, else int32), never built as
    Python lists. Rows in datasets' cache (data from files or the Hub) give the memory-mapped token file
    (`token_file`); rows held in memory give an in-memory array."""
    if tokenized.cache_files:
        return token_file(tokenized)
    column = tokenized.with_format("arrow")[:].column("input_ids")
    pieces = [chunk.flatten().to_numpy(zero_copy_only=False) for chunk in column.chunks]
    stream = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint16)
    return stream.astype(id_dtype(int(stream.max()) + 1 if len(stream) else 0), copy=False)


def token_file(tokenized: datasets.Dataset) -> np.ndarray:
    """The stream of a cached tokenized dataset as the memory-mapped `tokens-<fingerprint>.bin` in its cache folder
    (see `memory_mapped_token_file`), written on first use in batches of rows (constant memory) and reused after."""
    folder = Path(tokenized.cache_files[0]["filename"]).parent
    value_type = tokenized.features["input_ids"].feature.dtype  # what tokenize_texts stored: uint16 or int32

    def batches() -> Iterator[tuple[np.ndarray, int]]:
        for batch in tokenized.with_format("arrow").iter(batch_size=ROWS_PER_WRITE):
            yield batch.column("input_ids").combine_chunks().flatten().to_numpy(zero_copy_only=False), len(batch)

    return memory_mapped_token_file(
        folder / f"{TOKEN_FILE_PREFIX}{dataset_fingerprint(tokenized)}.bin",
        np.uint16 if value_type == "uint16" else np.int32,
        batches,
    )


def memory_mapped_token_file(
    path: Path, dtype: type[np.integer], batches: Callable[[], Iterator[tuple[np.ndarray, int]]]
) -> np.ndarray:
    """The flat token file at `path` as a read-only memory map, written first when `<same>.json` (its dtype, token
    and row counts) is missing: `batches()` gives each batch's ids and row count, in order. The file is written under
    a temporary name and renamed, and its record last, so a half-written file is never read (it is rewritten), nor a
    file deleted or cut short since (its size no longer matches the record)."""
    meta_path = path.with_suffix(".json")
    if meta_path.exists() and not token_file_matches(path, meta_path):
        warnings.warn(f"The token file {path} is missing, cut short or damaged: writing it again.", stacklevel=2)
        meta_path.unlink()
    if not meta_path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".partial-{os.getpid()}")
        tokens = rows = 0
        try:
            with open(partial, "wb") as handle:
                for ids, count in batches():
                    handle.write(ids.astype(dtype, copy=False).tobytes())
                    tokens, rows = tokens + len(ids), rows + count
        except BaseException as error:
            partial.unlink(missing_ok=True)  # a file cut short is never left behind
            advice = "Free space, or set HF_DATASETS_CACHE to a folder on a larger disk."
            if (full := disk_full(path.parent, error, advice)) is not None:
                raise full from error
            raise
        os.replace(partial, path)
        meta = {"dtype": np.dtype(dtype).name, "tokens": tokens, "rows": rows, "fingerprint": path.stem}
        meta_partial = meta_path.with_suffix(f".partial-{os.getpid()}")
        meta_partial.write_text(json.dumps(meta))
        os.replace(meta_partial, meta_path)
    meta = json.loads(meta_path.read_text())
    if meta["tokens"] == 0:
        return np.zeros(0, dtype=meta["dtype"])
    return np.memmap(path, dtype=meta["dtype"], mode="r", shape=(meta["tokens"],))


def token_file_matches(path: Path, meta_path: Path) -> bool:
    """Whether the token file at `path` is whole: its record parses and gives its size."""
    try:
        meta = json.loads(meta_path.read_text())
        return path.stat().st_size == meta["tokens"] * np.dtype(meta["dtype"]).itemsize
    except (OSError, ValueError, KeyError, TypeError):
        return False


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of what a tokenizer's ids depend on: its serialized `tokenizers` pipeline (normalizer, pre-tokenizer,
    model, added tokens) and its EOS, the same for an equal tokenizer loaded from any folder."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(
            f"--dataset_streaming names its token file by the tokenizer's content, which {type(tokenizer).__name__} "
            "(not a fast `tokenizers` tokenizer) does not expose: pass a tokenizer folder with a tokenizer.json, "
            "or drop --dataset_streaming."
        )
    return hashlib.sha256(f"{backend.to_str()}\neos={tokenizer.eos_token_id}".encode()).hexdigest()


def streamed_token_file(
    rows: datasets.IterableDataset, tokenizer: PreTrainedTokenizerBase, text_column: str, identity: dict, name: str
) -> np.ndarray:
    """The token stream of streamed rows (each document closed by EOS, as `tokenize_texts` does), memory-mapped from
    `tokens-<fingerprint>.bin` in datasets' cache folder under `toolkit-token-files/`. On first use the rows are
    tokenized batch by batch as they arrive and written straight to the file, never stored in datasets' Arrow cache
    (see `memory_mapped_token_file`); later runs and other DDP ranks reuse it. The fingerprint hashes `identity` (what
    the rows are: data files with their sizes and dates, or a Hub revision; config, split, row cap), the text column
    and the tokenizer's content. `name` labels the progress bar and errors."""
    dtype = id_dtype(len(tokenizer))
    content = {"rows": identity, "text_column": text_column, "tokenizer": tokenizer_fingerprint(tokenizer)}
    content["dtype"] = np.dtype(dtype).name
    fingerprint = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]

    def batches() -> Iterator[tuple[np.ndarray, int]]:
        with tqdm(desc=f"Tokenizing {name} into its token file", unit=" rows") as progress:
            for batch in rows.select_columns([text_column]).iter(batch_size=ROWS_PER_STREAMED_BATCH):
                texts = batch[text_column]
                require_text_values(texts, text_column, name, first_row=progress.n)
                documents = encode_documents(tokenizer, texts)
                yield np.concatenate(documents), len(texts)
                progress.update(len(texts))

    folder = datasets_cache_folder() / STREAMED_TOKEN_FILES
    return memory_mapped_token_file(folder / f"{TOKEN_FILE_PREFIX}{fingerprint}.bin", dtype, batches)


class TokenBlocks(torch.utils.data.Dataset):
    """Blocks of `block_size` tokens starting every `stride` tokens of a flat stream; the ragged tail is dropped.

    `stride` < `block_size` gives overlapping blocks, so a small corpus offers many more distinct windows (see also
    `RandomBlocks`). Item i is `{"input_ids": ids, "labels": ids}`, one (block_size,) int64 tensor."""

    def __init__(self, stream: np.ndarray, block_size: int, stride: int | None = None):
        self.stream = stream
        self.block_size = block_size
        self.stride = stride or block_size

    def __len__(self) -> int:
        return max(0, (len(self.stream) - self.block_size) // self.stride + 1)

    def starts(self, indices: np.ndarray) -> np.ndarray:
        """Where the blocks at `indices` (int64, each in [0, len)) start in the stream."""
        return indices * self.stride

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"block {index} of {len(self)}")
        start = int(self.starts(np.array([index % len(self)], dtype=np.int64))[0])
        ids = torch.from_numpy(self.stream[start : start + self.block_size].astype(np.int64))
        return {"input_ids": ids, "labels": ids}

    def input_ids(self, indices: torch.Tensor | range | list[int]) -> torch.Tensor:
        """(len(indices), block_size) int64: the blocks at `indices`, for loops that batch by hand."""
        starts = self.starts(np.asarray(indices, dtype=np.int64))[:, None]
        return torch.from_numpy(self.stream[starts + np.arange(self.block_size)].astype(np.int64))


GOLDEN_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment: 2**64 over the golden ratio, odd


def splitmix64(words: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on uint64 words (wrapping arithmetic): a bijection whose every output bit
    depends on every input bit."""
    words = (words ^ (words >> 30)) * 0xBF58476D1CE4E5B9
    words = (words ^ (words >> 27)) * 0x94D049BB133111EB
    return words ^ (words >> 31)


def random_offsets(seed: int, epoch: int, indices: np.ndarray, count: int) -> np.ndarray:
    """Pseudo-random offsets in [0, count), one per item of `indices` (int64), drawn with replacement: item i's is
    output i of a SplitMix64 generator whose state is keyed by (seed, epoch), modulo `count` (a bias below
    count / 2**64). A pure function of (seed, epoch, i): nothing per item is stored."""
    with np.errstate(over="ignore"):  # the words wrap around by design
        key = splitmix64(splitmix64(np.uint64(seed % 2**64) + np.uint64(GOLDEN_GAMMA)) + np.uint64(epoch))
        words = splitmix64(key + (np.asarray(indices, dtype=np.int64).astype(np.uint64) + 1) * GOLDEN_GAMMA)
    return (words % np.uint64(count)).astype(np.int64)


class RandomBlocks(TokenBlocks):
    """Blocks of `block_size` tokens starting at pseudo-random offsets in [0, len(stream) - block_size], drawn with
    replacement as nanoGPT's `get_batch` draws them. An epoch is len(stream) // block_size blocks (as many tokens
    as the stream), and item i of epoch e starts at `random_offsets(seed, e, i)`: constant memory at any corpus
    size, the same blocks for the same seed, a resumed run reads what the uninterrupted one would, and each epoch
    (`set_epoch`, which `toolkit._compat.DatasetEpochCallback` calls) reads new blocks."""

    def __init__(self, stream: np.ndarray, block_size: int, seed: int):
        self.stream = stream
        self.block_size = block_size
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.stream) // self.block_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def starts(self, indices: np.ndarray) -> np.ndarray:
        return random_offsets(self.seed, self.epoch, indices, len(self.stream) - self.block_size + 1)


def pack_blocks(tokenized: datasets.Dataset, block_size: int, *, stride: int | None = None) -> TokenBlocks:
    """The tokenized rows as one stream, read as `block_size` blocks every `stride` tokens (see `TokenBlocks`)."""
    return TokenBlocks(token_stream(tokenized), block_size, stride)


def pack_streams(
    streams: dict[str, np.ndarray],
    block_size: int,
    *,
    validation_fraction: float = 0.1,
    train_stride: int | None = None,
    random_offsets_seed: int | None = None,
) -> dict[str, TokenBlocks]:
    """Train/validation blocks of token streams. Without a validation stream (a single document such as Tiny
    Shakespeare, or a streamed corpus without a validation split), the last `validation_fraction` of the training
    stream is held out, as nanoGPT does. Training blocks start every `train_stride` tokens (they may overlap) or,
    with `random_offsets_seed`, at random offsets (`RandomBlocks`); validation blocks never overlap, so every
    validation token is scored once."""
    if "validation" not in streams:
        stream = streams.pop("train")
        cut = int(len(stream) * (1 - validation_fraction))
        streams = {"train": stream[:cut], "validation": stream[cut:]}
    if random_offsets_seed is None:
        train = TokenBlocks(streams["train"], block_size, train_stride)
    else:
        train = RandomBlocks(streams["train"], block_size, random_offsets_seed)
    blocks = {"train": train, "validation": TokenBlocks(streams["validation"], block_size)}
    for name, split in blocks.items():
        if len(split) == 0:
            raise ValueError(
                f"The {name} split has {len(split.stream)} tokens, fewer than one block of {block_size}: "
                "use more data or a smaller --block_size."
            )
    return blocks


def pack_for_language_modeling(
    splits: datasets.DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    text_column: str,
    block_size: int,
    *,
    validation_fraction: float = 0.1,
    train_stride: int | None = None,
    random_offsets_seed: int | None = None,
    num_proc: int | None = None,
) -> dict[str, TokenBlocks]:
    """Train/validation blocks of tokenized splits (see `pack_streams`)."""
    streams = {
        name: token_stream(tokenize_texts(split, tokenizer, text_column, num_proc=num_proc))
        for name, split in splits.items()
    }
    return pack_streams(
        streams,
        block_size,
        validation_fraction=validation_fraction,
        train_stride=train_stride,
        random_offsets_seed=random_offsets_seed,
    )
