"""A model with its tokenizer, and batched greedy or sampled generation with stop strings, shared by the benchmarks
and the reward-pair sampler."""

import copy
import os
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..adapters import generate
from ..loading import load_causal_lm, load_tokenizer, model_context_length

ModelOrPath = PreTrainedModel | str | os.PathLike
TokenizerOrPath = PreTrainedTokenizerBase | str | os.PathLike | None


def load_model_and_tokenizer(
    model: ModelOrPath, tokenizer: TokenizerOrPath = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Accept a model object or a folder / Hub id (a PEFT adapter folder too); the tokenizer defaults to the one
    saved with the model."""
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(str(tokenizer))
    if isinstance(model, (str, os.PathLike)):
        # The tokenizer first: a folder without one fails fast, before the weights are read.
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(str(model))
        model = load_causal_lm(str(model))
    elif tokenizer is None:
        raise ValueError(
            f"A {type(model).__name__} object was given without a tokenizer. Pass tokenizer=... (the one the model "
            "was trained with), or pass the model's folder so the tokenizer saved there is used."
        )
    return model, tokenizer


def truncate_at_stop_strings(text: str, stop_strings: Sequence[str]) -> str:
    """Cut `text` at the earliest occurrence of any stop string (the stop string itself is dropped)."""
    cut = min((text.find(stop) for stop in stop_strings if stop and stop in text), default=len(text))
    return text[:cut]


def padded_copy(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """A copy of the tokenizer set up for batched generation: left padding and truncation, pad = EOS if missing."""
    if tokenizer.eos_token_id is None:
        raise ValueError(
            f"The tokenizer {type(tokenizer).__name__} has no EOS token, which generation needs to stop and to pad. "
            "Set one first (tokenizer.eos_token = '...') or use the tokenizer the model was trained with."
        )
    tokenizer = copy.deepcopy(tokenizer)  # the caller's tokenizer keeps its padding side and pad token
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Left padding puts every prompt's last token at the same position, where generation continues;
    # left truncation keeps the end of an over-long prompt (the question), as lm-evaluation-harness does.
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    return tokenizer


def generate_greedy(model: ModelOrPath, tokenizer: TokenizerOrPath, prompts: Sequence[str], **options) -> list[str]:
    """Greedy completions of `prompts`: `generate_completions` without a temperature (same keyword options)."""
    return generate_completions(model, tokenizer, prompts, temperature=None, **options)


@torch.no_grad()
def generate_completions(
    model: ModelOrPath,
    tokenizer: TokenizerOrPath,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    stop_strings: Sequence[str] = (),
    show_progress: bool = True,
    temperature: float | None = None,
    num_samples: int = 1,
) -> list[str]:
    """Completions of `prompts`, batched and left-padded, each cut at the first stop string: greedy, or with a
    `temperature` pure sampling (no top-k / top-p) of `num_samples` completions per prompt, returned grouped by
    prompt: [p0 s0, p0 s1, ..., p1 s0, ...]. Seed torch for repeatable samples.

    Prompts longer than the model's context minus `max_new_tokens` lose tokens from the left. Generation stops at
    the tokenizer's EOS token or once a stop string appears. Returns the decoded new text only. `model` may be a
    folder or Hub id, whose tokenizer is used when `tokenizer` is None.
    """
    model, tokenizer = load_model_and_tokenizer(model, tokenizer)
    if max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}.")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    if temperature is None and num_samples != 1:
        raise ValueError(
            f"Greedy decoding gives one completion per prompt; num_samples={num_samples} needs a temperature."
        )
    if temperature is not None and temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature} (leave it unset for greedy decoding).")
    context_length = model_context_length(model)
    if context_length is not None and max_new_tokens >= context_length:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} leaves no room for the prompt in this model's context of "
            f"{context_length} tokens. Use max_new_tokens < {context_length}."
        )
    max_prompt_tokens = None if context_length is None else context_length - max_new_tokens
    tokenizer = padded_copy(tokenizer)
    model.eval()
    decoding = (
        {"do_sample": False}
        if temperature is None
        else {
            "do_sample": True,
            "temperature": temperature,
            "top_k": 0,
            "top_p": 1.0,
            "num_return_sequences": num_samples,
        }
    )

    completions = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="generating", disable=not show_progress):
        batch = tokenizer(
            list(prompts[start : start + batch_size]),
            return_tensors="pt",
            padding=True,
            truncation=max_prompt_tokens is not None,
            max_length=max_prompt_tokens,
        ).to(model.device)
        # transformers' stop_strings match on token strings, so a stop string split across tokens still stops.
        stopping = {"stop_strings": list(stop_strings), "tokenizer": tokenizer} if stop_strings else {}
        new_ids = generate(
            model,
            batch["input_ids"],
            batch["attention_mask"],
            max_new_tokens=max_new_tokens,
            num_beams=1,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **decoding,
            **stopping,
        )
        texts = tokenizer.batch_decode(new_ids, skip_special_tokens=True)
        completions += [truncate_at_stop_strings(text, stop_strings) for text in texts]
    return completions


__all__ = ["generate_completions", "generate_greedy", "load_model_and_tokenizer", "truncate_at_stop_strings"]
