"""A small scaling sweep (`toolkit scaling sweep`): models of several widths and depths trained on one corpus for the
same number of tokens, L(N) = a·N^-α fitted in log-log space, and a log-log plot."""

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter
from tqdm.auto import tqdm
from transformers import TrainingArguments, default_data_collator, set_seed

from ..data import load_raw, pack_for_language_modeling, require_columns, train_validation_splits
from ..plotting import save_figure
from ..tasks.arithmetic import ArithmeticSizeArguments
from ..training import PretrainModelArguments, ToolkitTrainer, build_model, build_tokenizer, train_and_save
from .estimate import GPTShape, gpt_parameter_counts, training_flops_with_attention


@dataclass(frozen=True)
class PowerLawFit:
    """L(N) = coefficient · N^-exponent, fitted by least squares on (log N, log L)."""

    coefficient: float
    exponent: float
    r_squared: float  # of the straight line in log-log space

    def predict(self, num_parameters: float) -> float:
        return self.coefficient * num_parameters**-self.exponent

    def __str__(self) -> str:
        return f"L(N) = {self.coefficient:.4g} · N^-{self.exponent:.4f} (R² {self.r_squared:.4f} in log-log space)"


def fit_power_law(num_parameters: list[float], losses: list[float]) -> PowerLawFit:
    """Least-squares straight line through (log N, log L): slope -α, intercept log a."""
    if len(num_parameters) != len(losses):
        raise ValueError(f"{len(num_parameters)} sizes but {len(losses)} losses: give one loss per size.")
    if len(set(num_parameters)) < 2:
        raise ValueError("A power law needs at least two different model sizes.")
    if min(num_parameters) <= 0 or min(losses) <= 0:
        raise ValueError("Sizes and losses must be positive to fit in log-log space.")
    log_n, log_loss = np.log(np.asarray(num_parameters, float)), np.log(np.asarray(losses, float))
    slope, intercept = np.polyfit(log_n, log_loss, 1)
    residuals = log_loss - (slope * log_n + intercept)
    spread = np.sum((log_loss - log_loss.mean()) ** 2)
    r_squared = 1.0 - float(np.sum(residuals**2) / spread) if spread > 0 else 1.0
    return PowerLawFit(coefficient=math.exp(intercept), exponent=-float(slope), r_squared=r_squared)


@dataclass
class SweepArguments(ArithmeticSizeArguments):
    """Train several shapes on one corpus and fit the loss power law L(N)."""

    dataset: str = field(
        default="arithmetic",
        metadata={"help": "Corpus: a .txt / .jsonl / ... file or folder, a Hub dataset id, or 'arithmetic'."},
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    text_sample_by: str = field(default="document", metadata={"help": ".txt files: 'document', 'paragraph', 'line'."})
    validation_fraction: float = field(default=0.1, metadata={"help": "Held out when the data has no validation."})
    tokenizer: str = field(default="char", metadata={"help": "'char', 'bpe', or a tokenizer folder / Hub id."})
    shapes: list[str] = field(
        default_factory=lambda: ["1x32", "2x48", "2x64", "4x96"],
        metadata={"help": "Model shapes as LAYERSxWIDTH, e.g. 2x64 (heads = width / head_size)."},
    )
    head_size: int = field(default=16, metadata={"help": "Width of one attention head; must divide every width."})
    block_size: int = field(default=64, metadata={"help": "Tokens per training sequence (and the model's context)."})
    batch_size: int = field(default=16, metadata={"help": "Sequences per step."})
    train_tokens: int = field(
        default=200_000, metadata={"help": "Training tokens per model (rounded up to whole steps): same for all."}
    )
    learning_rate: float = field(
        default=2e-3,
        metadata={"help": "Peak learning rate (warm-up over the first tenth of the steps, then cosine decay)."},
    )
    eval_batch_size: int = field(default=64, metadata={"help": "Sequences per evaluation step."})
    output_dir: str = field(default="outputs/scaling-sweep", metadata={"help": "Models, points, fit and plot."})
    use_cpu: bool = field(default=False, metadata={"help": "Train on CPU even when a GPU is available."})
    seed: int = field(default=0, metadata={"help": "Seed for weights and batch order (the data split is fixed)."})


@dataclass(frozen=True)
class SweepPoint:
    shape: str
    num_layers: int
    hidden_size: int
    num_heads: int
    non_embedding_parameters: int
    total_parameters: int
    train_tokens: int
    flops: float  # 6·N·D + attention, N = compute parameters
    train_loss: float
    eval_loss: float


def parse_shape(shape: str, head_size: int) -> tuple[int, int, int]:
    """Parse LAYERSxWIDTH: "2x64" -> (2 layers, width 64, 64 / head_size heads)."""
    try:
        num_layers, hidden_size = (int(part) for part in shape.lower().split("x"))
    except ValueError:
        raise ValueError(f"Shape {shape!r} is not LAYERSxWIDTH (e.g. 2x64).") from None
    if num_layers <= 0 or hidden_size <= 0 or hidden_size % head_size != 0:
        raise ValueError(
            f"Shape {shape!r}: layers and width must be positive and the width a multiple of head_size={head_size}."
        )
    return num_layers, hidden_size, hidden_size // head_size


def run_sweep(args: SweepArguments) -> dict:
    """Train one model per shape for the same tokens, fit L(N), write sweep.json and sweep.png in output_dir."""
    shapes = [parse_shape(shape, args.head_size) for shape in args.shapes]
    if len(set(shapes)) < 2 or len(set(shapes)) < len(shapes):
        raise ValueError(
            f"A sweep needs at least two shapes, all different (--shapes 1x32 2x64 ...); got {args.shapes}."
        )
    raw = load_raw(
        args.dataset,
        text_sample_by=args.text_sample_by,
        synthetic_sizes=args.synthetic_sizes(),
        synthetic_difficulty=args.synthetic_difficulty,
    )
    splits = train_validation_splits(raw, validation_fraction=args.validation_fraction)
    for split in splits.values():
        require_columns(split, [args.text_column], args.dataset)
    tokenizer = build_tokenizer(PretrainModelArguments(tokenizer=args.tokenizer), splits["train"], args.text_column)
    blocks = pack_for_language_modeling(
        splits, tokenizer, args.text_column, args.block_size, validation_fraction=args.validation_fraction
    )
    steps = math.ceil(args.train_tokens / (args.batch_size * args.block_size))
    train_tokens = steps * args.batch_size * args.block_size
    output_dir = Path(args.output_dir)

    points = []
    for num_layers, hidden_size, num_heads in tqdm(shapes, desc="scaling sweep", unit="model"):
        name = f"{num_layers}x{hidden_size}"
        set_seed(args.seed)
        model_args = PretrainModelArguments(
            num_layers=num_layers, hidden_size=hidden_size, num_heads=num_heads, context_length=args.block_size
        )
        model = build_model(model_args, tokenizer, args.block_size)
        training_args = TrainingArguments(
            output_dir=str(output_dir / name),
            max_steps=steps,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=args.eval_batch_size,
            learning_rate=args.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=0.1,
            eval_strategy="no",
            save_strategy="no",
            logging_steps=max(1, steps // 10),
            report_to="none",
            use_cpu=args.use_cpu,
            seed=args.seed,
            disable_tqdm=True,
        )
        trainer = ToolkitTrainer(
            model=model,
            args=training_args,
            train_dataset=blocks["train"],
            eval_dataset=blocks["validation"],
            data_collator=default_data_collator,
            processing_class=tokenizer,
        )
        metrics = train_and_save(trainer, training_args, plot=False)
        counts = gpt_parameter_counts(GPTShape.from_config(model.config))
        points.append(
            SweepPoint(
                shape=name,
                num_layers=num_layers,
                hidden_size=hidden_size,
                num_heads=num_heads,
                non_embedding_parameters=counts.non_embedding,
                total_parameters=counts.total,
                train_tokens=train_tokens,
                flops=training_flops_with_attention(
                    counts.compute, train_tokens, num_layers, hidden_size, args.block_size
                ),
                train_loss=metrics["train_loss"],
                eval_loss=metrics["eval_loss"],
            )
        )

    fit = fit_power_law([p.non_embedding_parameters for p in points], [p.eval_loss for p in points])
    result = {
        "arguments": asdict(args),
        "steps": steps,
        "train_tokens": train_tokens,
        "points": [asdict(point) for point in points],
        "fit": {**asdict(fit), "formula": str(fit)},
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "sweep.json").write_text(json.dumps(result, indent=2))
    plot_sweep(points, fit, output_dir / "sweep.png", f"eval loss after {train_tokens:,} training tokens per model")
    return result


def plot_sweep(points: list[SweepPoint], fit: PowerLawFit, path: Path, subtitle: str = "") -> Path:
    """Eval loss against non-embedding parameters on log-log axes, with the fitted power law."""
    sizes = np.array([point.non_embedding_parameters for point in points], float)
    figure = Figure(figsize=(6, 4.5), layout="tight")
    axis = figure.subplots()
    axis.loglog(sizes, [point.eval_loss for point in points], "o", label="trained models")
    for point in points:
        axis.annotate(
            point.shape,
            (point.non_embedding_parameters, point.eval_loss),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    line = np.geomspace(sizes.min() / 1.5, sizes.max() * 1.5, 50)
    axis.loglog(line, [fit.predict(n) for n in line], "-", label=f"fit: {fit.coefficient:.3g}·N^-{fit.exponent:.3f}")
    axis.set(xlabel="non-embedding parameters N", ylabel="eval loss (nats/token)", title=f"L(N): {subtitle}")
    # Losses span a narrow range: plain decimals read better than 2.4 x 10^0 on the log axis.
    axis.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
    axis.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    return save_figure(figure, path)


def format_sweep(result: dict) -> str:
    lines = [
        f"{result['train_tokens']:,} training tokens per model ({result['steps']} steps)",
        "| shape | non-embedding N | total params | FLOPs | train loss | eval loss |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for point in result["points"]:
        lines.append(
            f"| {point['shape']} | {point['non_embedding_parameters']:,} | {point['total_parameters']:,} "
            f"| {point['flops']:.3e} | {point['train_loss']:.4f} | {point['eval_loss']:.4f} |"
        )
    lines.append(result["fit"]["formula"])
    return "\n".join(lines)
