"""Data for the toolkit: local files, Hub datasets and synthetic GSM8K-style arithmetic, tokenized and packed."""

from .packing import pack_blocks, pack_for_language_modeling, tokenize_for_fine_tuning, tokenize_texts
from .sources import (
    SYNTHETIC_NAME,
    as_prompt_completion,
    check_jsonl,
    load_raw,
    require_columns,
    select_first,
    train_validation_splits,
)
from .synthetic import (
    DIFFICULTIES,
    SPLIT_FRACTIONS,
    arithmetic_splits,
    corrupt_solution,
    extract_final_answer,
    make_arithmetic_dataset,
)

__all__ = [
    "DIFFICULTIES",
    "SPLIT_FRACTIONS",
    "SYNTHETIC_NAME",
    "arithmetic_splits",
    "as_prompt_completion",
    "check_jsonl",
    "corrupt_solution",
    "extract_final_answer",
    "load_raw",
    "make_arithmetic_dataset",
    "pack_blocks",
    "pack_for_language_modeling",
    "require_columns",
    "select_first",
    "tokenize_for_fine_tuning",
    "tokenize_texts",
    "train_validation_splits",
]
