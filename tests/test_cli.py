"""The `toolkit` console script: dispatch, `toolkit generate`, `toolkit bench`."""

import re
import subprocess
import sys

import pytest
import torch

from recipes_loader import REPO
from toolkit import GPTConfig, GPTForCausalLM
from toolkit.cli import main
from toolkit.generation import GenerateArguments, stream_completions
from toolkit.tokenization import build_char_tokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    tokenizer = build_char_tokenizer("abcdefghijklmnopqrstuvwxyz \n")
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
    model = GPTForCausalLM(config)
    torch.nn.init.normal_(model.lm_head.weight, std=0.3)  # tied to the embedding: varied next-token distributions
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_usage_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "generate" in out and "bench" in out
    assert main(["no-such-command"]) == 2


def test_generate_streams_the_completion_it_returns(model_dir, tmp_path):
    stream = tmp_path / "stream.txt"
    args = GenerateArguments(str(model_dir), prompt="hello", max_new_tokens=20, seed=3)
    with open(stream, "w") as handle:
        (completion,) = stream_completions(args, stream=handle)
    assert len(completion) > 0
    assert completion in stream.read_text()


def test_same_seed_same_sample_and_greedy_is_deterministic(model_dir):
    def sample(**overrides):
        fields = dict(prompt="abc", max_new_tokens=30, seed=7, top_k=None)
        args = GenerateArguments(str(model_dir), **{**fields, **overrides})
        with open("/dev/null", "w") as sink:
            return stream_completions(args, stream=sink)[0]

    assert sample() == sample()
    assert sample(seed=8) != sample()
    assert sample(temperature=0) == sample(temperature=0, seed=99)


def test_generate_command_line(model_dir):
    command = [sys.executable, "-m", "toolkit.cli", "generate", "--model_name_or_path", str(model_dir)]
    result = subprocess.run(
        [*command, "--prompt", "ab", "--max_new_tokens", "10", "--temperature", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "---------------" in result.stdout


def test_generate_rejects_bad_sampling_settings(model_dir):
    with pytest.raises(ValueError, match="top_p must be in \\(0, 1\\]"):
        stream_completions(GenerateArguments(str(model_dir), top_p=1.5, max_new_tokens=2))
    with pytest.raises(ValueError, match="exceeds the model's context of 1024 tokens"):
        stream_completions(GenerateArguments(str(model_dir), max_new_tokens=2000))


def test_generate_from_a_folder_without_a_tokenizer(tmp_path):
    GPTForCausalLM(GPTConfig.from_preset("tiny")).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="No tokenizer could be loaded .*tokenizer.save_pretrained"):
        stream_completions(GenerateArguments(str(tmp_path)))


def help_commands() -> list[list[str]]:
    from toolkit.bench import BENCHMARKS
    from toolkit.cli import commands as listed
    from toolkit.scaling import MODES

    commands = [[name, "--help"] for name in listed()]
    commands += [["bench", name, "--help"] for name in BENCHMARKS] + [["scaling", name, "--help"] for name in MODES]
    return [[], ["--help"], *commands]


@pytest.mark.parametrize("argv", help_commands(), ids=lambda argv: " ".join(argv) or "toolkit")
def test_every_command_answers_help(argv, capsys):
    try:
        status = main(argv)
    except SystemExit as stop:  # argparse's --help exits 0 itself
        status = stop.code
    assert status == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("script", sorted(REPO.joinpath("recipes").glob("*.py")), ids=lambda path: path.name)
def test_every_recipe_answers_help(script):
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"usage: {script.stem} ")


@pytest.mark.parametrize("command", ["bench", "scaling"])
def test_commands_with_subcommands_describe_each_in_their_help(command, capsys):
    from toolkit.bench import BENCHMARKS
    from toolkit.scaling import MODES

    assert main([command, "--help"]) == 0
    listed = capsys.readouterr().out
    for name, (arguments_class, *_) in {"bench": BENCHMARKS, "scaling": MODES}[command].items():
        summary = arguments_class.__doc__.strip().splitlines()[0]
        assert re.search(rf"^  {name} +{re.escape(summary)}$", listed, flags=re.M), listed
