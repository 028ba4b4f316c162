"""Alignment methods side by side: what each training run cost (its run folder says) and how far each model moved
from the model it started from (a KL estimate measured the same way for every method).

The training logs of the methods measure KL differently (our PPO: summed over a response, k1; TRL's GRPO and RLOO:
per token, k3; DPO samples nothing), so the comparison estimates it afresh: answers sampled from each model at
temperature 1 (no top-k), KL(model || reference) ~ mean over answers of sum_t [log p_model - log p_reference].
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import PartialState
from matplotlib.figure import Figure
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .._compat import gather_object
from ..generation import generate
from ..jobs import JOBS
from ..plotting import save_figure
from ..rlhf.ppo.rollout import left_pad, response_logprobs, truncate_after_eos
from ..runs import curve_ends, read_summary, run_of_model
from .task import batch_share, check_gathered


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
        new_tokens = generate(  # the sampling every job uses (a soft prompt included)
            model,
            queries,
            query_mask,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        responses, response_mask, _ = truncate_after_eos(new_tokens, tokenizer.eos_token_id, tokenizer.pad_token_id)
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
    """What a model's alignment run recorded in its summary (metrics.json): its job and method, what it trained on
    (episodes, pairs) and how fast, its peak memory, wall time, and its sampled reward against units trained on."""

    job: str
    method: str | None
    units: str  # what it counted: episodes, pairs
    count: float | None
    per_second: float | None
    peak_memory_mib: float | None
    seconds: float | None
    reward_curve: list[list[float]] = field(default_factory=list)  # [units so far, mean sampled reward]


def training_summary(model_folder: str | Path) -> TrainingSummary | None:
    """The alignment run a model folder belongs to (a job registered with `aligns`), summarised; None for others."""
    run, record = run_of_model(model_folder)
    if record is None or record.job not in JOBS or not JOBS[record.job].aligns:
        return None
    summary = read_summary(run)
    return TrainingSummary(
        job=record.job,
        method=record.method,
        units=JOBS[record.job].unit,
        count=summary.get("units"),
        per_second=summary.get("units_per_second"),
        peak_memory_mib=record.peak_memory_mib,
        seconds=record.seconds,
        reward_curve=(summary.get("curves") or {}).get("reward", []),
    )


def number(value: float | None, form: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, form)


def comparison_table(rows: list[dict], metric_title: str, baseline: str) -> str:
    """The markdown table: per model, the headline metric with its change against the baseline (gained, lost,
    McNemar p), KL to the baseline, and what its training cost.

    Each row: name, score, gained, lost, p_value, kl (or None), summary (TrainingSummary or None)."""
    header = (
        f"| model | method | {metric_title} | gained / lost vs {baseline} | McNemar p | KL to {baseline} (nats per "
        "answer) | sampled reward, first -> last 20% of steps | trained on | per second | peak memory "
        "(MiB) | wall time (s) |"
    )
    lines = [header, "|" + "---|" * 11]
    for row in rows:
        summary: TrainingSummary | None = row["summary"]
        curve = summary.reward_curve if summary else []
        reward = "{:.3f} -> {:.3f}".format(*curve_ends(curve)) if curve else "-"
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
            f"{number(summary.count, ',.0f')} {summary.units}" if summary and summary.count is not None else "-",
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
    units = sorted({row["summary"].units for row in rows if row["summary"] and row["summary"].reward_curve})
    reward_axes.set(title="Sampled reward (mean over the last tenth of the run)", xlabel=" / ".join(units))
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
    "TrainingSummary",
    "comparison_table",
    "plot_comparison",
    "sampled_kl",
    "training_summary",
]
