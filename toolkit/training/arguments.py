"""Dataclass arguments shared by the training recipes, parsed with `trl.TrlParser` (YAML defaults, CLI overrides).

Field names must not collide with `transformers.TrainingArguments` / `trl.SFTConfig`, which are parsed alongside, and
a setting those already have keeps their name (SFT's sequence length is `max_length`, worker count `dataset_num_proc`).
"""

from dataclasses import dataclass, field

from ..parsing import check_fraction
from ..tasks.arithmetic import ArithmeticSizeArguments

BLOCK_SAMPLING = ("strided", "random")  # --block_sampling: blocks every --block_stride tokens, or nanoGPT's offsets


@dataclass
class ModelArguments:
    """The pretrained model a job starts from (SFT): its folder or Hub id, tokenizer and attention backend."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Pretrained model folder or Hub id (e.g. openai-community/gpt2)."},
    )
    tokenizer: str | None = field(
        default=None,
        metadata={
            "help": "A tokenizer folder / Hub id, or (pretraining) 'char' (character level, built from the training "
            "text) or 'bpe' (byte-level BPE trained on it). None: the model's own tokenizer."
        },
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "Attention backend: 'sdpa' (default), 'eager', 'flash_attention_2', ..."}
    )


@dataclass
class PretrainModelArguments(ModelArguments):
    """The model of a pretraining run: a pretrained one to continue, or (no model_name_or_path) one built from
    scratch in a preset shape with overrides. SFT and reward runs read `trust_remote_code` from TRL's config."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Pretrained model folder or Hub id to continue training. None: build one from scratch."},
    )
    architecture: str = field(
        default="gpt",
        metadata={"help": "From scratch: 'gpt' (the toolkit's GPT) or 'gpt2' (transformers' GPT2LMHeadModel)."},
    )
    preset: str = field(
        default="tiny",
        metadata={"help": "From scratch: named shape (tiny, small, medium, large, xl), then overrides."},
    )
    num_layers: int | None = field(default=None, metadata={"help": "From scratch: decoder blocks (overrides preset)."})
    num_heads: int | None = field(default=None, metadata={"help": "From scratch: attention heads (overrides preset)."})
    hidden_size: int | None = field(default=None, metadata={"help": "From scratch: model width (overrides preset)."})
    context_length: int | None = field(
        default=None, metadata={"help": "From scratch: max positions; defaults to the data block size."}
    )
    model_dropout: float = field(default=0.0, metadata={"help": "From scratch: dropout probability."})
    model_bias: bool = field(default=True, metadata={"help": "From scratch: biases in linear layers and norms."})
    model_activation: str = field(
        default="gelu_new", metadata={"help": "From scratch: 'gelu' (exact, nanoGPT) or 'gelu_new' (GPT-2, tanh)."}
    )
    bpe_vocab_size: int = field(default=4096, metadata={"help": "Vocabulary size when training a BPE tokenizer."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code shipped with the model."})


@dataclass
class DataArguments(ArithmeticSizeArguments):
    dataset: str = field(
        default="arithmetic",
        metadata={
            "help": "A local file or folder (.txt, .json, .jsonl, .csv, .parquet), a Hub dataset id, or "
            "'arithmetic' (the built-in synthetic GSM8K-style problems)."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    train_split: str = field(default="train", metadata={"help": "Split to train on."})
    validation_split: str | None = field(
        default=None, metadata={"help": "Split to evaluate on; None: 'validation' or 'test' if present, else carved."}
    )
    validation_fraction: float = field(
        default=0.1,
        metadata={
            "help": "Fraction held out for validation when the data has no validation split: rows by a fixed "
            "shuffle; a single document or a streamed corpus holds out the tail of its tokens."
        },
    )
    text_column: str = field(default="text", metadata={"help": "Column holding raw text (language modeling)."})
    prompt_column: str | None = field(
        default=None, metadata={"help": "Column holding prompts; with completion_column enables completion-only loss."}
    )
    completion_column: str | None = field(default=None, metadata={"help": "Column holding completions."})
    text_sample_by: str = field(
        default="document", metadata={"help": "Plain-text files: one row per 'document', 'paragraph' or 'line'."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep at most this many training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep at most this many validation rows."})

    def __post_init__(self):
        super().__post_init__()
        for name in ("text_column", "prompt_column", "completion_column"):
            if getattr(self, name) == "":
                raise ValueError(f"--{name} is empty: name a column of the data, or leave it unset.")
        if (self.prompt_column is None) != (self.completion_column is None):
            raise ValueError(
                "--prompt_column and --completion_column go together (completion-only loss); pass both, or neither "
                "to train on --text_column."
            )
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        if self.text_sample_by not in TEXT_SAMPLES:
            raise ValueError(
                f"--text_sample_by must be one of {', '.join(TEXT_SAMPLES)}, got {self.text_sample_by!r}."
            )
        check_fraction("validation_fraction", self.validation_fraction)


TEXT_SAMPLES = ("document", "paragraph", "line")  # how datasets' text builder cuts a plain-text file into rows


@dataclass
class PretrainDataArguments(DataArguments):
    """The data of a pretraining run: documents packed into fixed blocks (SFT's length is SFTConfig's max_length)."""

    block_size: int = field(default=128, metadata={"help": "Tokens per training block."})
    block_sampling: str = field(
        default="strided",
        metadata={
            "help": "Where training blocks start: 'strided' (every --block_stride tokens; each block once an "
            "epoch, in shuffled order) or 'random' (nanoGPT's random offsets anywhere in the token stream, drawn "
            "with replacement: an epoch is as many tokens as the data, new offsets each epoch, seeded by "
            "--data_seed, else --seed). Validation blocks never overlap either way."
        },
    )
    block_stride: int | None = field(
        default=None,
        metadata={
            "help": "Strided sampling: start a training block every N tokens (overlapping blocks when N < "
            "block_size). None: block_size (no overlap)."
        },
    )
    dataset_streaming: bool = field(
        default=False,
        metadata={
            "help": "Stream the corpus (Hub id or local files, datasets' streaming=True), tokenizing it batch by "
            "batch straight into the token file, never into datasets' Arrow cache; the file is named by the data "
            "(files' sizes and dates, or the Hub revision), split, row caps, text column and tokenizer, and reused. "
            "Validation: the data's validation split, else the tail --validation_fraction of the training tokens. "
            "Needs a tokenizer folder or Hub id (not char/bpe); tokenizes in one process (no --dataset_num_proc)."
        },
    )
    dataset_num_proc: int | None = field(
        default=None,
        metadata={"help": "Processes for datasets.map (tokenization, packing), as in TRL's SFTConfig; None: one."},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.block_size < 1:
            raise ValueError(f"--block_size must be at least 1 token, got {self.block_size}.")
        if self.block_sampling not in BLOCK_SAMPLING:
            choices = " or ".join(map(repr, BLOCK_SAMPLING))
            raise ValueError(f"--block_sampling must be {choices}, got {self.block_sampling!r}.")
        if self.block_stride is not None and self.block_stride < 1:
            raise ValueError(f"--block_stride must be at least 1 token (or unset), got {self.block_stride}.")
        if self.block_stride is not None and self.block_sampling == "random":
            raise ValueError(
                "--block_stride spaces strided blocks; with --block_sampling random blocks start anywhere: drop one."
            )


@dataclass
class AdapterArguments:
    method: str = field(default="lora", metadata={"help": "Fine-tuning method: 'full', 'lora' or 'prompt_tuning'."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "Module names to adapt, or all-linear (every linear layer but the output one). None: the "
            "attention projections for the architecture (GPT-2: c_attn; our GPT: q_proj, v_proj; others: PEFT's "
            "defaults)."
        },
    )
    lora_attention_output: bool = field(
        default=False, metadata={"help": "Also adapt the attention output projection (GPT-2 attn.c_proj, o_proj)."}
    )
    num_virtual_tokens: int = field(default=20, metadata={"help": "Prompt tuning: number of soft prompt tokens."})
    prompt_tuning_init_text: str | None = field(
        default=None, metadata={"help": "Prompt tuning: initialise the soft prompt from this text's embeddings."}
    )
    merge_adapter: bool = field(
        default=False, metadata={"help": "LoRA: also save the adapter merged into the base weights (merged/)."}
    )

    def lora_options(self) -> dict:
        """The LoRA settings as `toolkit.adapters.apply_lora` keywords."""
        return dict(
            r=self.lora_r,
            alpha=self.lora_alpha,
            dropout=self.lora_dropout,
            target_modules=self.lora_target_modules,
            include_attention_output=self.lora_attention_output,
        )


@dataclass
class RunArguments:
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow writing into an output_dir that already holds another run."}
    )
    plot: bool = field(default=True, metadata={"help": "Save loss/perplexity curves as PNG in output_dir."})
    push_repo_id: str | None = field(
        default=None,
        metadata={
            "help": "After a finished run, upload output_dir to this Hub repo (<user>/<name>) with a model card, as "
            "`toolkit push` does. Trainer's own push_to_hub pushes at every save instead."
        },
    )
    push_private: bool = field(default=False, metadata={"help": "Create the Hub repo private."})
    push_dry_run: bool = field(
        default=False,
        metadata={"help": "Write the folder that would be uploaded (output_dir/hub-upload); send nothing."},
    )
