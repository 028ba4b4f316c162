"""Training curves people would rather look at than read, drawn with matplotlib's object API: `Figure` objects
render straight to PNG files, so importing the toolkit never loads pyplot or changes a notebook's backend."""

import logging
import math
from collections.abc import Callable
from pathlib import Path

from matplotlib.figure import Figure

logger = logging.getLogger(__name__)


def finite(values) -> list[float]:
    """Values as floats, with NaN for what cannot be drawn (None, inf, NaN; a logged reward is None when every reward
    function skipped every completion): matplotlib leaves NaN points out, while inf breaks the axis limits."""
    return [float(value) if value is not None and math.isfinite(value) else math.nan for value in values]


def band(mean: list[float], spread: list[float]) -> tuple[list[float], list[float]]:
    """mean - spread and mean + spread, NaN where either is missing or the sum overflows."""
    return finite(m - s for m, s in zip(mean, spread)), finite(m + s for m, s in zip(mean, spread))


def draw_run_curves(plot: Callable, history, path: str | Path, *args) -> Path | None:
    """`plot(history, path, *args)` at the end of a run, whose results matter more than its figure: a drawing that
    fails is logged with its reason and the run goes on to save its model and metrics."""
    try:
        return plot(history, path, *args)
    except Exception as error:  # noqa: BLE001 - any failure to draw; the run's files come first
        logger.warning(
            "Could not draw %s (%s: %s); the run's model and metrics are saved.", path, type(error).__name__, error
        )
        return None


def save_figure(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def plot_training_curves(
    log_history: list[dict], path: str | Path, title: str = "", with_perplexity: bool = True
) -> Path | None:
    """Loss (and, for language models, perplexity) against step, train and eval, from `Trainer.state.log_history`."""
    train = [(row["step"], row["loss"]) for row in log_history if "loss" in row and "step" in row]
    evals = [(row["step"], row["eval_loss"]) for row in log_history if "eval_loss" in row and "step" in row]
    if not train and not evals:
        return None
    figure = Figure(figsize=(11 if with_perplexity else 6, 4), layout="tight")
    axes = figure.subplots(1, 2 if with_perplexity else 1, squeeze=False)
    loss_axis = axes[0, 0]
    for points, label, style in ((train, "train", "-"), (evals, "eval", "o-")):
        if points:
            steps, losses = zip(*points, strict=True)
            losses = finite(losses)
            loss_axis.plot(steps, losses, style, label=label)
            if with_perplexity:
                axes[0, 1].plot(steps, [math.exp(min(loss, 50)) for loss in losses], style, label=label)
    loss_axis.set(xlabel="step", ylabel="loss (nats/token)" if with_perplexity else "loss", title="Loss")
    if with_perplexity:
        axes[0, 1].set(xlabel="step", ylabel="perplexity", title="Perplexity", yscale="log")
    for axis in axes[0]:
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def plot_ppo_curves(history: list[dict], path: str | Path, kl_estimator: str = "k1") -> Path:
    """Score (mean and spread), score minus the KL penalty, KL to the reference and response length per PPO step."""
    steps = [metrics["step"] for metrics in history]
    figure = Figure(figsize=(15, 4), layout="constrained")
    score_axes, kl_axes, length_axes = figure.subplots(1, 3)
    mean = finite(metrics["objective/scores"] for metrics in history)
    std = finite(metrics["objective/scores_std"] for metrics in history)
    score_axes.plot(steps, mean, label="score")
    score_axes.fill_between(steps, *band(mean, std), alpha=0.2)
    score_axes.plot(steps, finite(metrics["objective/rlhf_reward"] for metrics in history), label="score - beta * KL")
    score_axes.set(title="Reward", xlabel="step")
    score_axes.legend()
    kl_axes.plot(steps, finite(metrics["objective/kl"] for metrics in history))
    kl_axes.set(title=f"KL(policy || reference), {kl_estimator}", xlabel="step", ylabel="nats")
    length_axes.plot(steps, finite(metrics["rollout/response_length"] for metrics in history))
    length_axes.set(title="Response length", xlabel="step", ylabel="tokens")
    return save_figure(figure, path)


def plot_online_rl_curves(log_history: list[dict], path: str | Path, title: str = "") -> Path | None:
    """A GRPO / RLOO run from `Trainer.state.log_history`: the reward (mean and spread, and each reward function's
    mean when there are several), KL to the reference (when beta > 0) and completion length, per logged step."""
    rows = [row for row in log_history if "reward" in row and "step" in row]
    if not rows:
        return None
    steps = [row["step"] for row in rows]
    figure = Figure(figsize=(15, 4), layout="constrained")
    reward_axes, kl_axes, length_axes = figure.subplots(1, 3)
    mean = finite(row["reward"] for row in rows)
    std = finite(row.get("reward_std", 0.0) for row in rows)
    reward_axes.plot(steps, mean, label="reward")
    reward_axes.fill_between(steps, *band(mean, std), alpha=0.2)
    components = sorted({key for row in rows for key in row if key.startswith("rewards/") and key.endswith("/mean")})
    if len(components) > 1:
        for key in components:
            reward_axes.plot(steps, finite(row.get(key) for row in rows), "--", label=key.split("/")[1])
    reward_axes.set(title="Reward", xlabel="step")
    reward_axes.legend()
    if any("kl" in row for row in rows):
        kl_axes.plot(steps, finite(row.get("kl") for row in rows))
    kl_axes.set(title="KL(policy || reference)", xlabel="step", ylabel="nats / token")
    length_axes.plot(steps, finite(row.get("completions/mean_length") for row in rows))
    length_axes.set(title="Completion length", xlabel="step", ylabel="tokens")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)
