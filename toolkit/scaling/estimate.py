"""Compute and cost of training a GPT: exact parameter counts, training FLOPs, Chinchilla-optimal tokens, GPU time
and cost at a model FLOPs utilisation (`toolkit scaling estimate`)."""

from dataclasses import dataclass, field

from ..models import GPTConfig

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


def gpt_parameter_counts(shape: GPTShape) -> ParameterCounts:
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
    counts = gpt_parameter_counts(shape)
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


@dataclass
class EstimateArguments:
    """Parameters, training FLOPs, Chinchilla tokens, GPU time and cost of a GPT."""

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
