"""What users expect of a training run, on top of `transformers.Trainer` and TRL's `SFTTrainer` (and TRL's other
trainers, which subclass Trainer): perplexity next to every loss, a token-weighted eval loss, curves saved as PNG, a
graceful stop on SIGTERM / Ctrl-C that checkpoints first,
`--resume_from_checkpoint latest` (resolved by `toolkit.runs`), and the run's summary (`training_result`).
"""

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from trl import SFTTrainer

from .. import stopping
from .._compat import TokenWeightedEvaluation
from ..plotting import draw_run_curves, plot_training_curves
from ..runs import CURVES_FILE, JobResult, read_json, resolve_checkpoint


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf


class PerplexityLoggingMixin:
    """Adds `perplexity` / `eval_perplexity` wherever a Trainer logs `loss` / `eval_loss`."""

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        for key in ("loss", "eval_loss", "train_loss"):
            if key in logs:
                logs[key.replace("loss", "perplexity")] = perplexity(logs[key])
        super().log(logs, *args, **kwargs)


class CountedParametersMixin:
    """Trainer's FLOPs estimate (6 x tokens x non-embedding parameters, for `total_flos`) with the parameters counted
    once per model instead of at every step: counting walks every module (0.6 ms a step, 1.3% of a Shakespeare-config
    step)."""

    counted_parameters: tuple[object, int] | None = None  # (model, its non-embedding parameter count)

    def floating_point_ops(self, inputs: dict) -> int:
        main_input = getattr(self.model, "main_input_name", "input_ids")
        if main_input not in inputs or not hasattr(self.model, "num_parameters"):
            return 0
        if self.counted_parameters is None or self.counted_parameters[0] is not self.model:
            self.counted_parameters = (self.model, self.model.num_parameters(exclude_embeddings=True))
        return 6 * inputs[main_input].numel() * self.counted_parameters[1]


class ToolkitTrainer(PerplexityLoggingMixin, CountedParametersMixin, TokenWeightedEvaluation, Trainer):
    """`transformers.Trainer` that also logs perplexity, and whose eval loss is token-weighted over the whole
    evaluation set (`toolkit._compat.TokenWeightedEvaluation`)."""


class ToolkitSFTTrainer(PerplexityLoggingMixin, CountedParametersMixin, TokenWeightedEvaluation, SFTTrainer):
    """TRL's `SFTTrainer` (completion-only loss, packing, padding-free) with the same extras: perplexity in the logs,
    token-weighted eval loss, entropy and token accuracy from TRL's fused LM head."""

    fused_lm_head = True


class TrainingCurvesCallback(TrainerCallback):
    """Draws the curves (loss/perplexity unless `curves` draws others) into `output_dir` at the end of training and,
    for a run long enough to watch, after an evaluation once `redraw_seconds` have passed since the last drawing (a
    drawing takes ~0.3 s: after every evaluation of a short run it would cost more than the evaluation)."""

    def __init__(
        self, title: str = "", with_perplexity: bool = True, curves: Callable | None = None, redraw_seconds: float = 60
    ):
        self.title = title
        self.with_perplexity = with_perplexity
        self.curves = curves
        self.redraw_seconds = redraw_seconds
        self.drawn_at = time.monotonic()
        self.drawn_entries: int | None = None  # the log entries the file shows

    def draw(self, args, state):
        """Draw unless the file already shows every log entry."""
        if state.is_world_process_zero and len(state.log_history) != self.drawn_entries:
            path = Path(args.output_dir) / CURVES_FILE
            if self.curves is None:
                draw_run_curves(plot_training_curves, state.log_history, path, self.title, self.with_perplexity)
            else:
                draw_run_curves(self.curves, state.log_history, path, self.title)
            self.drawn_at, self.drawn_entries = time.monotonic(), len(state.log_history)

    def on_evaluate(self, args, state, control, **kwargs):
        if time.monotonic() - self.drawn_at >= self.redraw_seconds:
            self.draw(args, state)

    def on_train_end(self, args, state, control, **kwargs):
        self.draw(args, state)


class FiniteTrainingCallback(TrainerCallback):
    """Fails a run whose logged loss or gradient norm is not finite, naming the step (Trainer averages only the
    finite losses into the logged one, so a run of NaN weights can log a finite loss; the norm is logged as is)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        for name in ("loss", "grad_norm"):
            value = (logs or {}).get(name)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise stopping.diverged(
                    {"loss": "training loss", "grad_norm": "gradient norm"}[name], value, state.global_step
                )


class GracefulStopCallback(TrainerCallback):
    """At every step boundary, the processes agree whether a stop was requested (`toolkit.stopping`); if so, the
    Trainer saves a checkpoint and stops, every process at the same step."""

    def __init__(self):
        self.signal_name: str | None = None
        self.stopped_at_step: int | None = None

    def on_step_end(self, args, state, control, **kwargs):
        if (name := stopping.agreed()) is not None:
            self.signal_name, self.stopped_at_step = name, state.global_step
            control.should_save = True
            control.should_training_stop = True
        return control


class LogBeforeSaveCallback(TrainerCallback):
    """Logs the loss at every save and at the last step, so the logged windows tile the whole run: a resumed run
    continues from a checkpoint whose log history covers every step before it (see `whole_run_train_loss`)."""

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save or control.should_training_stop or state.global_step >= state.max_steps:
            control.should_log = True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if control.should_save:
            control.should_log = True
        return control


class LastEvaluationCallback(TrainerCallback):
    """Keeps the metrics of the latest evaluation and its step: Trainer evaluates at the last step of a step-based
    schedule, and evaluating the same weights again at the end would only repeat that pass."""

    def __init__(self):
        self.step: int | None = None
        self.metrics: dict = {}

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.step, self.metrics = state.global_step, dict(metrics or {})


def whole_run_train_loss(log_history: list[dict]) -> float:
    """Mean training loss over every step of the run, resumed parts included (each logged `loss` is the mean over
    the steps since the previous one). Trainer's own `train_loss` covers only the steps of its last `train()`."""
    total, last_step = 0.0, 0
    for row in log_history:
        if "loss" in row:
            total += row["loss"] * (row["step"] - last_step)
            last_step = row["step"]
    return total / max(last_step, 1)


# The config.json entries that fix a model's parameter shapes (our GPT and Llama-style names, GPT-2's).
SHAPE_SETTINGS = (
    "model_type",
    "num_hidden_layers",
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
    "n_layer",
    "n_embd",
    "n_head",
    "n_inner",
)


def check_same_shape(model: torch.nn.Module, checkpoint: str) -> None:
    """A checkpoint resumes the model it was saved from: a model built with other shape flags is refused by name
    (its optimizer state would fail to load with "a parameter group that doesn't match")."""
    saved = read_json(Path(checkpoint) / "config.json")
    config = getattr(model, "config", None)
    current = config.to_dict() if config is not None else {}
    changed = [
        f"{key} {saved[key]} (this run: {current[key]})"
        for key in SHAPE_SETTINGS
        if key in saved and key in current and saved[key] != current[key]
    ]
    if changed:
        raise ValueError(
            f"{checkpoint} was saved from another model shape: {', '.join(changed)}. Resume with the model flags of "
            "the run that saved it, or start a new run (another --output_dir, or --overwrite_output_dir true)."
        )


def train_and_save(
    trainer: Trainer,
    args: TrainingArguments,
    *,
    plot: bool = True,
    extra_metrics: dict | None = None,
    after_training: Callable[[Trainer], dict] | None = None,
    curves: Callable[[list[dict], Path, str], Path | None] | None = None,
) -> dict:
    """Train (resuming if asked), evaluate (the last step's evaluation when the schedule ran one there), save model +
    tokenizer and curves; return the metrics.

    `after_training(trainer)` may add metrics of its own (e.g. a held-out evaluation);
    `curves(log_history, path, title)` draws other curves than loss and perplexity (e.g. an RL run's rewards).
    A run stopped by SIGTERM / Ctrl-C keeps its checkpoint and raises `toolkit.stopping.JobStopped`."""
    checkpoint = resolve_checkpoint(args.resume_from_checkpoint, args.output_dir)
    if checkpoint is not None:
        check_same_shape(trainer.model, checkpoint)
    language_model = isinstance(trainer, PerplexityLoggingMixin)
    stopper = GracefulStopCallback()
    trainer.add_callback(stopper)
    trainer.add_callback(FiniteTrainingCallback())
    trainer.add_callback(LogBeforeSaveCallback())  # after the callbacks that ask for a save
    last_evaluation = LastEvaluationCallback()
    trainer.add_callback(last_evaluation)
    drawer = TrainingCurvesCallback(Path(args.output_dir).name, with_perplexity=language_model, curves=curves)
    if plot:
        trainer.add_callback(drawer)
    with stopping.stop_on_signals():
        train_output = trainer.train(resume_from_checkpoint=checkpoint)
    if stopper.signal_name is not None:
        where = (
            f"at step {stopper.stopped_at_step}; checkpoint saved in {args.output_dir}. Resume with "
            "--resume_from_checkpoint latest"
        )
        raise stopping.JobStopped(stopper.signal_name, where)
    stopping.check_finite_weights(trainer.model, trainer.state.global_step)
    # The trained model first: a final evaluation cut short then loses only the metrics.
    trainer.save_model(args.output_dir)
    trainer.save_state()
    metrics = {**train_output.metrics, **(extra_metrics or {})}
    metrics["train_loss"] = whole_run_train_loss(trainer.state.log_history)
    if language_model:
        metrics["train_perplexity"] = perplexity(metrics["train_loss"])
    if trainer.eval_dataset is not None:
        final_weights_evaluated = last_evaluation.step == trainer.state.global_step and not args.load_best_model_at_end
        metrics.update(last_evaluation.metrics if final_weights_evaluated else trainer.evaluate())
    metrics["global_step"] = trainer.state.global_step
    if after_training is not None:
        metrics.update(after_training(trainer))
    if trainer.is_world_process_zero() and plot:
        drawer.draw(args, trainer.state)
    return metrics


CURVE_SERIES = ("loss", "eval_loss", "reward", "kl")  # the logged values a run's summary keeps as curves


def training_result(
    trainer: Trainer, metrics: dict, units_per_step: float, headline: tuple[str, ...], resumed_step: int = 0
) -> JobResult:
    """A Trainer job's summary from `train_and_save`'s metrics: the units it trained on (`units_per_step` per
    optimizer step: tokens, samples, pairs, episodes) and their rate over this session's steps (those after
    `resumed_step`, the step its checkpoint had reached), the `headline` metrics it has, and its logged curves against
    units; a curve leaves out the steps that logged no number (a reward is None when every reward function skipped
    every completion) or one that is not finite."""
    steps = trainer.state.global_step
    curves = {
        name: [
            [row["step"] * units_per_step, row[name]]
            for row in trainer.state.log_history
            if isinstance(row.get(name), (int, float)) and math.isfinite(row[name])
        ]
        for name in CURVE_SERIES
    }
    return JobResult(
        metrics=metrics,
        units=units_per_step * steps,
        units_per_second=units_per_step * (steps - resumed_step) / metrics["train_runtime"],
        headline={name: metrics[name] for name in headline if name in metrics},
        curves={name: points for name, points in curves.items() if points},
    )


def per_step(args: TrainingArguments, per_sample: float = 1) -> float:
    """Samples (times `per_sample`: tokens a block) one optimizer step trains on, over every process."""
    return args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps * per_sample
