"""ToolkitTrainer extras: token-weighted evaluation loss and perplexity logging."""

import math

import datasets
import pytest
import torch
from transformers import DataCollatorForSeq2Seq, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from toolkit import GPTConfig, GPTForCausalLM
from toolkit.runs import CURVES_FILE
from toolkit.tokenization import build_char_tokenizer
from toolkit.training import ToolkitTrainer, TrainingCurvesCallback, train_and_save


@pytest.mark.parametrize("drop_last", [False, True])  # training's dataloader_drop_last never drops eval examples
def test_eval_loss_is_token_weighted_over_the_whole_set(tmp_path, drop_last):
    torch.manual_seed(0)
    tokenizer = build_char_tokenizer("abcdefghij ")
    model = GPTForCausalLM(
        GPTConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
    ).eval()
    g = torch.Generator().manual_seed(1)
    rows = []
    for length in (5, 17, 9, 30, 12, 3, 21):  # uneven lengths and uneven batches of 3
        ids = torch.randint(0, 10, (length,), generator=g).tolist()
        labels = [-100] * (length // 3) + ids[length // 3 :]  # a prompt part that is not scored
        rows.append({"input_ids": ids, "labels": labels})
    dataset = datasets.Dataset.from_list(rows)

    nll, tokens = 0.0, 0
    with torch.no_grad():
        for row in rows:
            logits = model(torch.tensor([row["input_ids"]])).logits[0, :-1]
            targets = torch.tensor(row["labels"][1:])
            keep = targets != -100
            nll += torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="sum").item()
            tokens += int(keep.sum())

    args = TrainingArguments(
        tmp_path, per_device_eval_batch_size=3, dataloader_drop_last=drop_last, use_cpu=True, report_to="none"
    )
    trainer = ToolkitTrainer(
        model=model,
        args=args,
        eval_dataset=dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True),
    )
    metrics = trainer.evaluate()
    assert metrics["eval_tokens"] == tokens
    assert metrics["eval_loss"] == pytest.approx(nll / tokens, abs=1e-6)
    assert metrics["eval_perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-6)


class CountEvaluations(TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_evaluate(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


@pytest.mark.parametrize(("eval_steps", "evaluated_at"), [(3, [3, 6]), (4, [4, 6])])
def test_the_final_weights_are_evaluated_once(tmp_path, eval_steps, evaluated_at):
    """Trainer evaluates at the last step of a step-based schedule; train_and_save reports that evaluation instead
    of running the same pass again, and its figures are those of the final weights."""
    torch.manual_seed(0)
    tokenizer = build_char_tokenizer("abcdefghij ")
    model = GPTForCausalLM(
        GPTConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
    )
    g = torch.Generator().manual_seed(1)
    rows = [
        {"input_ids": (ids := torch.randint(0, 10, (12,), generator=g).tolist()), "labels": ids} for _ in range(24)
    ]
    dataset = datasets.Dataset.from_list(rows)
    args = TrainingArguments(
        tmp_path,
        max_steps=6,
        eval_strategy="steps",
        eval_steps=eval_steps,
        per_device_train_batch_size=4,
        save_strategy="no",
        use_cpu=True,
        report_to="none",
        learning_rate=1e-2,
    )
    counter = CountEvaluations()
    trainer = ToolkitTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        eval_dataset=dataset.select(range(8)),
        data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True),
        callbacks=[counter],
    )
    metrics = train_and_save(trainer, args, plot=False)
    assert counter.steps == evaluated_at
    fresh = trainer.evaluate()
    assert metrics["eval_loss"] == pytest.approx(fresh["eval_loss"], abs=1e-6)
    assert metrics["eval_perplexity"] == pytest.approx(fresh["eval_perplexity"], rel=1e-6)
    assert metrics["eval_tokens"] == fresh["eval_tokens"]


def test_curves_are_drawn_at_the_end_and_after_evaluations_only_of_long_runs(tmp_path):
    """A drawing costs ~0.3 s: a short run draws its curves once, at the end; a run that evaluates after
    `redraw_seconds` since the last drawing redraws then (to be watched); nothing new logged, nothing redrawn."""
    args = TrainingArguments(tmp_path, use_cpu=True, report_to="none")
    state, control = TrainerState(), TrainerControl()
    state.log_history = [
        {"loss": 2.0, "perplexity": 7.4, "step": 5},
        {"eval_loss": 2.1, "eval_perplexity": 8.2, "step": 5},
    ]
    curves = tmp_path / CURVES_FILE
    short = TrainingCurvesCallback("short")
    short.on_evaluate(args, state, control)
    assert not curves.exists()
    short.on_train_end(args, state, control)
    assert curves.exists()
    curves.unlink()
    short.draw(args, state)
    assert not curves.exists()
    state.log_history.append({"loss": 1.5, "perplexity": 4.5, "step": 10})
    long = TrainingCurvesCallback("long", redraw_seconds=0)
    long.on_evaluate(args, state, control)
    assert curves.exists()


def test_a_drawing_that_fails_at_the_end_of_training_is_logged_and_the_run_goes_on(tmp_path, caplog):
    """The curves are drawn before the model and metrics are saved: a figure must never cost the run its files."""
    args = TrainingArguments(tmp_path, use_cpu=True, report_to="none")
    state, control = TrainerState(), TrainerControl()
    state.log_history = [{"loss": 2.0, "step": 5}]

    def broken(history, path, title):
        raise ValueError("Axis limits cannot be NaN or Inf")

    TrainingCurvesCallback("broken", curves=broken).on_train_end(args, state, control)
    assert f"Could not draw {tmp_path / CURVES_FILE} (ValueError: Axis limits cannot be NaN or Inf)" in caplog.text
