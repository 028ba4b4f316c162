"""The comparison `toolkit eval` writes: one row per model and task (`TaskScore`), a markdown table with one column
per headline metric, and bar charts (matplotlib's object API)."""

import math
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from ..plotting import save_figure

ARROWS = {"lower": "↓", "higher": "↑"}


@dataclass(frozen=True)
class TaskScore:
    """One model on one task: every number of the result, its protocol, where the examples came from, and the
    task's headline metrics [(metric, "lower" or "higher" is better)]."""

    model: str
    model_path: str
    adapter: bool
    task: str
    data: str
    num_examples: int
    metrics: dict
    protocol: str
    headline: list[list[str]]  # [metric, "lower" or "higher"]


def headline_columns(scores: list[TaskScore]) -> list[tuple[str, str, str]]:
    """(task, metric, better) for every headline metric of the tasks in `scores`, in task order."""
    first = {}
    for score in scores:
        first.setdefault(score.task, score)
    return [(task, metric, better) for task, score in first.items() for metric, better in score.headline]


def format_metric(value: float) -> str:
    """A metric as a table shows it: 4 decimals, or thousands separators and 2 decimals from 100 on."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4f}"


def results_table(scores: list[TaskScore], labels: list[str], baseline: str | None = None) -> str:
    """A markdown table, one row per model and one column per headline metric, then (with a `baseline`) each
    model's paired comparison with it, then the protocols."""
    columns = headline_columns(scores)
    by_key = {(score.model, score.task): score for score in scores}
    lines = [
        "| model | " + " | ".join(f"{task}: {metric} {ARROWS[better]}" for task, metric, better in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for label in labels:
        cells = [format_metric(by_key[label, task].metrics[metric]) for task, metric, _ in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if baseline is not None:
        lines += ["", *baseline_table(scores, labels, baseline)]
    lines += ["", "Protocols:"]
    protocols: dict[tuple[str, str], list[str]] = {}
    for score in scores:
        protocols.setdefault((score.task, score.protocol), []).append(score.model)
    for (task, protocol), models in protocols.items():
        lines.append(f"- {task} ({', '.join(models)}): {protocol}")
    return "\n".join(lines)


def baseline_table(scores: list[TaskScore], labels: list[str], baseline: str) -> list[str]:
    """Against `baseline` on the same examples: the examples each model gained and lost, and the exact McNemar
    p-value, per metric with per-example outcomes (`compare_with_baseline` put them in the metrics)."""
    by_key = {(score.model, score.task): score for score in scores}
    compared = [
        (task, metric)
        for task, metric, _ in headline_columns(scores)
        if any(f"{metric}_p_value" in score.metrics for score in scores if score.task == task)
    ]
    if not compared:
        return []
    lines = [
        f"Against {baseline} on the same examples (gained / lost, exact McNemar p):",
        "",
        "| model | " + " | ".join(f"{task}: {metric}" for task, metric in compared) + " |",
        "|---|" + "---:|" * len(compared),
    ]
    for label in labels:
        if label != baseline:
            cells = []
            for task, metric in compared:
                metrics = by_key[label, task].metrics
                gained, lost, p = (metrics[f"{metric}_{key}"] for key in ("gained", "lost", "p_value"))
                cells.append(f"+{gained} / -{lost}, p = {p:.3g}")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def plot_results(scores: list[TaskScore], labels: list[str], path: Path) -> Path:
    """Bar charts comparing the models, one panel per headline metric; log scale for widely spread perplexities."""
    columns = headline_columns(scores)
    by_key = {(score.model, score.task): score for score in scores}
    num_columns = min(3, len(columns))
    num_rows = math.ceil(len(columns) / num_columns)
    figure = Figure(figsize=(4.2 * num_columns, 3.4 * num_rows), layout="tight")
    axes = figure.subplots(num_rows, num_columns, squeeze=False)
    colors = [f"C{i}" for i in range(10)]
    for axis, (task, metric, better) in zip(axes.flat, columns):
        values = [by_key[label, task].metrics[metric] for label in labels]
        finite = [value for value in values if math.isfinite(value)]
        heights = [value if math.isfinite(value) else 0.0 for value in values]
        bars = axis.bar(labels, heights, color=[colors[i % len(colors)] for i in range(len(labels))])
        for bar, value in zip(bars, values):
            axis.annotate(
                format_metric(value),
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        if "perplexity" in metric and finite and min(finite) > 0 and max(finite) / min(finite) > 50:
            axis.set_yscale("log")
        elif finite and min(finite) >= 0:
            axis.set_ylim(bottom=0)
        axis.set_title(f"{task}: {metric} ({better} is better)", fontsize=10)
        axis.tick_params(axis="x", labelrotation=20, labelsize=8)
        axis.grid(axis="y", alpha=0.3)
    for axis in list(axes.flat)[len(columns) :]:
        axis.set_visible(False)
    return save_figure(figure, path)
