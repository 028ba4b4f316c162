"""Tokenizers built for the toolkit's GPTs: character-level, and byte-level BPE trained on your corpus (GPT-2's own
is read by `toolkit.loading.load_gpt2_tokenizer`).

Every tokenizer here is a `transformers` fast tokenizer backed by the `tokenizers` library, so
`tokenizer.save_pretrained(folder)` writes a plain `tokenizer.json` that `AutoTokenizer.from_pretrained(folder)` loads
anywhere, without this package installed. All of them carry an `eos_token` and a `pad_token`.
"""

import os
from collections.abc import Iterable, Sequence

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    PreTrainedConfig,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
UNK_TOKEN = "<|unk|>"


def _wrap(
    tokenizer: Tokenizer,
    *,
    model_max_length: int | None,
    padding_side: str,
    unk_token: str | None = None,
) -> PreTrainedTokenizerFast:
    """A `tokenizers.Tokenizer` as a transformers fast tokenizer, with our special tokens registered."""
    kwargs = {"model_max_length": model_max_length} if model_max_length is not None else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        # GPT-2's convention: one end-of-text token serves as both bos and eos.
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=unk_token,
        padding_side=padding_side,
        clean_up_tokenization_spaces=False,
        **kwargs,
    )


def build_char_tokenizer(
    corpus: str | Iterable[str],
    *,
    model_max_length: int | None = None,
    padding_side: str = "right",
) -> PreTrainedTokenizerFast:
    """A character-level tokenizer (the classic Shakespeare lab) over the characters of `corpus`.

    Ids 0..n-1 are the corpus's characters in sorted order (the same ids as nanoGPT's `shakespeare_char`), followed
    by `<|endoftext|>` (eos), `<|pad|>` (pad) and `<|unk|>`. A character missing from the corpus encodes to
    `<|unk|>`, so decoding gives back the exact text only for characters seen in the corpus: to cover more, add them
    to the corpus (e.g. `build_char_tokenizer([text, string.printable])`).

    Args:
        corpus: the training text, or an iterable of texts.
        model_max_length: the model's context length, stored on the tokenizer for truncation.
        padding_side: "right" (training) or "left" (batched generation).
    """
    texts = [corpus] if isinstance(corpus, str) else corpus
    characters = set()
    for text in texts:
        characters.update(text)
    vocab = {character: index for index, character in enumerate(sorted(characters))}
    for special in (EOS_TOKEN, PAD_TOKEN, UNK_TOKEN):
        vocab[special] = len(vocab)

    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK_TOKEN))
    # Every character (newlines included) is its own word; Fuse joins them back without inserting spaces.
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    return _wrap(tokenizer, model_max_length=model_max_length, padding_side=padding_side, unk_token=UNK_TOKEN)


def train_bpe_tokenizer(
    texts: Iterable[str] | None = None,
    *,
    files: Sequence[str | os.PathLike] | None = None,
    vocab_size: int = 8192,
    min_frequency: int = 2,
    model_max_length: int | None = None,
    padding_side: str = "right",
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer like GPT-2's on your own corpus.

    Byte-level means the 256 byte symbols are always in the vocabulary, so any text encodes and decodes back
    exactly (no unknown token). `<|endoftext|>` (eos) and `<|pad|>` (pad) get ids 0 and 1.

    Args:
        texts: an iterable of texts (documents, lines, batches of lines); give this or `files`.
        files: paths of text files to train on; give this or `texts`.
        vocab_size: size of the final vocabulary, special tokens and the 256 bytes included.
        min_frequency: pairs seen fewer times than this are never merged.
        model_max_length: the model's context length, stored on the tokenizer for truncation.
        padding_side: "right" (training) or "left" (batched generation).
    """
    if (texts is None) == (files is None):
        raise ValueError("Give exactly one of `texts` (an iterable of strings) or `files` (a list of paths).")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    if files is not None:
        tokenizer.train([str(path) for path in files], trainer=trainer)
    else:
        tokenizer.train_from_iterator(texts, trainer=trainer)
    return _wrap(tokenizer, model_max_length=model_max_length, padding_side=padding_side)


def check_tokenizer_fits(tokenizer: PreTrainedTokenizerBase, model_or_config: object) -> None:
    """Raise a ValueError when the tokenizer has ids the model cannot embed (`len(tokenizer) > vocab_size`).

    `model_or_config` is a model (anything with a `.config`) or a config. A vocabulary smaller than the model's is
    fine (embedding tables are often padded to a multiple of 64).
    """
    config: PreTrainedConfig = getattr(model_or_config, "config", model_or_config)
    if len(tokenizer) > config.vocab_size:
        raise ValueError(
            f"The tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {config.vocab_size}, so ids "
            f">= {config.vocab_size} would index past the embedding table. Fix: resize the model with "
            f"`model.resize_token_embeddings(len(tokenizer))`, or build it from a config with "
            f"`vocab_size={len(tokenizer)}` (e.g. `GPTConfig(vocab_size=len(tokenizer), ...)`)."
        )


__all__ = [
    "EOS_TOKEN",
    "PAD_TOKEN",
    "UNK_TOKEN",
    "build_char_tokenizer",
    "train_bpe_tokenizer",
    "check_tokenizer_fits",
]
