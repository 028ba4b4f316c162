"""Configuration of the toolkit's from-scratch GPT.

This file and `modeling_gpt.py` are copied next to a saved model (`auto_map`), so they import only from
transformers, torch and each other (relatively).
"""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

# Named shapes. The GPT-2 ones match OpenAI's releases exactly (parameter counts with tied embeddings):
# small 124,439,808 - medium 354,823,168 - large 774,030,080 - xl 1,557,611,200.
PRESETS = {
    "tiny": dict(
        num_hidden_layers=2, num_attention_heads=2, hidden_size=64, max_position_embeddings=128, vocab_size=256
    ),
    "small": dict(num_hidden_layers=12, num_attention_heads=12, hidden_size=768),
    "medium": dict(num_hidden_layers=24, num_attention_heads=16, hidden_size=1024),
    "large": dict(num_hidden_layers=36, num_attention_heads=20, hidden_size=1280),
    "xl": dict(num_hidden_layers=48, num_attention_heads=25, hidden_size=1600),
}
ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh")


@strict
class GPTConfig(PreTrainedConfig):
    r"""
    A GPT-2-style decoder: pre-LayerNorm blocks, learned positions, tied input/output embeddings.

    Args:
        vocab_size: number of token ids the embedding holds.
        max_position_embeddings: context length (nanoGPT's `block_size`).
        hidden_size: model width (`n_embd`).
        num_hidden_layers: number of decoder blocks (`n_layer`).
        num_attention_heads: attention heads per block (`n_head`); must divide `hidden_size`.
        intermediate_size: MLP width; `None` means 4 * hidden_size.
        hidden_act: "gelu" (exact, nanoGPT), "gelu_new" (GPT-2's tanh approximation) or "gelu_pytorch_tanh".
        dropout: dropout on embeddings and residual branches.
        attention_dropout: dropout on attention probabilities.
        bias: biases in the linear layers and LayerNorms (GPT-2 has them).
    """

    model_type = "toolkit_gpt"
    keys_to_ignore_at_inference = ["cache"]
    attribute_map = {
        "n_layer": "num_hidden_layers",
        "n_head": "num_attention_heads",
        "n_embd": "hidden_size",
        "n_positions": "max_position_embeddings",
    }

    vocab_size: int = 50257
    max_position_embeddings: int = 1024
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int | None = None
    hidden_act: str = "gelu_new"
    dropout: float | int = 0.0
    attention_dropout: float | int = 0.0
    bias: bool = True
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    use_cache: bool = True
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        if self.intermediate_size is None:
            self.intermediate_size = 4 * self.hidden_size
        super().__post_init__(**kwargs)

    def check_shape(self):
        """Reject shapes the model cannot build with a plain ValueError that says how to fix them. Called when a
        model is built, not here: like GPT2Config, the config holds any values (transformers' config tests build
        such configs), and only the model needs a shape it can build."""
        if self.num_attention_heads <= 0 or self.hidden_size % self.num_attention_heads != 0:
            divisors = [h for h in range(1, min(self.hidden_size, 64) + 1) if self.hidden_size % h == 0]
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} does not divide hidden_size={self.hidden_size}. "
                f"Pick a head count that divides the width (for hidden_size={self.hidden_size}: {divisors}) "
                "or change hidden_size."
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act={self.hidden_act!r} is not supported; use one of {ACTIVATIONS}.")
        for name in ("vocab_size", "max_position_embeddings", "hidden_size", "num_hidden_layers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "GPTConfig":
        """A named shape ("tiny", "small", "medium", "large", "xl"), with any field overridden."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}. Available presets: {', '.join(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides})


__all__ = ["GPTConfig", "PRESETS"]
