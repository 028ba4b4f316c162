"""Building the tokenizer and the model a recipe trains, from `ModelArguments`."""

from collections.abc import Iterable

import datasets
import numpy as np
from transformers import AutoModelForCausalLM, GPT2LMHeadModel, PreTrainedModel, PreTrainedTokenizerBase

from .._compat import model_from_config
from ..adapters import merge_adapter
from ..data import (
    load_raw,
    require_columns,
    require_text,
    select_first,
    source_identity,
    split_names,
    streamed_token_file,
    text_pieces,
    train_validation_splits,
)
from ..loading import is_peft_adapter, load_causal_lm, load_tokenizer, model_context_length
from ..models import GPTConfig, GPTForCausalLM, gpt_config_to_gpt2
from ..tokenization import build_char_tokenizer, check_tokenizer_fits, train_bpe_tokenizer
from .arguments import DataArguments, ModelArguments, PretrainDataArguments, PretrainModelArguments

ARCHITECTURES = ("gpt", "gpt2")


def load_training_splits(args: DataArguments) -> datasets.DatasetDict:
    """Train (and, when the data allows, validation) splits with the columns the run needs, capped in size. They
    never depend on the run's training seed."""
    raw = load_raw(
        args.dataset,
        config_name=args.dataset_config,
        text_sample_by=args.text_sample_by,
        synthetic_sizes=args.synthetic_sizes(),
        synthetic_difficulty=args.synthetic_difficulty,
    )
    columns = [c for c in (args.prompt_column, args.completion_column) if c] or [args.text_column]
    for name, split in raw.items():  # before any held-out rows are carved, so a row is named as it is in the file
        require_columns(split, columns, args.dataset)
        require_text(split, columns, f"{args.dataset} ({name})")
    splits = train_validation_splits(
        raw,
        train_split=args.train_split,
        validation_split=args.validation_split,
        validation_fraction=args.validation_fraction,
    )
    limits = {"train": args.max_train_samples, "validation": args.max_eval_samples}
    for name in splits:
        splits[name] = select_first(splits[name], limits[name])
    return splits


def streamed_token_streams(args: PretrainDataArguments, tokenizer: PreTrainedTokenizerBase) -> dict[str, np.ndarray]:
    """--dataset_streaming: the token stream of the train split and, when the data has one, of its validation split,
    each streamed into its token file (`streamed_token_file`) on first use, capped at --max_train_samples /
    --max_eval_samples rows. Without a validation split, packing holds out the tail of the training tokens."""
    raw = load_raw(args.dataset, config_name=args.dataset_config, text_sample_by=args.text_sample_by, streaming=True)
    return token_streams_of_streamed_splits(raw, args, tokenizer, source_identity(args.dataset))


def token_streams_of_streamed_splits(
    raw: datasets.IterableDatasetDict, args: PretrainDataArguments, tokenizer: PreTrainedTokenizerBase, source: dict
) -> dict[str, np.ndarray]:
    """`streamed_token_streams` for streamed splits `raw` of the data `source` (`source_identity`) names."""
    train_split, validation_split = split_names(raw, args.train_split, args.validation_split)
    streams = {}
    for name, split, limit in (
        ("train", train_split, args.max_train_samples),
        ("validation", validation_split, args.max_eval_samples),
    ):
        if split is None:
            continue
        rows = raw[split] if limit is None else raw[split].take(limit)
        require_columns(rows, [args.text_column], args.dataset)
        # What the rows are; text_sample_by cuts text files into rows, each closed by EOS.
        identity = {**source, "config": args.dataset_config, "split": split, "max_rows": limit}
        identity["text_sample_by"] = args.text_sample_by
        streams[name] = streamed_token_file(rows, tokenizer, args.text_column, identity, f"{args.dataset} ({split})")
    return streams


def corpus_texts(dataset: datasets.Dataset, text_column: str) -> Iterable[str]:
    """The texts a tokenizer is built from, long ones in the pieces packing tokenizes (`text_pieces`): cut where every
    pre-tokenizer starts a word anyway, so a BPE trained on them is the one trained on the whole texts, in the memory
    of a piece (a 100 MB document whole took 8.9 GB)."""
    for start in range(0, len(dataset), 1000):
        for text in dataset[start : start + 1000][text_column]:
            yield from text_pieces(text)


def build_tokenizer(
    args: ModelArguments, train: datasets.Dataset | None, text_column: str, trust_remote_code: bool = False
) -> PreTrainedTokenizerBase:
    """The tokenizer named by `args.tokenizer`: 'char' or 'bpe' are built from the training text (`train`; None when
    the data is streamed, so never held)."""
    name = args.tokenizer or args.model_name_or_path
    if name is None:
        raise ValueError("Training from scratch needs --tokenizer: 'char', 'bpe', or a tokenizer folder / Hub id.")
    if name in ("char", "bpe") and not isinstance(args, PretrainModelArguments):
        raise ValueError(
            f"--tokenizer {name} builds a new vocabulary, which only a model built from scratch can use (toolkit "
            "pretrain): pass the pretrained model's tokenizer folder or Hub id, or leave --tokenizer unset."
        )
    if name in ("char", "bpe") and train is None:
        raise ValueError(
            f"--tokenizer {name} is built from the whole training text, which --dataset_streaming never holds: pass "
            "a tokenizer folder or Hub id (e.g. the output_dir of a run that built one), or drop --dataset_streaming."
        )
    if name == "char":
        return build_char_tokenizer(corpus_texts(train, text_column))
    if name == "bpe":
        return train_bpe_tokenizer(corpus_texts(train, text_column), vocab_size=args.bpe_vocab_size)
    # GPT-2 has no pad token. Padding reuses EOS; attention masks and -100 labels keep it out of the loss.
    return load_tokenizer(name, pad_with_eos=True, trust_remote_code=trust_remote_code)


def scratch_config(args: PretrainModelArguments, vocab_size: int, block_size: int, tokenizer) -> GPTConfig:
    overrides = {
        "num_hidden_layers": args.num_layers,
        "num_attention_heads": args.num_heads,
        "hidden_size": args.hidden_size,
    }
    return GPTConfig.from_preset(
        args.preset,
        **{k: v for k, v in overrides.items() if v is not None},
        vocab_size=vocab_size,
        max_position_embeddings=args.context_length or block_size,
        dropout=args.model_dropout,
        attention_dropout=args.model_dropout,
        bias=args.model_bias,
        hidden_act=args.model_activation,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_model(
    args: ModelArguments,
    tokenizer: PreTrainedTokenizerBase,
    block_size: int | None,
    length_flag: str = "--block_size",
    trust_remote_code: bool = False,
) -> PreTrainedModel:
    """A pretrained causal LM (`model_name_or_path`; a PEFT adapter folder is merged into its base, so the model
    trains like one loaded from a full folder), or a new one of `architecture` shaped by preset + overrides (its
    context defaults to `block_size`); sequences of `block_size` tokens must fit it (`length_flag` sets them)."""
    attn = {"attn_implementation": args.attn_implementation} if args.attn_implementation else {}
    if args.model_name_or_path is not None and is_peft_adapter(args.model_name_or_path):
        adapted = load_causal_lm(args.model_name_or_path, device="cpu", trust_remote_code=trust_remote_code, **attn)
        model = merge_adapter(adapted).train()
    elif args.model_name_or_path is not None:
        model = AutoModelForCausalLM.from_pretrained(
            args.model_name_or_path, trust_remote_code=trust_remote_code, **attn
        )
    else:
        if args.architecture not in ARCHITECTURES:
            raise ValueError(f"Unknown architecture {args.architecture!r}; choose one of {ARCHITECTURES}.")
        if block_size is None and args.context_length is None:
            raise ValueError("A model built from scratch needs a context: pass --context_length.")
        config = scratch_config(args, len(tokenizer), block_size, tokenizer)
        if args.architecture == "gpt":
            model = model_from_config(GPTForCausalLM, config, **attn)
        else:
            model = model_from_config(GPT2LMHeadModel, gpt_config_to_gpt2(config), **attn)
    check_tokenizer_fits(tokenizer, model.config)
    if block_size is not None:
        check_block_size(model, block_size, length_flag)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def check_block_size(model: PreTrainedModel, block_size: int, flag: str = "--block_size") -> None:
    context = model_context_length(model)
    if context is not None and block_size > context:
        raise ValueError(
            f"{flag} {block_size} is longer than the model's context ({context} positions). "
            f"Use {flag} {context} or less."
        )
