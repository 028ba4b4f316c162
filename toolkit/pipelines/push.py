r"""Uploading a run to the Hugging Face Hub with a generated model card (`toolkit.hub`).

    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/push.py --config recipes/configs/push/tiny_cpu.yaml

parse (`toolkit push <folder> ...`: the first word is the folder) -> stage -> upload (or write the dry run), on the
main process only.
"""

import sys

from accelerate import PartialState
from trl import TrlParser

from ..hub import PushArguments, PushResult, push
from ..parsing import argument_parser


def build_parser() -> TrlParser:
    return argument_parser(PushArguments, "push")


def parse_arguments(argv: list[str] | None) -> PushArguments:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):  # `toolkit push <path> ...`: the first word is the folder
        argv = ["--model_path", *argv]
    (args,) = build_parser().parse_args_and_config(argv)
    return args


def run(args: PushArguments) -> PushResult | None:
    """`push` once under `accelerate launch --num_processes N`: on the main process only."""
    # cpu=True: the state is only asked which process this is, and an upload needs no accelerator.
    return push(args) if PartialState(cpu=True).is_main_process else None


def main(argv: list[str] | None = None) -> PushResult | None:
    return run(parse_arguments(argv))
