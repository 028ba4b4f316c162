"""Generation, in one place: tensors in, new tokens out (`generate`); text in, text out (`generate_completions`,
`generate_greedy`: batched, left-padded, stop strings); and `toolkit generate`, which streams a completion to the
terminal on top of them (`stream_completions`).

Every path goes through `generate`, which generates from a prompt-tuned model itself
(`toolkit._compat.generate_after_soft_prompt`).
"""

import copy
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TextStreamer, set_seed

from . import stopping
from ._compat import generate_after_soft_prompt
from .adapters import is_prompt_learning
from .loading import load_causal_lm, load_tokenizer, model_context_length
from .parsing import argument_parser

ModelOrPath = PreTrainedModel | str | os.PathLike
TokenizerOrPath = PreTrainedTokenizerBase | str | os.PathLike | None


@torch.no_grad()
def generate(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
    """`model.generate` returning only the new tokens (B, new), for plain, LoRA and prompt-tuned models alike.

    A prompt-tuned model generates through `toolkit._compat.generate_after_soft_prompt` (PEFT's own path emits
    wrong tokens with transformers 5.x)."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if is_prompt_learning(model):
        return generate_after_soft_prompt(model, input_ids, attention_mask, **kwargs)
    output = model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    return output[:, input_ids.shape[1] :]


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
        stopping.check("during generation")
        batch = tokenizer(
            list(prompts[start : start + batch_size]),
            return_tensors="pt",
            padding=True,
            truncation=max_prompt_tokens is not None,
            max_length=max_prompt_tokens,
        ).to(model.device)
        # transformers' stop_strings match on token strings, so a stop string split across tokens still stops.
        stop_options = {"stop_strings": list(stop_strings), "tokenizer": tokenizer} if stop_strings else {}
        new_ids = generate(
            model,
            batch["input_ids"],
            batch["attention_mask"],
            max_new_tokens=max_new_tokens,
            num_beams=1,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **decoding,
            **stop_options,
        )
        texts = tokenizer.batch_decode(new_ids, skip_special_tokens=True)
        completions += [truncate_at_stop_strings(text, stop_strings) for text in texts]
    return completions


@dataclass
class GenerateArguments:
    model_name_or_path: str = field(metadata={"help": "Model folder (full model or PEFT adapter) or Hub id."})
    prompt: str = field(default="\n", metadata={"help": "Text to continue."})
    max_new_tokens: int = field(default=200, metadata={"help": "Number of tokens to generate."})
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature; 0 means greedy decoding."})
    top_k: int | None = field(default=200, metadata={"help": "Sample from the k most likely tokens (None: all)."})
    top_p: float | None = field(default=None, metadata={"help": "Nucleus sampling: smallest set with this mass."})
    num_samples: int = field(default=1, metadata={"help": "How many completions to draw."})
    seed: int = field(default=1337, metadata={"help": "Random seed, so a sample can be drawn again."})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:1, ... or auto."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code shipped with the model."})

    def __post_init__(self):
        if self.prompt == "":
            raise ValueError("--prompt is empty: give the text to continue (the default, a newline, starts a text).")


def generation_kwargs(args: GenerateArguments, tokenizer) -> dict:
    if args.temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {args.temperature}.")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {args.top_p}.")
    kwargs = dict(max_new_tokens=args.max_new_tokens, pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    if args.temperature == 0:
        return {**kwargs, "do_sample": False}
    return {**kwargs, "do_sample": True, "temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p}


def stream_completions(args: GenerateArguments, stream=sys.stdout) -> list[str]:
    """Stream `num_samples` completions of `args.prompt` to `stream` (through `generate`, so prompt-tuned models
    stream correctly too) and return them."""
    tokenizer = load_tokenizer(args.model_name_or_path, trust_remote_code=args.trust_remote_code)
    model = load_causal_lm(args.model_name_or_path, device=args.device, trust_remote_code=args.trust_remote_code)
    set_seed(args.seed)
    inputs = tokenizer(args.prompt, return_tensors="pt").to(model.device)
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and inputs.input_ids.shape[1] + args.max_new_tokens > context:
        raise ValueError(
            f"prompt ({inputs.input_ids.shape[1]} tokens) + max_new_tokens ({args.max_new_tokens}) exceeds the "
            f"model's context of {context} tokens; lower --max_new_tokens or shorten the prompt."
        )
    completions = []
    for _ in range(args.num_samples):
        streamer = _StreamTo(stream, tokenizer)
        new_ids = generate(
            model, inputs.input_ids, inputs.attention_mask, streamer=streamer, **generation_kwargs(args, tokenizer)
        )
        completions.append(tokenizer.decode(new_ids[0], skip_special_tokens=True))
        print("\n---------------", file=stream, flush=True)
    return completions


class _StreamTo(TextStreamer):
    """TextStreamer that writes to any stream and skips echoing the prompt."""

    def __init__(self, stream, tokenizer):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.stream = stream

    def on_finalized_text(self, text: str, stream_end: bool = False):
        print(text, file=self.stream, flush=True, end="" if not stream_end else "\n")


def main(argv: list[str] | None = None) -> int:
    (args,) = argument_parser(GenerateArguments, "toolkit generate").parse_args_and_config(argv)
    stream_completions(args)
    return 0


__all__ = [
    "GenerateArguments",
    "generate",
    "generate_completions",
    "generate_greedy",
    "load_model_and_tokenizer",
    "stream_completions",
    "truncate_at_stop_strings",
]
