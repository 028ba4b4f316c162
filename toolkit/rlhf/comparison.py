"""Alignment methods side by side: what each training run cost (its run folder says) and how far each model moved
from the model it started from (a KL estimate measured the same way for every method).

The training logs of the methods measure KL differently (our PPO: summed over a response, k1; TRL's GRPO and RLOO:
per token, k3; DPO samples nothing), so the comparison estimates it afresh: answers sampled from each model at
temperature 1 (no top-k), KL(model || reference) ~ mean over answers of sum_t [log p_model - log p_reference].
"""

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import PartialState
from matplotlib.figure import Figure
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .._compat import gather_object
from ..evaluation.task import batch_share, check_gathered
from ..plotting import save_figure
from ..runs import METRICS_FILE, METRICS_LOG_FILE, TRAINER_STATE_FILE, read_json, run_of_model
from .rollout import left_pad, response_logprobs, truncate_after_eos

ALIGNMENT_JOBS = ("ppo", "dpo", "grpo", "rloo")


@torch.no_grad()
def sampled_kl(
    model: PreTrainedModel,
    reference: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    seed: int = 0,
) -> list[float]:
    """One answer per prompt sampled from `model` at temperature 1, and its log-ratio to `reference` summed over the
    answer's tokens (up to and including EOS): an unbiased estimate of KL(model || reference) per answer, in nats.
    Under several processes each samples whole batches; the estimates are gathered per prompt, in order."""
    state = PartialState()
    device = next(model.parameters()).device
    share = batch_share(len(prompts), batch_size, state.process_index, state.num_processes)
    records = []
    for start in range(share.start, share.stop, batch_size):
        indices = range(start, min(start + batch_size, share.stop))
        torch.manual_seed(seed + start)  # the same answers whatever the number of processes
        encoded = [tokenizer(prompts[index], add_special_tokens=False)["input_ids"] for index in indices]
        queries, query_mask = left_pad(encoded, tokenizer.pad_token_id)
        queries, query_mask = queries.to(device), query_mask.to(device)
        sequences = model.generate(
            input_ids=queries,
            attention_mask=query_mask,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        responses, response_mask, _ = truncate_after_eos(
            sequences[:, queries.shape[1] :], tokenizer.eos_token_id, tokenizer.pad_token_id
        )
        input_ids = torch.cat([queries, responses], dim=1)
        attention_mask = torch.cat([query_mask, response_mask], dim=1)
        log_ratio = response_logprobs(model, input_ids, attention_mask, queries.shape[1], 1.0)
        log_ratio -= response_logprobs(reference, input_ids, attention_mask, queries.shape[1], 1.0)
        per_answer = (log_ratio * response_mask).sum(1).tolist()
        records += [{"prompt": index, "kl": value} for index, value in zip(indices, per_answer)]
    records = gather_object(records) if state.num_processes > 1 else records
    check_gathered(records, "prompt", expected=len(prompts))
    return [record["kl"] for record in records]


@dataclass
class TrainingSummary:
    """What a model's training run recorded: its job and method, how many episodes it sampled (DPO: pairs it
    trained on) and how fast, its peak memory, wall time, and its sampled reward per logged step."""

    job: str
    method: str | None
    units: str  # "episodes" or "pairs"
    count: float | None
    per_second: float | None
    peak_memory_mib: float | None
    seconds: float | None
    reward_curve: list[tuple[float, float]] = field(default_factory=list)  # (episodes so far, mean sampled reward)


def reward_curve(run: Path, job: str, metrics: dict) -> list[tuple[float, float]]:
    """(episodes, mean sampled reward) per logged step: PPO's metrics.jsonl, or TRL's log history (GRPO, RLOO)."""
    if job == "ppo" and (run / METRICS_LOG_FILE).is_file():
        rows = [json.loads(line) for line in (run / METRICS_LOG_FILE).read_text().splitlines() if line.strip()]
        return [(row["episodes"], row["objective/scores"]) for row in rows]
    if job in ("grpo", "rloo") and (run / TRAINER_STATE_FILE).is_file() and metrics.get("episodes"):
        per_step = metrics["episodes"] / metrics["global_step"]
        history = read_json(run / TRAINER_STATE_FILE)["log_history"]
        return [(row["step"] * per_step, row["reward"]) for row in history if "reward" in row]
    return []


def training_summary(model_folder: str | Path) -> TrainingSummary | None:
    """The alignment run (PPO, DPO, GRPO, RLOO) a model folder belongs to, summarised; None for other models."""
    run, record = run_of_model(model_folder)
    if record is None or record.job not in ALIGNMENT_JOBS:
        return None
    metrics = read_json(run / METRICS_FILE) if (run / METRICS_FILE).is_file() else {}
    units = "pairs" if record.job == "dpo" else "episodes"
    return TrainingSummary(
        job=record.job,
        method=record.method,
        units=units,
        count=metrics.get(units),
        per_second=metrics.get(f"{units}_per_second"),
        peak_memory_mib=record.peak_memory_mib,
        seconds=record.seconds,
        reward_curve=reward_curve(run, record.job, metrics),
    )


def window_mean(curve: list[tuple[float, float]], share: float, last: bool) -> float:
    """The mean reward of the first (or last) `share` of the logged steps."""
    count = max(1, round(len(curve) * share))
    window = curve[-count:] if last else curve[:count]
    return sum(reward for _, reward in window) / len(window)


def number(value: float | None, form: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, form)


def comparison_table(rows: list[dict], metric_title: str, baseline: str) -> str:
    """The markdown table: per model, the headline metric with its change against the baseline (gained, lost,
    McNemar p), KL to the baseline, and what its training cost.

    Each row: name, score, gained, lost, p_value, kl (or None), summary (TrainingSummary or None)."""
    header = (
        f"| model | method | {metric_title} | gained / lost vs {baseline} | McNemar p | KL to {baseline} (nats per "
        "answer) | sampled reward, first -> last 20% of steps | episodes (DPO: pairs) | per second | peak memory "
        "(MiB) | wall time (s) |"
    )
    lines = [header, "|" + "---|" * 11]
    for row in rows:
        summary: TrainingSummary | None = row["summary"]
        curve = summary.reward_curve if summary else []
        reward = (
            f"{window_mean(curve, 0.2, last=False):.3f} -> {window_mean(curve, 0.2, last=True):.3f}" if curve else "-"
        )
        method = f"{summary.job} ({summary.method})" if summary else "-"
        changed = "-" if row["gained"] is None else f"+{row['gained']} / -{row['lost']}"
        cells = [
            row["name"],
            method,
            f"{row['score']:.4f}",
            changed,
            number(row["p_value"], ".2g"),
            number(row["kl"], ".3f"),
            reward,
            number(summary.count if summary else None, ",.0f"),
            number(summary.per_second if summary else None, ".1f"),
            number(summary.peak_memory_mib if summary else None, ",.0f"),
            number(summary.seconds if summary else None, ".0f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_comparison(rows: list[dict], metric_title: str, baseline: str, path: str | Path) -> Path:
    """Three panels: the headline metric per model (the baseline's as a line), the sampled reward against episodes
    for each online method, and each model's KL to the baseline against its score."""
    figure = Figure(figsize=(15, 4.2), layout="constrained")
    score_axes, reward_axes, kl_axes = figure.subplots(1, 3)
    names = [row["name"] for row in rows]
    colors = [f"C{index % 10}" for index in range(len(rows))]
    score_axes.bar(names, [row["score"] for row in rows], color=colors)
    for row in rows:
        if row["name"] == baseline:
            score_axes.axhline(row["score"], color="grey", linestyle="--", linewidth=1)
    score_axes.set(title=metric_title, ylim=(0, 1) if all(0 <= row["score"] <= 1 for row in rows) else None)
    score_axes.tick_params(axis="x", rotation=30)
    for row, color in zip(rows, colors):
        curve = row["summary"].reward_curve if row["summary"] else []
        if curve:
            episodes, rewards = zip(*curve)
            window = max(1, len(rewards) // 10)  # a tenth of the run: the methods log at different intervals
            smoothed = [
                sum(rewards[max(0, i - window + 1) : i + 1]) / (i + 1 - max(0, i - window + 1))
                for i in range(len(rewards))
            ]
            reward_axes.plot(episodes, smoothed, color=color, label=row["name"])
    reward_axes.set(title="Sampled reward (mean over the last tenth of the run)", xlabel="episodes")
    if reward_axes.lines:
        reward_axes.legend()
    for row, color in zip(rows, colors):
        if row["kl"] is not None:
            kl_axes.scatter(row["kl"], row["score"], color=color, label=row["name"])
    kl_axes.set(title=f"Score against KL to {baseline}", xlabel="KL (nats per answer)", ylabel=metric_title)
    if kl_axes.collections:
        kl_axes.legend()
    return save_figure(figure, path)


__all__ = [
    "ALIGNMENT_JOBS",
    "TrainingSummary",
    "comparison_table",
    "plot_comparison",
    "sampled_kl",
    "training_summary",
]
