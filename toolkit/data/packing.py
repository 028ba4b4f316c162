"""Tokenization and packing for language modeling: documents become one flat token stream read as fixed blocks.

The stream is a 1-D integer array (2 or 4 bytes a token, never Python lists). A corpus read from files or the Hub is
tokenized once (`datasets.map`, cached) and its stream written once to a flat token file beside datasets' cache,
named by the tokenized data's fingerprint (corpus, tokenizer, settings) and read memory-mapped, as nanoGPT's
`train.bin` is: memory stays flat at any corpus size, and later runs and every DDP rank reuse the file. Blocks are
slices of the stream made when an item is read, and the labels are the inputs themselves (the model shifts them),
so no token is stored twice."""

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from .._compat import dataset_fingerprint

# Longer texts are tokenized in pieces: a tokenizer's working memory is ~100x the text (a 10 MB line took 3.7 GB).
LONG_TEXT = 1 << 16  # characters
PIECES_PER_CALL = 4  # pieces tokenized together (in parallel by fast tokenizers)
# A piece ends before a single space between two non-spaces, where pre-tokenizers (GPT-2's regex, whitespace, one
# character per token) always start a new token, so the ids are those of the whole text (tested).
PIECE_BOUNDARY = re.compile(r"(?<=\S) (?=\S)")


def text_pieces(text: str, size: int = LONG_TEXT) -> Iterator[str]:
    """`text` in pieces of at least `size` characters (the last may be shorter), cut at `PIECE_BOUNDARY`."""
    start = 0
    while len(text) - start > size and (boundary := PIECE_BOUNDARY.search(text, start + size)):
        yield text[start : boundary.start()]
        start = boundary.start()
    yield text[start:]


def tokenize_texts(
    dataset: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    text_column: str,
    *,
    num_proc: int | None = None,
    append_eos: bool = True,
) -> datasets.Dataset:
    """Token ids per row (batched, cached by `datasets`), each document closed by EOS so documents stay apart."""
    eos = [tokenizer.eos_token_id] if append_eos and tokenizer.eos_token_id is not None else []
    dtype = id_dtype(len(tokenizer))

    def encode(texts: list[str]) -> list[list[int]]:
        return tokenizer(texts, add_special_tokens=False, return_attention_mask=False, verbose=False)["input_ids"]

    def encode_long(text: str) -> np.ndarray:
        pieces, parts = list(text_pieces(text)), []
        for first in range(0, len(pieces), PIECES_PER_CALL):
            parts += [np.array(ids, dtype=dtype) for ids in encode(pieces[first : first + PIECES_PER_CALL])]
        return np.concatenate([*parts, np.array(eos, dtype=dtype)])

    def tokenize(batch):
        texts = batch[text_column]
        short = [index for index, text in enumerate(texts) if len(text) <= LONG_TEXT]
        encoded = dict(zip(short, encode([texts[index] for index in short]) if short else []))
        rows = [
            np.array(encoded[index] + eos, dtype=dtype) if index in encoded else encode_long(text)
            for index, text in enumerate(texts)
        ]
        return {"input_ids": rows}

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
    """The stream of a cached tokenized dataset as a read-only memory map of `tokens-<fingerprint>.bin` in its cache
    folder, written on first use in batches of rows (constant memory) and reused after; `<same>.json` records the
    dtype and token count, and is written last, so a half-written file is never read (it is rewritten)."""
    folder = Path(tokenized.cache_files[0]["filename"]).parent
    path = folder / f"{TOKEN_FILE_PREFIX}{dataset_fingerprint(tokenized)}.bin"
    meta_path = path.with_suffix(".json")
    if not meta_path.exists():
        value_type = tokenized.features["input_ids"].feature.dtype  # what tokenize_texts stored: uint16 or int32
        dtype = np.dtype(np.uint16 if value_type == "uint16" else np.int32)
        partial = path.with_suffix(f".partial-{os.getpid()}")
        tokens = 0
        with open(partial, "wb") as handle:
            for batch in tokenized.with_format("arrow").iter(batch_size=ROWS_PER_WRITE):
                ids = batch.column("input_ids").combine_chunks().flatten().to_numpy(zero_copy_only=False)
                handle.write(ids.astype(dtype, copy=False).tobytes())
                tokens += len(ids)
        os.replace(partial, path)
        meta = {"dtype": dtype.name, "tokens": tokens, "rows": len(tokenized), "fingerprint": path.stem}
        meta_partial = meta_path.with_suffix(f".partial-{os.getpid()}")
        meta_partial.write_text(json.dumps(meta))
        os.replace(meta_partial, meta_path)
    meta = json.loads(meta_path.read_text())
    if meta["tokens"] == 0:
        return np.zeros(0, dtype=meta["dtype"])
    return np.memmap(path, dtype=meta["dtype"], mode="r", shape=(meta["tokens"],))


class TokenBlocks(torch.utils.data.Dataset):
    """Blocks of `block_size` tokens starting every `stride` tokens of a flat stream; the ragged tail is dropped.

    `stride` < `block_size` gives overlapping blocks, so a small corpus offers many more distinct windows, as
    nanoGPT's random offsets do. Item i is `{"input_ids": ids, "labels": ids}`, one (block_size,) int64 tensor."""

    def __init__(self, stream: np.ndarray, block_size: int, stride: int | None = None):
        self.stream = stream
        self.block_size = block_size
        self.stride = stride or block_size

    def __len__(self) -> int:
        return max(0, (len(self.stream) - self.block_size) // self.stride + 1)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"block {index} of {len(self)}")
        start = (index % len(self)) * self.stride
        ids = torch.from_numpy(self.stream[start : start + self.block_size].astype(np.int64))
        return {"input_ids": ids, "labels": ids}

    def input_ids(self, indices: torch.Tensor | range | list[int]) -> torch.Tensor:
        """(len(indices), block_size) int64: the blocks at `indices`, for loops that batch by hand."""
        starts = np.asarray(indices, dtype=np.int64)[:, None] * self.stride
        return torch.from_numpy(self.stream[starts + np.arange(self.block_size)].astype(np.int64))


def pack_blocks(tokenized: datasets.Dataset, block_size: int, *, stride: int | None = None) -> TokenBlocks:
    """The tokenized rows as one stream, read as `block_size` blocks every `stride` tokens (see `TokenBlocks`)."""
    return TokenBlocks(token_stream(tokenized), block_size, stride)


def pack_for_language_modeling(
    splits: datasets.DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    text_column: str,
    block_size: int,
    *,
    validation_fraction: float = 0.1,
    train_stride: int | None = None,
    num_proc: int | None = None,
) -> dict[str, TokenBlocks]:
    """Train/validation blocks. Without a validation split (a single document such as Tiny Shakespeare), the last
    `validation_fraction` of the token stream is held out, as nanoGPT does. Training blocks may overlap
    (`train_stride`); validation blocks never do, so every validation token is scored once."""
    streams = {
        name: token_stream(tokenize_texts(split, tokenizer, text_column, num_proc=num_proc))
        for name, split in splits.items()
    }
    if "validation" not in streams:
        stream = streams.pop("train")
        cut = int(len(stream) * (1 - validation_fraction))
        streams = {"train": stream[:cut], "validation": stream[cut:]}
    blocks = {
        name: TokenBlocks(stream, block_size, train_stride if name == "train" else None)
        for name, stream in streams.items()
    }
    for name, split in blocks.items():
        if len(split) == 0:
            raise ValueError(
                f"The {name} split has {len(split.stream)} tokens, fewer than one block of {block_size}: "
                "use more data or a smaller --block_size."
            )
    return blocks
