"""The `toolkit` console script, the one front door: `toolkit <command> [--flag value ...]`.

The jobs (`toolkit.jobs.JOBS`) run through `run_job`, as `recipes/<job>.py` does; each parses its own dataclass
arguments with `trl.TrlParser`, so `--config file.yaml` works everywhere. The tools below are commands that are not
jobs: they write no run of their own.
"""

import importlib
import sys

from .jobs import JOBS
from .parsing import configure_logging

# command -> (module with main(argv), one-line help). Modules are imported only when their command runs.
TOOLS = {
    "push": ("toolkit.pipelines.push", "upload a run folder to the Hub with a model card"),
    "demo": ("toolkit.pipelines.demo", "the whole pipeline on built-in data, on CPU, in minutes (report.md)"),
    "generate": ("toolkit.generation", "stream a completion from a model folder or Hub id"),
    "bench": ("toolkit.bench", "benchmarks measured side by side (toolkit bench model)"),
    "scaling": ("toolkit.scaling", "compute/cost estimates and a scaling sweep"),
}


def commands() -> dict[str, str]:
    """Every command and its help: the registered jobs, then the tools."""
    return {**{name: job.summary for name, job in JOBS.items()}, **{name: help_ for name, (_, help_) in TOOLS.items()}}


def usage() -> str:
    listed = commands()
    width = max(len(name) for name in listed)
    lines = ["usage: toolkit <command> [--help] [--flag value ...]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, help_ in listed.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    configure_logging()
    if name in JOBS:
        from .pipelines.common import run_job

        run_job(name, rest)
    elif name in TOOLS:
        importlib.import_module(TOOLS[name][0]).main(rest)
    else:
        print(f"toolkit: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
