"""`toolkit generate`: stream a completion from a model folder or Hub id to the terminal."""

import sys
from dataclasses import dataclass, field

import torch
from transformers import TextStreamer, set_seed
from trl import TrlParser

from .loading import load_causal_lm, load_tokenizer


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


def generation_kwargs(args: GenerateArguments, tokenizer) -> dict:
    if args.temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {args.temperature}.")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {args.top_p}.")
    kwargs = dict(max_new_tokens=args.max_new_tokens, pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    if args.temperature == 0:
        return {**kwargs, "do_sample": False}
    return {**kwargs, "do_sample": True, "temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p}


def generate(args: GenerateArguments, stream=sys.stdout) -> list[str]:
    """Stream `num_samples` completions of `args.prompt` to `stream` and return them."""
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
        with torch.no_grad():
            output = model.generate(**inputs, streamer=streamer, **generation_kwargs(args, tokenizer))
        completions.append(tokenizer.decode(output[0, inputs.input_ids.shape[1] :], skip_special_tokens=True))
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
    (args,) = TrlParser(GenerateArguments, prog="toolkit generate").parse_args_and_config(argv)
    generate(args)
    return 0
