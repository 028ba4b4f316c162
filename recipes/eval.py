"""Evaluate one or several models (base, full fine-tune, LoRA / prompt-tuning adapter, PPO policy) on perplexity,
GSM8K-style accuracy and BLEU, and write a comparison: results.json, results.md, results.png and per-example records.

Launch:
    accelerate launch recipes/eval.py --config recipes/configs/eval/tiny_cpu.yaml

With N processes each takes a contiguous share of whole batches; per-example results are gathered and the metrics
computed once, so the numbers do not depend on N. Any YAML key can be overridden on the command line, e.g.
`--models outputs/pretrain-tiny outputs/sft-tiny --tasks perplexity bleu --limit 20`.
"""

import sys

from toolkit.pipelines.common import job_parser, run_job


def build_parser():
    return job_parser("eval")


def main(argv: list[str] | None = None) -> dict:
    return run_job("eval", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
