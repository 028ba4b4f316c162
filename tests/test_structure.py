"""The package's shape: no import cycles, building blocks never import pipelines, importing it changes no global
state, version-sensitive imports live in `toolkit/_compat.py`, the jobs are listed in `toolkit/jobs.py` alone, and
the library logs instead of printing."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from recipes_loader import REPO

PACKAGE = REPO / "toolkit"
# Exported next to saved weights (auto_map) and run in TRL 1.12's own environment: they import on their own.
STANDALONE = {"toolkit.models.configuration_gpt", "toolkit.models.modeling_gpt", "toolkit.bench.trl_ppo"}
TOOLS = ("toolkit.cli", "toolkit.bench", "toolkit.scaling")  # front doors and measurements, built on pipelines
TOP_LEVEL_ONLY = ("transformers", "peft", "trl", "accelerate", "huggingface_hub", "datasets", "evaluate")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_level(tree: ast.Module) -> list[ast.stmt]:
    """The statements that run on import: top level and inside top-level try/if, not under `if TYPE_CHECKING`."""
    statements, pending = [], list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            continue
        if isinstance(node, (ast.If, ast.Try)):
            pending += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
        statements.append(node)
    return statements


def imports_of(path: Path, on_import_only: bool = False) -> list[tuple[str, int]]:
    """(absolute module, line) of the imports in the file (only those that run on import, if asked), relative ones
    resolved."""
    package = module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    tree = ast.parse(path.read_text())
    found = []
    for node in module_level(tree) if on_import_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.append((module, node.lineno))
            # `from . import models` imports a module, not a name
            found += [(f"{module}.{alias.name}", node.lineno) for alias in node.names if node.module is None]
    return found


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py") if "metrics" not in path.parts}


def internal_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        targets = {target for target, _ in imports_of(path, on_import_only=True) if target.startswith("toolkit")}
        # importing toolkit.a.b runs toolkit/a/__init__.py too
        expanded = set()
        for target in targets:
            parts = target.split(".")
            expanded |= {".".join(parts[:i]) for i in range(2, len(parts) + 1)} & set(MODULES)
        graph[name] = expanded - {name}
    return graph


def test_no_import_cycles_at_module_level():
    graph, state, stack = internal_graph(), {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open" and not node.startswith(target + "."):  # a package's own submodules
                cycle = stack[stack.index(target) :] + [target]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_building_blocks_never_import_pipelines():
    for name, path in MODULES.items():
        if name.startswith(("toolkit.pipelines", *TOOLS)) or name == "toolkit":
            continue
        for target, line in imports_of(path):
            assert not target.startswith("toolkit.pipelines"), f"{path.relative_to(REPO)}:{line} imports {target}"


def test_version_sensitive_imports_live_in_compat():
    for name, path in MODULES.items():
        if name in STANDALONE or name == "toolkit._compat":
            continue
        for target, line in imports_of(path):
            root = target.split(".")[0]
            if root in TOP_LEVEL_ONLY and target != root:
                pytest.fail(f"{path.relative_to(REPO)}:{line} imports {target}: import it in toolkit/_compat.py")


def test_importing_the_toolkit_loads_no_pyplot_and_keeps_the_backend():
    script = (
        "import sys, matplotlib\n"
        "matplotlib.use('svg')\n"
        "import toolkit, toolkit.plotting, toolkit.evaluation.report, toolkit.rlhf, toolkit.scaling\n"
        "print('matplotlib.pyplot' in sys.modules, matplotlib.get_backend())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "svg"]


def test_the_job_list_lives_in_one_module():
    """No module of the package but toolkit/jobs.py spells a collection of job names, nor compares a job's name
    (`job == "ppo"`, `job in ("grpo", "rloo")`): what a job is and writes is its own entry's business."""
    from toolkit.jobs import JOBS

    names = set(JOBS)
    found = []
    for path in (REPO / "toolkit").rglob("*.py"):
        if path.name == "jobs.py" or "bench" in path.parts:  # benchmarks name the methods they time
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
                items = node.keys if isinstance(node, ast.Dict) else node.elts
                spelled = {item.value for item in items if isinstance(item, ast.Constant)} & names
                if len(spelled) >= 2:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} lists {sorted(spelled)}")
            if isinstance(node, ast.Compare) and "job" in ast.unparse(node.left).lower():
                strings = [c for c in ast.walk(ast.Tuple(node.comparators)) if isinstance(c, ast.Constant)]
                if any(isinstance(c.value, str) for c in strings):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} compares {ast.unparse(node)}")
    assert found == []
    assert list(JOBS) == ["pretrain", "sft", "reward", "ppo", "dpo", "grpo", "rloo", "eval"]


# Front doors that print what a person asked for: the usage, benchmark and scaling tables, a streamed completion.
PRINTING_MODULES = {"toolkit.cli", "toolkit.generation"}


def test_the_library_logs_instead_of_printing():
    found = []
    for name, path in MODULES.items():
        if name in PRINTING_MODULES or name in STANDALONE or name.startswith(TOOLS):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert found == [], "use logging.getLogger(__name__) in the library"


def test_importing_the_toolkit_configures_no_logging():
    script = (
        "import logging, toolkit, toolkit.pipelines.common, toolkit.jobs\n"
        "ours = logging.getLogger('toolkit')\n"
        "print(ours.handlers, logging.getLogger().handlers, ours.level)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["[]", "[]", "0"]


def test_pyproject_ships_every_package():
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {module_name(path) for path in PACKAGE.rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to pyproject.toml's packages"
    assert listed - found == {"toolkit.demo_plans"}  # recipes/configs/demo, mapped by package-dir
