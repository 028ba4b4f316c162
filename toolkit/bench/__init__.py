"""`toolkit bench <name>`: speed measured as ratios against a baseline in the same run, side by side.

Each benchmark alternates the candidate and its baseline trial by trial (A B A B ...) so drift of a noisy machine
hits both, and reports medians and the median of the per-pair ratios.
"""

import json
import sys
from dataclasses import asdict
from pathlib import Path

from ..parsing import argument_parser, subcommand_usage
from .alignment import AlignmentBenchArguments, bench_alignment, format_alignment_results
from .data import DataBenchArguments, bench_data, format_data_results
from .evaluation import EvalBenchArguments, bench_eval, format_eval_results
from .generate import GenerateBenchArguments, bench_generate, format_generate_results
from .memory import MemoryBenchArguments, bench_memory, format_memory_results
from .model import ModelBenchArguments, bench_model, format_model_results
from .nanogpt import NanoGPTBenchArguments, bench_nanogpt, format_nanogpt_results
from .ppo import PPOBenchArguments, bench_ppo, check_trl_python, format_ppo_results
from .pretrain import PretrainBenchArguments, bench_pretrain, format_pretrain_results

BENCHMARKS = {
    "model": (ModelBenchArguments, bench_model, format_model_results),
    "generate": (GenerateBenchArguments, bench_generate, format_generate_results),
    "data": (DataBenchArguments, bench_data, format_data_results),
    "eval": (EvalBenchArguments, bench_eval, format_eval_results),
    "pretrain": (PretrainBenchArguments, bench_pretrain, format_pretrain_results),
    "nanogpt": (NanoGPTBenchArguments, bench_nanogpt, format_nanogpt_results),
    "memory": (MemoryBenchArguments, bench_memory, format_memory_results),
    "ppo": (PPOBenchArguments, bench_ppo, format_ppo_results),
    "alignment": (AlignmentBenchArguments, bench_alignment, format_alignment_results),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = subcommand_usage("toolkit bench", BENCHMARKS)
    if argv and argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    if not argv or argv[0] not in BENCHMARKS:
        print(usage, file=sys.stderr)
        raise SystemExit(2)
    arguments_class, run, render = BENCHMARKS[argv[0]]
    (args,) = argument_parser(arguments_class, f"toolkit bench {argv[0]}").parse_args_and_config(argv[1:])
    results = run(args)
    print(render(results))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps({"arguments": asdict(args), **results}, indent=2))
    return 0


__all__ = ["BENCHMARKS", "PPOBenchArguments", "bench_ppo", "check_trl_python", "main"]
