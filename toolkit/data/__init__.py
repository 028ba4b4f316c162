"""Data for the toolkit: local files, Hub datasets and the built-in arithmetic task, tokenized and packed."""

from .packing import (
    RandomBlocks,
    TokenBlocks,
    pack_blocks,
    pack_for_language_modeling,
    pack_streams,
    streamed_token_file,
    token_stream,
    tokenize_texts,
)
from .sources import (
    SYNTHETIC_NAME,
    check_jsonl,
    check_utf8,
    describe_source,
    load_raw,
    read_text_file,
    require_columns,
    require_text,
    select_first,
    source_identity,
    split_names,
    train_validation_splits,
)

__all__ = [
    "SYNTHETIC_NAME",
    "RandomBlocks",
    "TokenBlocks",
    "check_jsonl",
    "check_utf8",
    "describe_source",
    "load_raw",
    "pack_blocks",
    "pack_for_language_modeling",
    "pack_streams",
    "read_text_file",
    "require_columns",
    "require_text",
    "select_first",
    "source_identity",
    "split_names",
    "streamed_token_file",
    "token_stream",
    "tokenize_texts",
    "train_validation_splits",
]
