"""`toolkit bench data`: pretraining data at corpus scale. Tokenization throughput with 1 and 2 processes, the peak
memory of a whole pretraining run (tokenize, write the token file, train a few steps) on corpora of growing size,
and training steps read from the memory-mapped token file against the same blocks held in memory."""

import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch

from ..data import TokenBlocks, load_raw, token_stream, tokenize_texts
from ..loading import load_gpt2_tokenizer, load_tokenizer
from ..models import GPTConfig, GPTForCausalLM
from .common import side_by_side

MB = 10**6


@dataclass
class DataBenchArguments:
    """Tokenization MB/s, pretraining peak RSS by corpus size, memory-mapped against in-memory training steps."""

    text_files: list[str] = field(
        metadata={"help": "Text files the corpora are built from, by paragraph (e.g. WikiText-2, Shakespeare)."}
    )
    tokenizer: str = field(metadata={"help": "Tokenizer folder or Hub id (e.g. a GPT-2 tokenizer folder)."})
    corpus_mb: list[int] = field(
        default_factory=lambda: [10, 100, 1000], metadata={"help": "Corpus sizes (MB) for the peak-memory runs."}
    )
    tokenize_mb: int = field(default=20, metadata={"help": "Text (MB) tokenized for the throughput rows."})
    train_steps: int = field(default=5, metadata={"help": "Training steps of each peak-memory run."})
    trials: int = field(default=5, metadata={"help": "Timed pairs of the memmap vs in-memory training rows."})
    work_dir: str | None = field(
        default=None, metadata={"help": "Where the corpora and caches go (several GB for 1000 MB). None: a temp dir."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the paragraph shuffle."})
    output: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})


def paragraphs(text_files: list[str]) -> list[str]:
    found = []
    for name in text_files:
        found += [p.strip() for p in Path(name).read_text(encoding="utf-8").split("\n\n") if p.strip()]
    if not found:
        raise ValueError(f"No paragraphs in {text_files}.")
    return found


def build_corpus(path: Path, pieces: list[str], megabytes: int, seed: int) -> Path:
    """`megabytes` of paragraphs drawn in a seeded shuffled order (reshuffled at each pass), one blank line apart;
    written as it is drawn, so memory stays flat."""
    rng, written = random.Random(seed), 0
    with open(path, "w", encoding="utf-8") as handle:
        while written < megabytes * MB:
            order = list(range(len(pieces)))
            rng.shuffle(order)
            for index in order:
                written += handle.write(pieces[index] + "\n\n")
                if written >= megabytes * MB:
                    break
    return path


def tokenization_throughput(corpus: Path, tokenizer_name: str, num_proc: int) -> float:
    """MB/s of `tokenize_texts` over the corpus held in memory (so nothing comes from datasets' cache)."""
    raw = load_raw(str(corpus), text_sample_by="paragraph")["train"].flatten_indices(keep_in_memory=True)
    tokenizer = load_tokenizer(tokenizer_name)
    start = time.perf_counter()
    tokenize_texts(raw, tokenizer, "text", num_proc=num_proc if num_proc > 1 else None)
    return corpus.stat().st_size / MB / (time.perf_counter() - start)


def pretraining_peak_rss(corpus: Path, tokenizer: str, args: DataBenchArguments, work: Path) -> dict:
    """`toolkit pretrain` on the corpus (a 2-layer GPT, GPT-2-size vocabulary, batch 4 x 128 so the (4, 128, 50257)
    logits stay ~100 MB) in a fresh process with an empty datasets cache: wall time and the peak RSS of the process
    with its tokenizer workers."""
    output_dir = work / f"run-{corpus.stem}"
    command = [sys.executable, "-m", "toolkit.cli", "pretrain", "--dataset", str(corpus)]
    command += ["--text_sample_by", "paragraph", "--tokenizer", tokenizer, "--architecture", "gpt"]
    command += ["--num_layers", "2", "--num_heads", "2", "--hidden_size", "64", "--context_length", "128"]
    command += ["--block_size", "128", "--dataset_num_proc", "2", "--max_steps", str(args.train_steps)]
    command += ["--per_device_train_batch_size", "4", "--eval_strategy", "no", "--save_strategy", "no"]
    command += ["--validation_fraction", "0.001", "--use_cpu", "true", "--report_to", "none", "--plot", "false"]
    command += ["--output_dir", str(output_dir), "--overwrite_output_dir", "true"]
    env = {**os.environ, "HF_DATASETS_CACHE": str(work / f"cache-{corpus.stem}"), "TOKENIZERS_PARALLELISM": "false"}
    log = work / f"run-{corpus.stem}.log"
    start = time.perf_counter()
    with open(log, "w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)  # this run's own peak, its tokenizer workers included
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"pretraining on {corpus} failed:\n{log.read_text()[-3000:]}")
    return {"corpus_mb": corpus.stat().st_size / MB, "seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024}


def memmap_vs_memory_steps(corpus: Path, tokenizer_name: str, args: DataBenchArguments) -> dict:
    """Seconds per 20 training steps (shuffled blocks, a 2-layer GPT) reading the token file vs a copy in memory."""
    raw = load_raw(str(corpus), text_sample_by="paragraph")["train"]
    tokenizer = load_tokenizer(tokenizer_name)
    stream = token_stream(tokenize_texts(raw, tokenizer, "text", num_proc=2))
    on_disk, in_memory = TokenBlocks(stream, 256), TokenBlocks(np.array(stream), 256)
    torch.manual_seed(args.seed)
    shape = dict(num_hidden_layers=2, num_attention_heads=2, hidden_size=64, max_position_embeddings=256)
    model = GPTForCausalLM(GPTConfig(**shape, vocab_size=len(tokenizer))).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(args.seed)

    def steps(blocks: TokenBlocks):
        for _ in range(20):
            ids = blocks.input_ids(torch.randint(0, len(blocks), (8,), generator=generator))
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    result = side_by_side(lambda: steps(on_disk), lambda: steps(in_memory), args.trials)
    return {
        "tokens": len(stream),
        "memmap_steps_per_s": 20 / result["candidate_s"],
        "memory_steps_per_s": 20 / result["baseline_s"],
        "ratio_memmap_vs_memory": result["speedup"],
    }


def tokenizer_folder(name: str, work: Path) -> str:
    """A folder `from_pretrained` reads: GPT-2's raw BPE files (encoder.json + vocab.bpe) are saved as one first."""
    path = Path(name)
    if path.is_dir() and not (path / "tokenizer_config.json").exists():
        load_gpt2_tokenizer(path).save_pretrained(work / "tokenizer")
        return str(work / "tokenizer")
    return name


def bench_data(args: DataBenchArguments) -> dict:
    pieces = paragraphs(args.text_files)
    with tempfile.TemporaryDirectory(dir=args.work_dir) as folder:
        work = Path(folder)
        tokenizer = tokenizer_folder(args.tokenizer, work)
        small = build_corpus(work / f"tokenize-{args.tokenize_mb}mb.txt", pieces, args.tokenize_mb, args.seed)
        datasets.disable_progress_bars()
        throughput = {f"{n}_process": tokenization_throughput(small, tokenizer, n) for n in (1, 2)}
        datasets.enable_progress_bars()
        runs = []
        for megabytes in sorted(args.corpus_mb):
            corpus = build_corpus(work / f"corpus-{megabytes}mb.txt", pieces, megabytes, args.seed)
            runs.append(pretraining_peak_rss(corpus, tokenizer, args, work))
            corpus.unlink()
        steps = memmap_vs_memory_steps(small, tokenizer, args)
    return {"tokenize_mb_per_s": throughput, "pretraining": runs, "training_steps": steps}


def format_data_results(results: dict) -> str:
    speed = results["tokenize_mb_per_s"]
    lines = [
        f"tokenization: {speed['1_process']:.2f} MB/s with 1 process, {speed['2_process']:.2f} MB/s with 2",
        "",
        "| corpus | pretraining wall s | peak RSS (MiB) |",
        "|---|---|---|",
    ]
    for run in results["pretraining"]:
        lines.append(f"| {run['corpus_mb']:,.0f} MB | {run['seconds']:.0f} | {run['peak_rss_mib']:,.0f} |")
    steps = results["training_steps"]
    lines += [
        "",
        f"training steps ({steps['tokens']:,} tokens): memmap {steps['memmap_steps_per_s']:.1f}/s, in memory "
        f"{steps['memory_steps_per_s']:.1f}/s, memmap / memory {steps['ratio_memmap_vs_memory']:.2f}x",
    ]
    return "\n".join(lines)
