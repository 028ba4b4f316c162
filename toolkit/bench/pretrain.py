"""`toolkit bench pretrain`: the pretraining recipe's Trainer against a bare PyTorch loop, same everything else."""

import copy
import statistics
import tempfile
import time
from dataclasses import dataclass, field

import torch
from transformers import TrainerCallback, TrainingArguments, default_data_collator, get_scheduler

from ..parsing import argument_parser


@dataclass
class PretrainBenchArguments:
    """The pretraining recipe's Trainer against a bare PyTorch loop on Tiny Shakespeare."""

    dataset: str = field(metadata={"help": "Tiny Shakespeare's input.txt (../shared/data/tinyshakespeare/input.txt)."})
    recipe_config: str = field(
        default="recipes/configs/pretrain/shakespeare_char.yaml",
        metadata={"help": "The pretraining YAML both runs use (nanoGPT's CPU Shakespeare configuration)."},
    )
    max_steps: int = field(default=2000, metadata={"help": "Optimizer steps of each run."})
    eval_steps: int = field(default=250, metadata={"help": "Evaluate on the whole validation split every N steps."})
    target_loss: float = field(default=1.89, metadata={"help": "Report the first evaluation at or below this loss."})
    output: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})


class StepTimes(TrainerCallback):
    """Wall time of each optimizer step, with evaluations and saves left out."""

    def __init__(self):
        self.times: list[float] = []
        self.start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self.start)


@torch.no_grad()
def validation_loss(model, blocks, batch_size: int) -> float:
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(blocks), batch_size):
        ids = blocks.input_ids(range(start, min(start + batch_size, len(blocks))))
        total += model(input_ids=ids, labels=ids).loss.item() * ids[:, 1:].numel()
        count += ids[:, 1:].numel()
    model.train()
    return total / count


def bare_pytorch_run(model, blocks, args: TrainingArguments, eval_steps: int) -> tuple[list[float], dict[int, float]]:
    """nanoGPT's loop over the same blocks: AdamW with decay on matrices only, the same schedule and clipping."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
    )
    scheduler = get_scheduler(
        args.lr_scheduler_type,
        optimizer,
        num_warmup_steps=args.get_warmup_steps(args.max_steps),
        num_training_steps=args.max_steps,
        scheduler_specific_kwargs=args.lr_scheduler_kwargs,
    )
    train = blocks["train"]
    order = torch.Generator().manual_seed(args.seed)
    batch_size = args.per_device_train_batch_size
    times, evals, step = [], {}, 0
    model.train()
    while step < args.max_steps:
        permutation = torch.randperm(len(train), generator=order)
        for first in range(0, len(train) - batch_size + 1, batch_size):
            start = time.perf_counter()
            ids = train.input_ids(permutation[first : first + batch_size])
            model(input_ids=ids, labels=ids).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - start)
            step += 1
            if step % eval_steps == 0 or step == args.max_steps:
                evals[step] = validation_loss(model, blocks["validation"], args.per_device_eval_batch_size)
            if step == args.max_steps:
                break
    return times, evals


def first_at_or_below(evals: dict[int, float], target: float) -> int | None:
    return next((step for step, loss in sorted(evals.items()) if loss <= target), None)


def bench_pretrain(args: PretrainBenchArguments) -> dict:
    """The pretraining recipe's Trainer vs a bare PyTorch loop: same model init, data, optimizer and schedule."""
    from ..pipelines.pretrain import prepare as prepare_pretraining
    from ..training import PretrainDataArguments, PretrainModelArguments, RunArguments, ToolkitTrainer

    with tempfile.TemporaryDirectory() as output_dir:
        overrides = ["--dataset", args.dataset, "--output_dir", output_dir, "--max_steps", str(args.max_steps)]
        overrides += ["--eval_steps", str(args.eval_steps), "--save_strategy", "no", "--report_to", "none"]
        parser = argument_parser(
            (PretrainModelArguments, PretrainDataArguments, RunArguments, TrainingArguments), "pretrain"
        )
        model_args, data_args, _, training_args = parser.parse_args_and_config(
            ["--config", args.recipe_config, *overrides]
        )
        tokenizer, trainer_model, blocks = prepare_pretraining(model_args, data_args, training_args)
        bare_model = copy.deepcopy(trainer_model)

        timer = StepTimes()
        trainer = ToolkitTrainer(
            model=trainer_model,
            args=training_args,
            train_dataset=blocks["train"],
            eval_dataset=blocks["validation"],
            data_collator=default_data_collator,
            processing_class=tokenizer,
            callbacks=[timer],
        )
        trainer.train()
        trainer_evals = {row["step"]: row["eval_loss"] for row in trainer.state.log_history if "eval_loss" in row}
        bare_times, bare_evals = bare_pytorch_run(bare_model, blocks, training_args, args.eval_steps)

    tokens = training_args.per_device_train_batch_size * data_args.block_size
    trainer_step, bare_step = statistics.median(timer.times), statistics.median(bare_times)

    def run_summary(times, evals):
        reached = first_at_or_below(evals, args.target_loss)
        return {
            "tokens_per_s": tokens / statistics.median(times),
            "ms_per_step": 1000 * statistics.median(times),
            "train_seconds": sum(times),
            "final_eval_loss": evals[max(evals)],
            "evals": evals,
            "first_step_at_target": reached,
            "train_seconds_to_target": sum(times[:reached]) if reached else None,
        }

    return {
        "setup": f"{args.recipe_config}, {args.max_steps} steps, batch {tokens} tokens, torch threads "
        f"{torch.get_num_threads()}",
        "target_loss": args.target_loss,
        "trainer": run_summary(timer.times, trainer_evals),
        "bare_pytorch": run_summary(bare_times, bare_evals),
        "ratio_trainer_vs_bare": bare_step / trainer_step,
    }


def format_pretrain_results(results: dict) -> str:
    lines = [
        f"{results['setup']}",
        "",
        "| loop | tokens/s | ms/step | train s | final val loss | first step <= "
        f"{results['target_loss']} | train s to it |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("trainer", "bare_pytorch"):
        row = results[name]
        to_target = f"{row['train_seconds_to_target']:.1f}" if row["train_seconds_to_target"] else "-"
        lines.append(
            f"| {name} | {row['tokens_per_s']:,.0f} | {row['ms_per_step']:.1f} | {row['train_seconds']:.1f} "
            f"| {row['final_eval_loss']:.4f} | {row['first_step_at_target'] or '-'} | {to_target} |"
        )
    lines.append(f"\nTrainer throughput / bare loop: {results['ratio_trainer_vs_bare']:.2f}x")
    return "\n".join(lines)
