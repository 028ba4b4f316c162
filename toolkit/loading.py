"""Loading a model folder or Hub id the way users hand them to us: full models, PEFT adapters, our GPT."""

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from . import models  # noqa: F401  (registers our GPT with the Auto classes)
from .tokenization import gpt2_bpe_files, load_gpt2_tokenizer


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
