"""`toolkit demo`: the whole pipeline on the arithmetic task, on CPU, in minutes, offline.

The demo is a plan: a folder of stage configs (`recipes/configs/demo/full/`, or `quick/` with `--quick true`), each an
ordinary config of a recipe, run in the order of their names by the same pipelines `recipes/<job>.py` runs:
pretrain a small GPT from scratch -> fine-tune it three ways (full, LoRA, prompt tuning) -> a reward model -> PPO
with the exact-match reward -> DPO on pairs of the LoRA model's own answers -> GRPO with the exact-match reward ->
evaluate every stage -> report.md. A stage file is named `<n>-<job>[-<variant>].yaml`;
its stage is named by what follows the number. What the stages share is written once, in the plan's `shared.yaml`:
under `every_stage`, settings given to each stage whose job takes them; under a job's name, settings given to that
job's stages; a stage's own file wins.

Every stage writes its own run folder; running the demo again skips the stages whose run records say they finished
and resumes an interrupted one from its last checkpoint. `--output_dir` moves the whole plan (every path under the
plan's folder is rewritten); the configs as run are written to `<output_dir>/configs/`, so any stage can be run
again by hand with its recipe.
"""

import importlib.resources
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from trl import TrlParser

from ..jobs import JOBS
from ..parsing import argument_parser
from ..runs import RESULTS_CHART, checkpoints, is_complete, read_run, read_summary
from ..tasks.arithmetic import check_difficulty
from .common import job_parser, run_job

logger = logging.getLogger(__name__)

EVALUATION_STAGE = "eval"  # the stage whose results make the report's table
SHARED_FILE = "shared.yaml"  # the settings a plan's stages share
EVERY_STAGE = "every_stage"
HEADLINES = {
    ("perplexity", "perplexity"): "perplexity (lower is better)",
    ("gsm8k", "strict_match"): "exact match, strict",
    ("gsm8k", "flexible_extract"): "exact match, flexible",
    ("bleu", "bleu"): "BLEU of the solutions",
}


@dataclass
class DemoArguments:
    output_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where every stage and the report go. None: the plan's own (outputs/demo, outputs/demo-quick)."
        },
    )
    quick: bool = field(
        default=False,
        metadata={"help": "The quick plan (under 2 minutes): a 2-layer, width-64 GPT, fewer steps."},
    )
    plan: str | None = field(
        default=None, metadata={"help": "A folder of stage configs to run instead of the shipped full or quick plan."}
    )
    restart: bool = field(default=False, metadata={"help": "Start over instead of skipping finished stages."})
    seed: int | None = field(default=None, metadata={"help": "Seed of every stage. None: the plan's (0)."})
    difficulty: list[int] | None = field(
        default=None, metadata={"help": "Calculation steps of the arithmetic problems (1-3). None: the plan's (1)."}
    )
    pretrain_problems: int | None = field(
        default=None, metadata={"help": "Distinct problems in the pretraining corpus. None: the plan's (40000)."}
    )
    pretrain_steps: int | None = field(
        default=None,
        metadata={
            "help": "Pretraining optimizer steps. None: the plan's (800 of 16 x 256 tokens; quick: 600 of 32 x 64). "
            "Exact arithmetic appears late: the full plan's model solves 49 percent after 600 steps, 88 after 800."
        },
    )


@dataclass(frozen=True)
class Stage:
    name: str  # e.g. sft-lora
    job: str  # the recipe that runs it
    config: dict  # its YAML, relocated and with the command line's overrides


def plan_folder(args: DemoArguments):
    """The plan's stage configs: `--plan`, else the shipped plan (the checkout's recipes/configs/demo/, or its copy
    installed as `toolkit.demo_plans`)."""
    if args.plan is not None:
        return Path(args.plan)
    name = "quick" if args.quick else "full"
    checkout = Path(__file__).resolve().parents[2] / "recipes" / "configs" / "demo"
    if checkout.is_dir():
        return checkout / name
    return importlib.resources.files("toolkit.demo_plans") / name


def relocate(value, old_root: str, new_root: str):
    """`value` with every path under `old_root` moved under `new_root` (strings, in lists and dicts too)."""
    if isinstance(value, str) and (value == old_root or value.startswith(old_root + "/")):
        return new_root + value[len(old_root) :]
    if isinstance(value, list):
        return [relocate(item, old_root, new_root) for item in value]
    if isinstance(value, dict):
        return {key: relocate(item, old_root, new_root) for key, item in value.items()}
    return value


def load_plan(args: DemoArguments) -> tuple[list[Stage], Path]:
    """The stages in order, with `--output_dir` and the other overrides applied, and the plan's output folder."""
    if args.difficulty is not None:
        check_difficulty(args.difficulty, "--difficulty")
    stages = plan_stages(plan_folder(args))
    old_root = str(Path(stages[0].config["output_dir"]).parent)
    root = args.output_dir or old_root
    # The pretraining stage's own flags: settings of the stage named pretrain.
    pretraining = {"synthetic_train_size": args.pretrain_problems, "max_steps": args.pretrain_steps}
    overrides = {"pretrain": {key: value for key, value in pretraining.items() if value}}
    resolved = []
    for stage in stages:
        config = relocate(stage.config, old_root, root)
        if args.seed is not None and "seed" in config:
            config["seed"] = args.seed
        if args.difficulty is not None and "synthetic_difficulty" in config:
            config["synthetic_difficulty"] = list(args.difficulty)
        config.update(overrides.get(stage.name, {}))
        resolved.append(Stage(stage.name, stage.job, config))
    return resolved, Path(root)


def plan_stages(folder) -> list[Stage]:
    """A plan's stages in order, each its own file with the plan's shared settings it takes (as written: paths under
    the plan's own output folder)."""
    files = sorted(
        (item for item in folder.iterdir() if item.name.endswith(".yaml") and item.name != SHARED_FILE),
        key=lambda item: item.name,
    )
    if not files:
        raise ValueError(f"{folder} holds no stage configs (<n>-<job>.yaml).")
    shared = shared_settings(folder)
    stages = []
    for file in files:
        name = file.name.removesuffix(".yaml").split("-", 1)[-1]
        job = name.split("-")[0]
        if job not in JOBS:  # the registry: a job registered by a user runs as a stage too
            raise ValueError(f"{file.name}: the stage name must start with a job ({', '.join(JOBS)}), got {name!r}.")
        taken = job_settings(job)
        every_stage = {key: value for key, value in shared.get(EVERY_STAGE, {}).items() if key in taken}
        config = {**every_stage, **shared.get(job, {}), **yaml.safe_load(file.read_text())}
        stages.append(Stage(name, job, config))
    return stages


def shared_settings(folder) -> dict[str, dict]:
    """The plan's shared.yaml ({} without one): `every_stage` and per-job sections of settings."""
    path = folder / SHARED_FILE
    if not path.is_file():
        return {}
    shared = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(shared) - {EVERY_STAGE, *JOBS})
    if unknown:
        raise ValueError(f"{path}: sections are {EVERY_STAGE} or a job's name ({', '.join(JOBS)}), got {unknown}.")
    return shared


def job_settings(job: str) -> set[str]:
    """The settings a job's command line takes."""
    return {action.dest for action in job_parser(job)._actions}


def stage_record(stage: Stage) -> dict:
    """What the report reads of a finished stage: its record's wall time, peak memory and base model, and its
    summary (metrics.json, the same head for every job)."""
    folder = Path(stage.config["output_dir"])
    record = read_run(folder)
    return {
        "seconds": record.seconds,
        "peak_memory_mib": record.peak_memory_mib,
        "base_model": record.base_model,
        "metrics": read_summary(folder),
    }


def task_scores(summary: dict) -> dict[str, dict]:
    """An evaluation's scores by `<model>/<task>`, from its summary's rows."""
    return {f"{row['model']}/{row['task']}": row["metrics"] for row in summary["results"]}


def run_stage(stage: Stage, configs: Path, restart: bool) -> dict:
    """Run a stage unless its run record says it finished; resume it from its last checkpoint if interrupted."""
    folder = Path(stage.config["output_dir"])
    record = read_run(folder)
    if not restart and record is not None and record.status == "finished":
        logger.info("[demo] %s: done already, skipping", stage.name)
        return stage_record(stage)
    resumable = JOBS[stage.job].resumable
    resume = not restart and resumable and any(is_complete(path) for path in checkpoints(folder))
    logger.info("[demo] %s: %s", stage.name, "resuming" if resume else "starting")
    path = configs / f"{stage.name}.yaml"
    path.write_text(yaml.safe_dump(stage.config, sort_keys=False))
    flags = ["--resume_from_checkpoint", "latest"] if resume else ["--overwrite_output_dir", "true"]
    try:
        run_job(stage.job, ["--config", str(path), *flags])
    except SystemExit:  # a stage stopped by a signal exits 128 + its number; the demo exits the same way
        logger.warning("[demo] %s stopped; run the demo again to resume it.", stage.name)
        raise
    return stage_record(stage)


def starting_points(stages: list[Stage], records: dict[str, dict], evaluation: Stage) -> dict[str, str]:
    """For each evaluated model, the evaluated model its run started from (the base model its run recorded)."""
    labels = {
        str(Path(path)): name for path, name in zip(evaluation.config["models"], evaluation.config["model_names"])
    }
    starts = {}
    for stage in stages:
        label, base = labels.get(str(Path(stage.config["output_dir"]))), records[stage.name]["base_model"]
        if label is not None and base is not None and str(Path(base)) in labels:
            starts[label] = labels[str(Path(base))]
    return starts


def stage_line(name: str, summary: dict) -> str:
    """A stage in one line of the report, from its summary's head: what it trained on and its headline figures."""
    method = f", {summary['method']}" if summary.get("method") else ""
    trained = f"{summary['units']:,.0f} {summary['unit']}" if summary.get("units") is not None else ""
    figures = [f"{metric} {value:.3g}" for metric, value in summary["headline"].items()]
    return f"- {name} ({summary['job']}{method}): " + "; ".join(part for part in (trained, *figures) if part) + "."


def write_report(output_dir: Path, stages: list[Stage], records: dict[str, dict]) -> Path:
    """report.md: each evaluated stage's scores and its gain over the model it started from, every other stage's
    headline figures, times."""
    evaluation = next(stage for stage in stages if stage.name == EVALUATION_STAGE)
    scores = task_scores(records[evaluation.name]["metrics"])
    starts = starting_points(stages, records, evaluation)
    lines = [
        "# toolkit demo report",
        "",
        f"The arithmetic task (difficulty {evaluation.config['synthetic_difficulty']}), {evaluation.config['limit']} "
        "held-out test problems, 0-shot greedy answers; perplexity of the same problems as `Question: ...\\nAnswer: "
        "<worked solution>` texts (the pretrained model never saw the words Question/Answer, hence its high figure).",
        "",
        "| stage | " + " | ".join(HEADLINES.values()) + " |",
        "|---|" + "---:|" * len(HEADLINES),
    ]
    for name in evaluation.config["model_names"]:
        cells = []
        for task, metric in HEADLINES:
            value = scores[f"{name}/{task}"][metric]
            start = starts.get(name)
            gain = "" if start is None else f" ({value - scores[f'{start}/{task}'][metric]:+.3g})"
            cells.append(f"{value:.4g}{gain}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Gains in parentheses are against the model the stage started from (its run's base model). Each training "
        "stage, with what it trained on and its headline figures (reward: sampled reward over the first and last "
        "fifth of the steps):",
        "",
    ]
    lines += [stage_line(stage.name, records[stage.name]["metrics"]) for stage in stages if stage != evaluation]
    lines += [
        "",
        "| stage | seconds | peak memory (MiB) |",
        "|---|---:|---:|",
        *(
            f"| {name} | {record['seconds']:.0f} | {record['peak_memory_mib'] or math.nan:,.0f} |"
            for name, record in records.items()
        ),
        f"| total | {sum(record['seconds'] for record in records.values()):.0f} | |",
        "",
        f"![scores per stage]({evaluation.name}/{RESULTS_CHART})",
        "",
        "Training curves: `<stage>/training_curves.png`. Per-example outputs: `eval/<model>/<task>.jsonl`. The "
        "configs as run: `configs/<stage>.yaml`.",
    ]
    path = output_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(args: DemoArguments) -> dict[str, dict]:
    """Every stage in order (skipping finished ones unless `restart`); returns each stage's record."""
    stages, output_dir = load_plan(args)
    configs = output_dir / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    records = {stage.name: run_stage(stage, configs, args.restart) for stage in stages}
    report = write_report(output_dir, stages, records)
    logger.info("%s\n[demo] report: %s", report.read_text(), report)
    return records


def build_parser() -> TrlParser:
    return argument_parser(DemoArguments, "demo")


def main(argv: list[str] | None = None) -> dict[str, dict]:
    (args,) = build_parser().parse_args_and_config(argv)
    return run(args)
