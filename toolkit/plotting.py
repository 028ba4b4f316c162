"""Plots people would rather look at than read: training curves, comparisons."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402


def plot_training_curves(
    log_history: list[dict], path: str | Path, title: str = "", with_perplexity: bool = True
) -> Path | None:
    """Loss (and, for language models, perplexity) against step, train and eval, from `Trainer.state.log_history`."""
    train = [(row["step"], row["loss"]) for row in log_history if "loss" in row and "step" in row]
    evals = [(row["step"], row["eval_loss"]) for row in log_history if "eval_loss" in row and "step" in row]
    if not train and not evals:
        return None
    figure, axes = plt.subplots(
        1, 2 if with_perplexity else 1, figsize=(11 if with_perplexity else 6, 4), squeeze=False
    )
    loss_axis = axes[0, 0]
    for points, label, style in ((train, "train", "-"), (evals, "eval", "o-")):
        if points:
            steps, losses = zip(*points, strict=True)
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
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
