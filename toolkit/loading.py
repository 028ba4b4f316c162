"""Loading a model folder or Hub id the way users hand them to us: full models, PEFT adapters, our GPT, and their
tokenizers, GPT-2's bare BPE files included."""

import json
import os
from pathlib import Path

import torch
from tokenizers.models import BPE
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Tokenizer, PreTrainedModel, PreTrainedTokenizerBase

from . import models  # noqa: F401  (registers our GPT with the Auto classes)
from .tokenization import EOS_TOKEN

GPT2_CONTEXT_LENGTH = 1024

# The two spellings of GPT-2's BPE files: Hugging Face's and OpenAI's original release (same bytes).
GPT2_FILE_NAMES = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))


def is_peft_adapter(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def resolve_device(device: str = "auto") -> torch.device:
    if device != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_tokenizer(name_or_path: str, *, pad_with_eos: bool = False, **kwargs) -> PreTrainedTokenizerBase:
    """`AutoTokenizer.from_pretrained` with an error that says what is missing; a PEFT adapter folder falls back
    to its base model's tokenizer, a folder of GPT-2's bare BPE files (vocab.json + merges.txt, or OpenAI's
    encoder.json + vocab.bpe) is read as GPT-2's tokenizer. `pad_with_eos`: a tokenizer without a pad token
    (GPT-2's) pads with EOS."""
    kwargs.setdefault("trust_remote_code", False)  # refuse a folder's code, never ask on the terminal
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError, TypeError) as error:
        if is_peft_adapter(name_or_path):
            base = json.loads((Path(name_or_path) / "adapter_config.json").read_text())["base_model_name_or_path"]
            return load_tokenizer(base, pad_with_eos=pad_with_eos, **kwargs)
        if Path(name_or_path).is_dir() and gpt2_bpe_files(Path(name_or_path)) is not None:
            return load_gpt2_tokenizer(name_or_path)
        raise ValueError(
            f"No tokenizer could be loaded from {name_or_path!r} ({type(error).__name__}: "
            f"{str(error).splitlines()[0]}). Save the "
            "tokenizer next to the model (tokenizer.save_pretrained(folder)) or pass the tokenizer's path explicitly."
        ) from error
    if pad_with_eos and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    name_or_path: str, *, dtype: str | torch.dtype = "auto", device: str = "auto", **kwargs
) -> PreTrainedModel:
    """A causal LM in eval mode: a full model (ours, GPT-2, any Hub model) or a PEFT adapter on its base. A folder's
    own model code runs only with `trust_remote_code=True` (transformers would otherwise ask on a terminal)."""
    kwargs.setdefault("trust_remote_code", False)
    if not is_peft_adapter(name_or_path) and Path(name_or_path).exists() and not Path(name_or_path).is_dir():
        raise ValueError(f"{name_or_path!r} is a file; pass the folder that holds config.json and the weights.")
    if is_peft_adapter(name_or_path):
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(name_or_path, dtype=dtype, **kwargs)
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype, **kwargs)
        except OSError as error:
            raise ValueError(
                f"No model could be loaded from {name_or_path!r}: {error}. Pass a folder written by "
                "save_pretrained (config.json + weights) or a Hub model id."
            ) from error
    return model.to(resolve_device(device)).eval()


def model_context_length(model: PreTrainedModel) -> int | None:
    """The longest input the model accepts (`max_position_embeddings`, or GPT-2's `n_positions`), if it says."""
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(model.config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def gpt2_bpe_files(folder: Path) -> tuple[Path, Path] | None:
    """The (vocab, merges) paths in `folder` under either spelling, or None."""
    for vocab_name, merges_name in GPT2_FILE_NAMES:
        if (folder / vocab_name).is_file() and (folder / merges_name).is_file():
            return folder / vocab_name, folder / merges_name
    return None


def load_gpt2_tokenizer(
    path_or_id: str | os.PathLike = "openai-community/gpt2",
    *,
    pad_token: str | None = None,
    model_max_length: int | None = None,
    padding_side: str | None = None,
) -> PreTrainedTokenizerBase:
    """GPT-2's byte-level BPE tokenizer from a local folder or the Hub.

    `path_or_id` is one of: a folder saved with `save_pretrained` (holding `tokenizer.json` or
    `tokenizer_config.json`); a folder with the bare BPE files, `vocab.json` + `merges.txt` or OpenAI's
    `encoder.json` + `vocab.bpe`; or a Hub id such as "openai-community/gpt2" (downloaded by transformers).

    GPT-2 has no pad token. By default a folder's saved pad token is kept, and otherwise `<|endoftext|>` is reused
    as pad: the vocabulary stays at 50257, so the pretrained weights fit unchanged, and padded positions must be
    told apart by the attention mask, not by the pad id. Pass another string (e.g. "<|pad|>") to add a dedicated
    pad token: `len(tokenizer)` grows by one, so call `model.resize_token_embeddings(len(tokenizer))` (see
    `check_tokenizer_fits`).

    Args:
        path_or_id: local folder or Hub id.
        pad_token: the pad token, added to the vocabulary if missing; None keeps the saved one or reuses EOS.
        model_max_length: the model's context length; None keeps the saved one (1024 for bare BPE files).
        padding_side: "right" (training) or "left" (batched generation); None keeps the saved one (right).
    """
    # Passed to the constructor (not set afterwards) so that `save_pretrained` records them.
    kwargs = {"model_max_length": model_max_length, "padding_side": padding_side}
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    folder = Path(path_or_id)
    saved_with_transformers = (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file()
    if folder.is_dir() and not saved_with_transformers:
        gpt2_files = gpt2_bpe_files(folder)
        if gpt2_files is None:
            expected = " or ".join(" + ".join(names) for names in GPT2_FILE_NAMES)
            raise FileNotFoundError(f"No tokenizer in {folder}: expected tokenizer.json, or {expected}.")
        vocab, merges = BPE.read_file(str(gpt2_files[0]), str(gpt2_files[1]))
        kwargs.setdefault("model_max_length", GPT2_CONTEXT_LENGTH)
        tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges, **kwargs)
    else:
        tokenizer = AutoTokenizer.from_pretrained(path_or_id, **{"trust_remote_code": False, **kwargs})

    if pad_token is None:
        pad_token = tokenizer.pad_token or EOS_TOKEN
    if pad_token in tokenizer.get_vocab():
        tokenizer.pad_token = pad_token
    else:
        tokenizer.add_special_tokens({"pad_token": pad_token})
    return tokenizer
