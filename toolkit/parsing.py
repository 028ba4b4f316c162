"""What every command does first: parse its arguments with TRL's `TrlParser` over dataclasses (YAML defaults with
`--config`, command-line overrides), with whole flag names only, so a prefix such as `--learning_rat` is an error
instead of silently setting `--learning_rate`; and show the toolkit's log messages (`configure_logging`)."""

import logging
import sys

from trl import TrlParser


def argument_parser(dataclass_types, prog: str) -> TrlParser:
    return TrlParser(dataclass_types, prog=prog, allow_abbrev=False)


def check_fraction(name: str, value: float) -> None:
    """A share held out of the data (`--validation_fraction`): strictly between 0 and 1."""
    if not 0 < value < 1:
        raise ValueError(f"--{name} is the share held out, strictly between 0 and 1, got {value}.")


def subcommand_usage(prog: str, subcommands: dict[str, tuple]) -> str:
    """Usage of a command with subcommands (`toolkit bench`, `toolkit scaling`): one line per subcommand, from the
    first line of its arguments dataclass's docstring."""
    width = max(len(name) for name in subcommands)
    lines = [f"usage: {prog} {{{','.join(subcommands)}}} [--help] [--flag value ...]", "", "subcommands:"]
    for name, (arguments_class, *_) in subcommands.items():
        lines.append(f"  {name:<{width}}  {arguments_class.__doc__.strip().splitlines()[0]}")
    lines.append(f"\n`{prog} <subcommand> --help` lists its flags.")
    return "\n".join(lines)


def configure_logging(level: int = logging.INFO) -> None:
    """Show the toolkit's log messages (what a job loads, trains, writes) on stderr, as a command does; the library
    itself only logs (`logging.getLogger(__name__)`) and configures nothing on import."""
    logger = logging.getLogger("toolkit")
    if not any(isinstance(handler, ConsoleHandler) for handler in logger.handlers):
        handler = ConsoleHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)


class ConsoleHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a message comes (a test's capture, a redirected stream)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler's own assignment: the stream is always the current sys.stderr
        pass


__all__ = ["argument_parser", "configure_logging", "subcommand_usage"]
