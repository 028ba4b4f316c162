"""The `toolkit` console script, the one front door: `toolkit <command> [--flag value ...]`.

The jobs (pretrain, sft, reward, ppo, dpo, grpo, rloo, eval, push, demo) run the same `main(argv)` as
`recipes/<job>.py`; each command parses its own dataclass arguments with `trl.TrlParser`, so `--config file.yaml`
works everywhere.
"""

import importlib
import sys

# command -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS = {
    "pretrain": ("toolkit.pipelines.pretrain", "pretrain a GPT from scratch (our GPT or GPT-2 architecture)"),
    "sft": ("toolkit.pipelines.sft", "fine-tune a causal LM: full, LoRA or prompt tuning"),
    "reward": ("toolkit.pipelines.reward", "train a reward model on preference pairs"),
    "ppo": ("toolkit.pipelines.ppo", "PPO RLHF with a reward model or the exact-match reward"),
    "dpo": ("toolkit.pipelines.dpo", "DPO on preference pairs (no reward model)"),
    "grpo": ("toolkit.pipelines.grpo", "GRPO with verifiable rewards or a reward model (no value model)"),
    "rloo": ("toolkit.pipelines.rloo", "RLOO, GRPO's leave-one-out sibling"),
    "eval": ("toolkit.pipelines.eval", "evaluate model folders on perplexity / GSM8K / BLEU tasks"),
    "push": ("toolkit.pipelines.push", "upload a run folder to the Hub with a model card"),
    "demo": ("toolkit.pipelines.demo", "the whole pipeline on built-in data, on CPU, in minutes (report.md)"),
    "generate": ("toolkit.generation", "stream a completion from a model folder or Hub id"),
    "bench": ("toolkit.bench", "benchmarks measured side by side (toolkit bench model)"),
    "scaling": ("toolkit.scaling", "compute/cost estimates and a scaling sweep"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: toolkit <command> [--help] [--flag value ...]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"toolkit: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, _ = COMMANDS[name]
    importlib.import_module(module).main(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
