"""Import a recipe script (recipes/<name>.py) as a module, so tests call its real `main(argv)` in-process."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", REPO / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DEMO_PLANS = REPO / "recipes/configs/demo"


def recipe_configs() -> list[Path]:
    """Every shipped config a recipe launches by itself: all of recipes/configs/ but the demo's plans, whose files are
    stages the demo runs with their plan's shared.yaml (`toolkit.pipelines.demo.plan_stages`)."""
    return sorted(path for path in (REPO / "recipes/configs").rglob("*.yaml") if DEMO_PLANS not in path.parents)
