"""Scaling arithmetic for GPT-style models, and a small scaling sweep.

- `parameter_counts(shape)`: exact parameter counts of the toolkit's GPT (`GPTForCausalLM`) for a shape.
- `training_flops` = 6·N·D (Kaplan et al. 2020) and `training_flops_with_attention` = 6·N·D + 12·L·C·T·D (PaLM,
  appendix B; nanoGPT's `estimate_mfu`): forward 2 FLOPs per weight per token, backward twice that, plus the
  attention scores and their weighted sum, which no weight counts (over the full context T, not halved for the
  causal mask, as PaLM counts). N is `ParameterCounts.compute`: every weight that does a multiply-add per token, i.e.
  the non-embedding weights plus the output projection (tied or not); looking up embeddings costs nothing.
- `estimate_compute`: GPU-hours, days and cost on an accelerator at a given model FLOPs utilisation (MFU).
- `chinchilla_tokens` = 20 tokens per parameter (Hoffmann et al. 2022, total parameters).
- `run_sweep`: trains models of several widths and depths on one corpus for the same number of tokens with the
  toolkit's training pieces, fits L(N) = a·N^-α by least squares in log-log space (N = non-embedding parameters, as
  Kaplan et al.), and writes the points, the fit and a log-log plot.

`toolkit scaling estimate ...` and `toolkit scaling sweep ...` run them from the command line.
"""

import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
from tqdm.auto import tqdm
from transformers import TrainingArguments, set_seed
from trl import TrlParser

from .data import load_raw, pack_for_language_modeling, require_columns, train_validation_splits
from .models import GPTConfig
from .training import ModelArguments, ToolkitTrainer, build_model, build_tokenizer, train_and_save

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FormatStrFormatter  # noqa: E402

# Peak dense (no sparsity) BF16 tensor-core throughput of the SXM parts, in TFLOP/s, from NVIDIA's data sheets.
PEAK_BF16_TFLOPS = {"A100": 312.0, "H100": 989.0, "H200": 989.0}
CHINCHILLA_TOKENS_PER_PARAMETER = 20
SECONDS_PER_HOUR = 3600


@dataclass(frozen=True)
class GPTShape:
    """What the parameter count of the toolkit's GPT depends on (the head count does not change it)."""

    num_layers: int
    hidden_size: int
    vocab_size: int = 50257
    context_length: int = 1024
    intermediate_size: int | None = None  # None: 4 * hidden_size
    bias: bool = True
    tie_word_embeddings: bool = True

    @classmethod
    def from_config(cls, config: GPTConfig) -> "GPTShape":
        return cls(
            num_layers=config.num_hidden_layers,
            hidden_size=config.hidden_size,
            vocab_size=config.vocab_size,
            context_length=config.max_position_embeddings,
            intermediate_size=config.intermediate_size,
            bias=config.bias,
            tie_word_embeddings=config.tie_word_embeddings,
        )

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "GPTShape":
        """A named shape of `toolkit.PRESETS` ("tiny", "small" = GPT-2 124M, ..., "xl"), with GPTConfig overrides."""
        return cls.from_config(GPTConfig.from_preset(name, **overrides))


@dataclass(frozen=True)
class ParameterCounts:
    non_embedding: int  # decoder blocks and final LayerNorm (Kaplan et al.'s N)
    token_embedding: int
    position_embedding: int
    output_projection: int  # 0 when tied to the token embedding

    @property
    def total(self) -> int:
        """All parameters: `GPTForCausalLM(config).num_parameters()`."""
        return self.non_embedding + self.token_embedding + self.position_embedding + self.output_projection

    @property
    def compute(self) -> int:
        """Weights used in a multiply-add per token: the non-embedding ones and the output projection, which has the
        token embedding's size whether tied to it or not."""
        return self.non_embedding + self.token_embedding


def parameter_counts(shape: GPTShape) -> ParameterCounts:
    """Exact parameter counts of `GPTForCausalLM` for `shape` (GPT-2 small: 85,056,000 non-embedding, 124,439,808
    in total)."""
    width, inner = shape.hidden_size, shape.intermediate_size or 4 * shape.hidden_size
    bias = 1 if shape.bias else 0
    layer_norm = width * (1 + bias)
    attention = 4 * (width * width + bias * width)  # q, k, v, o projections
    mlp = width * inner + bias * inner + inner * width + bias * width
    block = 2 * layer_norm + attention + mlp
    return ParameterCounts(
        non_embedding=shape.num_layers * block + layer_norm,
        token_embedding=shape.vocab_size * width,
        position_embedding=shape.context_length * width,
        output_projection=0 if shape.tie_word_embeddings else shape.vocab_size * width,
    )


def training_flops(num_parameters: float, num_tokens: float) -> float:
    """6·N·D: forward 2 FLOPs per weight per token, backward 4 (Kaplan et al. 2020)."""
    return 6 * num_parameters * num_tokens


def training_flops_with_attention(
    num_parameters: float, num_tokens: float, num_layers: int, hidden_size: int, context_length: int
) -> float:
    """6·N·D + 12·L·C·T·D: adds the attention scores (Q·K^T) and their weighted sum of V, 2·L·C·T FLOPs per token
    each forward, times 3 for training (PaLM appendix B). T is the sequence length trained on."""
    return training_flops(num_parameters, num_tokens) + 12 * num_layers * hidden_size * context_length * num_tokens


def chinchilla_tokens(num_parameters: float) -> float:
    """Compute-optimal training tokens: about 20 per parameter (Hoffmann et al. 2022)."""
    return CHINCHILLA_TOKENS_PER_PARAMETER * num_parameters


@dataclass(frozen=True)
class ComputeEstimate:
    num_parameters: int  # total
    compute_parameters: int  # N in 6·N·D
    num_tokens: float
    flops: float  # with the attention term
    flops_6nd: float
    accelerator: str
    peak_tflops: float
    mfu: float
    num_gpus: int
    price_per_gpu_hour: float
    gpu_hours: float
    wall_clock_days: float
    cost: float

    @property
    def gpu_days(self) -> float:
        return self.gpu_hours / 24

    def __str__(self) -> str:
        chinchilla = chinchilla_tokens(self.num_parameters)
        return "\n".join(
            [
                f"parameters        {self.num_parameters:,} total, {self.compute_parameters:,} in 6·N·D "
                "(non-embedding + output projection)",
                f"tokens            {self.num_tokens:,.0f} ({self.num_tokens / chinchilla:.2f}x Chinchilla-optimal "
                f"{chinchilla:,.0f} = 20 per parameter)",
                f"training FLOPs    {self.flops:.3e} = 6·N·D {self.flops_6nd:.3e} + attention "
                f"{self.flops - self.flops_6nd:.3e}",
                f"accelerator       {self.accelerator}: {self.peak_tflops:g} TFLOP/s peak bf16 at {self.mfu:.0%} MFU",
                f"GPU time          {self.gpu_hours:,.1f} GPU-hours = {self.gpu_days:,.2f} GPU-days; "
                f"{self.wall_clock_days:,.2f} days on {self.num_gpus} GPU(s)",
                f"cost              ${self.cost:,.0f} at ${self.price_per_gpu_hour:.2f} per GPU-hour",
            ]
        )


def estimate_compute(
    shape: GPTShape,
    num_tokens: float | None = None,
    *,
    accelerator: str = "H100",
    mfu: float = 0.4,
    price_per_gpu_hour: float = 2.0,
    num_gpus: int = 1,
    peak_tflops: float | None = None,
) -> ComputeEstimate:
    """FLOPs, GPU time and cost of training `shape` on `num_tokens` (None: Chinchilla-optimal) sequences of its full
    context length. `peak_tflops` overrides the table for other accelerators."""
    if peak_tflops is None:
        if accelerator not in PEAK_BF16_TFLOPS:
            raise ValueError(
                f"Unknown accelerator {accelerator!r}: choose one of {', '.join(PEAK_BF16_TFLOPS)}, or give its peak "
                "bf16 TFLOP/s (peak_tflops / --peak_tflops)."
            )
        peak_tflops = PEAK_BF16_TFLOPS[accelerator]
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu is a fraction of peak throughput in (0, 1], got {mfu}.")
    if num_gpus <= 0:
        raise ValueError(f"num_gpus must be positive, got {num_gpus}.")
    counts = parameter_counts(shape)
    num_tokens = chinchilla_tokens(counts.total) if num_tokens is None else num_tokens
    flops = training_flops_with_attention(
        counts.compute, num_tokens, shape.num_layers, shape.hidden_size, shape.context_length
    )
    gpu_hours = flops / (peak_tflops * 1e12 * mfu) / SECONDS_PER_HOUR
    return ComputeEstimate(
        num_parameters=counts.total,
        compute_parameters=counts.compute,
        num_tokens=num_tokens,
        flops=flops,
        flops_6nd=training_flops(counts.compute, num_tokens),
        accelerator=accelerator,
        peak_tflops=peak_tflops,
        mfu=mfu,
        num_gpus=num_gpus,
        price_per_gpu_hour=price_per_gpu_hour,
        gpu_hours=gpu_hours,
        wall_clock_days=gpu_hours / 24 / num_gpus,
        cost=gpu_hours * price_per_gpu_hour,
    )


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


# ---- the sweep -----------------------------------------------------------------------------------------------------


@dataclass
class SweepArguments:
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
    synthetic_train_size: int = field(default=2000, metadata={"help": "'arithmetic': training problems."})
    synthetic_validation_size: int = field(default=200, metadata={"help": "'arithmetic': validation problems."})
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
        synthetic_sizes=(args.synthetic_train_size, args.synthetic_validation_size),
    )
    splits = train_validation_splits(raw, validation_fraction=args.validation_fraction)
    for split in splits.values():
        require_columns(split, [args.text_column], args.dataset)
    tokenizer = build_tokenizer(ModelArguments(tokenizer=args.tokenizer), splits["train"], args.text_column)
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
        model_args = ModelArguments(
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
            processing_class=tokenizer,
        )
        metrics = train_and_save(trainer, training_args, plot=False, tokens_per_sample=args.block_size)
        counts = parameter_counts(GPTShape.from_config(model.config))
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
    figure, axis = plt.subplots(figsize=(6, 4.5))
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
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


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


# ---- command line --------------------------------------------------------------------------------------------------


@dataclass
class EstimateArguments:
    preset: str | None = field(
        default=None, metadata={"help": "Named shape: tiny, small (GPT-2 124M), medium, large, xl; flags override."}
    )
    num_layers: int | None = field(default=None, metadata={"help": "Decoder blocks."})
    hidden_size: int | None = field(default=None, metadata={"help": "Model width."})
    vocab_size: int | None = field(default=None, metadata={"help": "Vocabulary size. None: the preset's (50257)."})
    context_length: int | None = field(
        default=None, metadata={"help": "Sequence length trained on (and positions). None: the preset's (1024)."}
    )
    intermediate_size: int | None = field(default=None, metadata={"help": "MLP width; None: 4 x hidden_size."})
    bias: bool = field(default=True, metadata={"help": "Biases in linear layers and LayerNorms."})
    tie_word_embeddings: bool = field(default=True, metadata={"help": "Output projection tied to the embedding."})
    tokens: float | None = field(
        default=None, metadata={"help": "Training tokens (e.g. 3e11). None: Chinchilla-optimal, 20 per parameter."}
    )
    accelerator: str = field(default="H100", metadata={"help": f"One of {', '.join(PEAK_BF16_TFLOPS)}."})
    peak_tflops: float | None = field(default=None, metadata={"help": "Peak bf16 TFLOP/s of another accelerator."})
    mfu: float = field(default=0.4, metadata={"help": "Model FLOPs utilisation: achieved / peak throughput."})
    num_gpus: int = field(default=8, metadata={"help": "GPUs training together (sets the wall-clock time)."})
    price_per_gpu_hour: float = field(default=2.0, metadata={"help": "Your price of one GPU-hour, in dollars."})


def shape_from_arguments(args: EstimateArguments) -> GPTShape:
    if args.preset is None and (args.num_layers is None or args.hidden_size is None):
        raise ValueError("Give a shape: --preset small, or --num_layers and --hidden_size.")
    given = {
        "num_hidden_layers": args.num_layers,
        "hidden_size": args.hidden_size,
        "vocab_size": args.vocab_size,
        "max_position_embeddings": args.context_length,
        "intermediate_size": args.intermediate_size,
    }
    overrides = {key: value for key, value in given.items() if value is not None}
    # One head always divides the width, and the head count does not change the parameter count.
    return GPTShape.from_preset(
        args.preset or "small",
        **overrides,
        num_attention_heads=1,
        bias=args.bias,
        tie_word_embeddings=args.tie_word_embeddings,
    )


def run_estimate(args: EstimateArguments) -> ComputeEstimate:
    return estimate_compute(
        shape_from_arguments(args),
        args.tokens,
        accelerator=args.accelerator,
        mfu=args.mfu,
        price_per_gpu_hour=args.price_per_gpu_hour,
        num_gpus=args.num_gpus,
        peak_tflops=args.peak_tflops,
    )


MODES = {
    "estimate": (EstimateArguments, run_estimate, str),
    "sweep": (SweepArguments, run_sweep, format_sweep),
}


def main(argv: list[str] | None = None) -> int:
    """`toolkit scaling estimate --preset small --tokens 1e10` or `toolkit scaling sweep --dataset input.txt`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in MODES:
        print(f"usage: toolkit scaling {{{','.join(MODES)}}} [--flag value ...]", file=sys.stderr)
        return 2
    arguments_class, run, render = MODES[argv[0]]
    (args,) = TrlParser(arguments_class, prog=f"toolkit scaling {argv[0]}").parse_args_and_config(argv[1:])
    print(render(run(args)))
    return 0


__all__ = [
    "PEAK_BF16_TFLOPS",
    "ComputeEstimate",
    "GPTShape",
    "ParameterCounts",
    "PowerLawFit",
    "SweepArguments",
    "SweepPoint",
    "chinchilla_tokens",
    "estimate_compute",
    "fit_power_law",
    "parameter_counts",
    "run_sweep",
    "training_flops",
    "training_flops_with_attention",
]
