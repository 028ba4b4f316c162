"""Scaling arithmetic for GPT-style models, and a small scaling sweep.

- `gpt_parameter_counts(shape)`: exact parameter counts of the toolkit's GPT (`GPTForCausalLM`) for a shape.
- `training_flops` = 6·N·D (Kaplan et al. 2020) and `training_flops_with_attention` = 6·N·D + 12·L·C·T·D (PaLM,
  appendix B; nanoGPT's `estimate_mfu`): forward 2 FLOPs per weight per token, backward twice that, plus the
  attention scores and their weighted sum, which no weight counts (over the full context T, not halved for the
  causal mask, as PaLM counts). N is `ParameterCounts.compute`: every weight that does a multiply-add per token, i.e.
  the non-embedding weights plus the output projection (tied or not); looking up embeddings costs nothing.
- `estimate_compute`: GPU-hours, days and cost on an accelerator at a given model FLOPs utilisation (MFU).
- `chinchilla_tokens` = 20 tokens per parameter (Hoffmann et al. 2022, total parameters).
- `run_sweep`: trains models of several widths and depths on one corpus for the same number of tokens with the
  toolkit's training pieces, fits L(N) = a·N^-α by least squares in log-log space (N = non-embedding parameters, as
  Kaplan et al.), and writes the points, the fit and a log-log plot.

`toolkit scaling estimate ...` and `toolkit scaling sweep ...` run them from the command line.
"""

import sys

from ..parsing import argument_parser, subcommand_usage
from .estimate import (
    PEAK_BF16_TFLOPS,
    ComputeEstimate,
    EstimateArguments,
    GPTShape,
    ParameterCounts,
    chinchilla_tokens,
    estimate_compute,
    gpt_parameter_counts,
    run_estimate,
    training_flops,
    training_flops_with_attention,
)
from .sweep import PowerLawFit, SweepArguments, SweepPoint, fit_power_law, format_sweep, run_sweep

MODES = {
    "estimate": (EstimateArguments, run_estimate, str),
    "sweep": (SweepArguments, run_sweep, format_sweep),
}


def main(argv: list[str] | None = None) -> int:
    """`toolkit scaling estimate --preset small --tokens 1e10` or `toolkit scaling sweep --dataset input.txt`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = subcommand_usage("toolkit scaling", MODES)
    if argv and argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    if not argv or argv[0] not in MODES:
        print(usage, file=sys.stderr)
        raise SystemExit(2)
    arguments_class, run, render = MODES[argv[0]]
    (args,) = argument_parser(arguments_class, f"toolkit scaling {argv[0]}").parse_args_and_config(argv[1:])
    print(render(run(args)))
    return 0


__all__ = [
    "PEAK_BF16_TFLOPS",
    "ComputeEstimate",
    "GPTShape",
    "ParameterCounts",
    "PowerLawFit",
    "SweepArguments",
    "SweepPoint",
    "chinchilla_tokens",
    "estimate_compute",
    "fit_power_law",
    "gpt_parameter_counts",
    "run_sweep",
    "training_flops",
    "training_flops_with_attention",
]
