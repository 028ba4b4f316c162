"""Tokenization and packing for language modeling: documents become one token stream cut into fixed blocks."""

import datasets
from transformers import PreTrainedTokenizerBase


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

    def tokenize(batch):
        ids = tokenizer(batch[text_column], add_special_tokens=False)["input_ids"]
        return {"input_ids": [row + eos for row in ids]}

    return dataset.map(
        tokenize,
        batched=True,
        num_proc=num_proc,
        remove_columns=dataset.column_names,
        desc="Tokenizing",
    )


def pack_blocks(
    tokenized: datasets.Dataset, block_size: int, *, stride: int | None = None, num_proc: int | None = None
) -> datasets.Dataset:
    """Concatenate token ids and cut them into `block_size` blocks with labels; the ragged tail is dropped.

    `stride` < `block_size` starts a block every `stride` tokens (overlapping blocks), so a small corpus offers many
    more distinct windows, as nanoGPT's random offsets do."""
    stride = stride or block_size

    def pack(batch):
        stream = [token for row in batch["input_ids"] for token in row]
        blocks = [stream[i : i + block_size] for i in range(0, len(stream) - block_size + 1, stride)]
        return {"input_ids": blocks, "labels": [list(b) for b in blocks]}

    # Large map batches keep the dropped tails negligible; a single-document corpus is one batch.
    return tokenized.map(pack, batched=True, batch_size=10_000, num_proc=num_proc, desc=f"Packing into {block_size}")


def pack_for_language_modeling(
    splits: datasets.DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    text_column: str,
    block_size: int,
    *,
    validation_fraction: float = 0.1,
    train_stride: int | None = None,
    num_proc: int | None = None,
) -> datasets.DatasetDict:
    """Train/validation blocks. Without a validation split (a single document such as Tiny Shakespeare), the last
    `validation_fraction` of the token stream is held out, as nanoGPT does. Training blocks may overlap
    (`train_stride`); validation blocks never do, so every validation token is scored once."""
    tokenized = datasets.DatasetDict(
        {name: tokenize_texts(split, tokenizer, text_column, num_proc=num_proc) for name, split in splits.items()}
    )
    if "validation" not in tokenized:
        stream = [token for row in tokenized["train"]["input_ids"] for token in row]
        cut = int(len(stream) * (1 - validation_fraction))
        tokenized = datasets.DatasetDict(
            train=datasets.Dataset.from_dict({"input_ids": [stream[:cut]]}),
            validation=datasets.Dataset.from_dict({"input_ids": [stream[cut:]]}),
        )
    packed = datasets.DatasetDict(
        {
            name: pack_blocks(split, block_size, stride=train_stride if name == "train" else None)
            for name, split in tokenized.items()
        }
    )
    for name, split in packed.items():
        if len(split) == 0:
            tokens = sum(len(row) for row in tokenized[name]["input_ids"])
            raise ValueError(
                f"The {name} split has {tokens} tokens, fewer than one block of {block_size}: "
                "use more data or a smaller --block_size."
            )
    return packed
