"""Evaluate one or several models (base, full fine-tune, LoRA / prompt-tuning adapter, PPO policy) on perplexity,
GSM8K-style accuracy and BLEU, and write a comparison: results.json, results.md, results.png and per-example records.

Launch:
    accelerate launch recipes/eval.py --config recipes/configs/eval/tiny_cpu.yaml

With N processes each takes a contiguous share of whole batches; per-example results are gathered and the metrics
computed once, so the numbers do not depend on N. Any YAML key can be overridden on the command line, e.g.
`--models outputs/pretrain-tiny outputs/sft-tiny --tasks perplexity bleu --limit 20`.
"""

import sys

from trl import TrlParser

from toolkit.evaluation.runner import EvalArguments, evaluate_models


def build_parser() -> TrlParser:
    return TrlParser(EvalArguments, prog="eval.py")


def main(argv: list[str] | None = None) -> dict:
    (args,) = build_parser().parse_args_and_config(argv)
    return evaluate_models(args)


if __name__ == "__main__":
    main(sys.argv[1:])
