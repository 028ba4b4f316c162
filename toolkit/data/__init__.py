"""Data for the toolkit: local files, Hub datasets and the built-in arithmetic task, tokenized and packed."""

from .packing import pack_blocks, pack_for_language_modeling, tokenize_texts
from .sources import (
    SYNTHETIC_NAME,
    check_jsonl,
    load_raw,
    require_columns,
    select_first,
    train_validation_splits,
)

__all__ = [
    "SYNTHETIC_NAME",
    "check_jsonl",
    "load_raw",
    "pack_blocks",
    "pack_for_language_modeling",
    "require_columns",
    "select_first",
    "tokenize_texts",
    "train_validation_splits",
]
