"""The `toolkit` console script: `toolkit <command> [--flag value ...]`.

Each command parses its own dataclass arguments with `trl.TrlParser` (so `--config file.yaml` works too).
"""

import importlib
import sys

# command -> (module, function, one-line help). Modules are imported only when their command runs.
COMMANDS = {
    "demo": ("toolkit.demo", "main", "the whole pipeline on built-in data, on CPU, in minutes (report.md)"),
    "generate": ("toolkit.generation", "main", "stream a completion from a model folder or Hub id"),
    "bench": ("toolkit.bench", "main", "benchmarks measured side by side (toolkit bench model)"),
    "eval": ("toolkit.evaluation.runner", "main", "evaluate model folders on perplexity / GSM8K / BLEU tasks"),
    "scaling": ("toolkit.scaling", "main", "compute/cost estimates and a scaling sweep"),
    "push": ("toolkit.hub", "main", "upload a model or adapter folder to the Hub with a model card"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: toolkit <command> [--help] [--flag value ...]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
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
    module, function, _ = COMMANDS[name]
    return getattr(importlib.import_module(module), function)(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
