"""Every launch command the project shows (README, docs/, recipe docstrings, config headers) parses for real:
the Accelerate config loads with Accelerate's loader, and the recipe's own parser accepts the YAML and flags."""

import ast
import re
import shlex
import tempfile
from pathlib import Path

import pytest
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from trl import TrlParser

from recipes_loader import DEMO_PLANS, REPO, load_recipe, recipe_configs
from toolkit.bench import BENCHMARKS
from toolkit.generation import GenerateArguments
from toolkit.jobs import JOBS
from toolkit.pipelines.common import job_parser
from toolkit.pipelines.demo import build_parser as build_demo_parser
from toolkit.pipelines.demo import plan_stages
from toolkit.pipelines.push import parse_arguments as parse_push_arguments
from toolkit.scaling import MODES as SCALING_MODES

# The pages whose ```bash blocks are checked: the README and every page of docs/.
DOCUMENTED_PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Programs a documented command may run unchecked: installs (also into a second venv, by its own pip) and the test
# command, which CI runs itself. `python -m venv ...` is allowed too. Anything else (git clone, hf auth login, sbatch)
# belongs in a ```text block.
UNCHECKED_PROGRAMS = {"pip", "pytest"}
ACCELERATE_FLAGS_WITH_VALUE = {
    "--config_file",
    "--num_processes",
    "--mixed_precision",
    "--num_machines",
    "--machine_rank",
    "--main_process_ip",
    "--main_process_port",
    "--rdzv_backend",
}


def documented_commands(page: Path) -> list[str]:
    """Commands in a page's bash blocks; `a && b` counts as two, and leading `VAR=value` settings are dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S)
    lines = [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    parts = [part.strip() for line in lines if line and not line.startswith("#") for part in line.split("&&")]
    return [re.sub(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)+", "", part) for part in parts]


def docstring_commands(script: Path) -> list[str]:
    text = ast.get_docstring(ast.parse(script.read_text())).replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip().startswith("accelerate launch")]


def config_header_commands() -> list[tuple[Path, str]]:
    headers = []
    for config in recipe_configs():
        first = config.read_text().splitlines()[0]
        assert first.startswith("# accelerate launch "), f"{config} must start with its launch command"
        headers.append((config, first[2:]))
    return headers


def check_accelerate_launch(command: str) -> None:
    words = shlex.split(command, comments=True)
    assert words[:2] == ["accelerate", "launch"], command
    words = words[2:]
    while words[0].startswith("--"):
        flag = words.pop(0)
        assert flag in ACCELERATE_FLAGS_WITH_VALUE, f"unexpected accelerate flag {flag} in: {command}"
        value = words.pop(0)
        if flag == "--config_file":
            load_config_from_file(str(REPO / value))
    script, recipe_args = Path(words[0]), words[1:]
    assert script.parts[0] == "recipes" and (REPO / script).is_file(), command
    recipe_args = [str(REPO / a) if a.startswith("recipes/configs/") else a for a in recipe_args]
    parser = load_recipe(script.stem).build_parser()
    if any(action.dest == "use_cpu" for action in parser._actions):
        # GPU configs ask for bf16, which TrainingArguments refuses to even parse on a machine without a GPU.
        recipe_args += ["--use_cpu", "true"]
    parser.parse_args_and_config(recipe_args)


def check_toolkit_command(command: str) -> None:
    """`toolkit <job>` and `recipes/<job>.py` parse with the same job parser; the tools with their own."""
    words = shlex.split(command, comments=True)
    assert words[0] == "toolkit", command
    name, rest = words[1], words[2:]
    if name == "generate":
        TrlParser(GenerateArguments).parse_args_and_config(rest)
    elif name == "push":
        parse_push_arguments(rest)
    elif name == "demo":
        build_demo_parser().parse_args_and_config(rest)
    elif name == "bench":
        TrlParser(BENCHMARKS[rest[0]][0]).parse_args_and_config(rest[1:])
    elif name == "scaling":
        TrlParser(SCALING_MODES[rest[0]][0]).parse_args_and_config(rest[1:])
    elif name in JOBS:
        job_parser(name).parse_args_and_config(rest)
    else:
        pytest.fail(f"documented command for an unknown toolkit command: {command}")


def test_the_docs_show_the_launch_commands():
    launches = [c for page in DOCUMENTED_PAGES for c in documented_commands(page) if c.startswith("accelerate launch")]
    assert len(launches) >= 7


@pytest.mark.parametrize("page", DOCUMENTED_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_documented_commands_parse(page):
    for command in documented_commands(page):
        if command.startswith("accelerate launch"):
            check_accelerate_launch(command)
        elif command.startswith("toolkit "):
            check_toolkit_command(command)
        else:
            program = Path(command.split()[0]).name
            assert program in UNCHECKED_PROGRAMS or command.startswith("python -m venv "), (
                f"{page.name}: command nobody checks (put it in a ```text block): {command}"
            )


@pytest.mark.parametrize("script", sorted((REPO / "recipes").glob("*.py")), ids=lambda p: p.name)
def test_recipe_docstring_commands_parse(script):
    commands = docstring_commands(script)
    assert commands, f"{script.name}'s docstring must hold its launch command"
    for command in commands:
        check_accelerate_launch(command)


@pytest.mark.parametrize("plan", sorted(DEMO_PLANS.iterdir()), ids=lambda path: path.name)
def test_every_demo_stage_parses_with_its_job_and_the_plan_shared_settings(plan):
    for stage in plan_stages(plan):
        settings = yaml.safe_dump(stage.config)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as config:
            config.write(settings)
            config.flush()
            job_parser(stage.job).parse_args_and_config(["--config", config.name, "--use_cpu", "true"])


@pytest.mark.parametrize("config, command", config_header_commands(), ids=lambda x: getattr(x, "name", ""))
def test_every_config_parses_with_its_recipe_and_its_header_command(config, command):
    assert str(config.relative_to(REPO)) in command
    check_accelerate_launch(command)


def test_the_slurm_script_launches_every_node_with_its_rank(tmp_path):
    """recipes/launch.slurm under stand-ins for SLURM's `scontrol` and `srun` and for `accelerate`, on 2 nodes: the
    command each node would run parses as a launch command, with the node's rank and the first node as main."""
    import os
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stubs = {
        "scontrol": "#!/bin/bash\nprintf 'node-a\\nnode-b\\n'\n",
        "srun": '#!/bin/bash\nfor rank in 0 1; do SLURM_PROCID=$rank "$@"; done\n',
        "accelerate": '#!/bin/bash\necho accelerate "$@"\n',
    }
    for name, text in stubs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "node-[a-b]"}
    env["SLURM_NNODES"] = "2"
    config = "recipes/configs/pretrain/gpt2_small_openwebtext.yaml"
    result = subprocess.run(
        ["bash", "recipes/launch.slurm", "pretrain", config, "--max_steps", "10"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    commands = result.stdout.strip().splitlines()
    assert len(commands) == 2
    for rank, command in enumerate(commands):
        assert f"--machine_rank {rank} " in command and "--main_process_ip node-a " in command
        assert "--num_processes 16 " in command and command.endswith("--max_steps 10")
        check_accelerate_launch(command)
