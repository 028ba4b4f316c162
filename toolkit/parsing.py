"""One way every command parses its arguments: TRL's `TrlParser` over dataclasses (YAML defaults with `--config`,
command-line overrides), with whole flag names only, so a prefix such as `--learning_rat` is an error instead of
silently setting `--learning_rate`."""

from trl import TrlParser


def argument_parser(dataclass_types, prog: str) -> TrlParser:
    return TrlParser(dataclass_types, prog=prog, allow_abbrev=False)


def subcommand_usage(prog: str, subcommands: dict[str, tuple]) -> str:
    """Usage of a command with subcommands (`toolkit bench`, `toolkit scaling`): one line per subcommand, from the
    first line of its arguments dataclass's docstring."""
    width = max(len(name) for name in subcommands)
    lines = [f"usage: {prog} {{{','.join(subcommands)}}} [--help] [--flag value ...]", "", "subcommands:"]
    for name, (arguments_class, *_) in subcommands.items():
        lines.append(f"  {name:<{width}}  {arguments_class.__doc__.strip().splitlines()[0]}")
    lines.append(f"\n`{prog} <subcommand> --help` lists its flags.")
    return "\n".join(lines)


__all__ = ["argument_parser", "subcommand_usage"]
