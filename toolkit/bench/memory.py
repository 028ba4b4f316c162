"""`toolkit bench memory`: peak RSS of full fine-tuning against LoRA at the GPT-2-small shape, each run in a fresh
process."""

from dataclasses import asdict, dataclass, field

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
)

from .common import in_fresh_process
from .trl_ppo import MemoryMeter


@dataclass
class MemoryBenchArguments:
    """Peak RSS of full fine-tuning against LoRA at the GPT-2-small shape."""

    steps: int = field(default=3, metadata={"help": "Training steps per method."})
    batch_size: int = field(default=4, metadata={"help": "Sequences per step."})
    block_size: int = field(default=128, metadata={"help": "Tokens per sequence."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (on c_attn, the SFT recipe's default target)."})
    output: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})


def peak_memory_of_training(spec: dict) -> dict:
    """A GPT-2-small-shaped model, `steps` AdamW steps, then the process's peak RSS (run it in a fresh process)."""
    from ..adapters import apply_lora, parameter_counts

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)).train()
    if spec["method"] == "lora":
        model = apply_lora(model, r=spec["lora_r"], dropout=0.0)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    batch = torch.randint(0, 50257, (spec["batch_size"], spec["block_size"]))
    for _ in range(spec["steps"]):
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {"peak_rss_mib": MemoryMeter.peak_rss_mib(), "trainable_parameters": parameter_counts(model)[0]}


def bench_memory(args: MemoryBenchArguments) -> dict:
    """Peak resident memory of full fine-tuning vs LoRA at the GPT-2-small shape, each in its own process."""
    figures = {
        method: in_fresh_process(peak_memory_of_training, {"method": method, **asdict(args)})
        for method in ("full", "lora")
    }
    return {
        "setup": f"GPT2LMHeadModel 124M, batch {args.batch_size} x {args.block_size}, {args.steps} AdamW steps, fp32",
        **figures,
        "ratio_lora_vs_full": figures["lora"]["peak_rss_mib"] / figures["full"]["peak_rss_mib"],
    }


def format_memory_results(results: dict) -> str:
    lines = [results["setup"], "", "| method | trainable parameters | peak RSS (MiB) |", "|---|---|---|"]
    for method in ("full", "lora"):
        row = results[method]
        lines.append(f"| {method} | {row['trainable_parameters']:,} | {row['peak_rss_mib']:,.0f} |")
    lines.append(f"\nLoRA peak / full peak: {results['ratio_lora_vs_full']:.2f}")
    return "\n".join(lines)
