"""Data for the toolkit: local files, Hub datasets and the built-in arithmetic task, tokenized and packed."""

from .packing import TokenBlocks, pack_blocks, pack_for_language_modeling, token_stream, tokenize_texts
from .sources import (
    SYNTHETIC_NAME,
    check_jsonl,
    check_utf8,
    load_raw,
    read_text_file,
    require_columns,
    require_text,
    select_first,
    train_validation_splits,
)

__all__ = [
    "SYNTHETIC_NAME",
    "TokenBlocks",
    "check_jsonl",
    "check_utf8",
    "load_raw",
    "pack_blocks",
    "pack_for_language_modeling",
    "read_text_file",
    "require_columns",
    "require_text",
    "select_first",
    "token_stream",
    "tokenize_texts",
    "train_validation_splits",
]
