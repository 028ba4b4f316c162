"""One way every command parses its arguments: TRL's `TrlParser` over dataclasses (YAML defaults with `--config`,
command-line overrides), with whole flag names only, so a prefix such as `--learning_rat` is an error instead of
silently setting `--learning_rate`."""

from trl import TrlParser


def argument_parser(dataclass_types, prog: str) -> TrlParser:
    return TrlParser(dataclass_types, prog=prog, allow_abbrev=False)


__all__ = ["argument_parser"]
