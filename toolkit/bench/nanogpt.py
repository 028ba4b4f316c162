"""`toolkit bench nanogpt`: the Shakespeare recipe against nanoGPT's `train.py`, whole processes alternating.

Both run as a user starts them, in fresh processes, one at a time: `toolkit pretrain` on the recipe config, and
nanoGPT's CPU Shakespeare command (its README) from a checkout, each on data prepared beforehand (nanoGPT's own
`prepare.py`; for ours an untimed one-step run that tokenizes the text into datasets' cache).
Each run's wall time and peak resident memory come from the kernel (`wait4`, see `SPAWNER`); the final validation
loss of both is scored the same way: the whole held-out split in non-overlapping blocks, token-weighted.
"""

import importlib.util
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

# nanoGPT's README: "a CPU ... run": its Shakespeare config shrunk to the model the recipe config trains.
NANOGPT_CPU_FLAGS = (
    "--device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 "
    "--n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0"
)
NANOGPT_FILES = ["train.py", "model.py", "configurator.py", "config", "data/shakespeare_char/prepare.py"]


@dataclass
class NanoGPTBenchArguments:
    """The Shakespeare recipe against nanoGPT's train.py: wall time, peak RSS and validation loss, A B A B."""

    nanogpt_dir: str = field(metadata={"help": "A nanoGPT checkout (git clone https://github.com/karpathy/nanoGPT)."})
    dataset: str = field(metadata={"help": "Tiny Shakespeare's input.txt (../shared/data/tinyshakespeare/input.txt)."})
    recipe_config: str = field(
        default="recipes/configs/pretrain/shakespeare_char.yaml",
        metadata={"help": "The pretraining YAML `toolkit pretrain` runs (nanoGPT's CPU Shakespeare configuration)."},
    )
    recipe_flags: str = field(
        default="",
        metadata={"help": "Flags after the recipe config, one string ('--max_steps 20' for a quick check)."},
    )
    trials: int = field(default=2, metadata={"help": "Pairs of runs (ours, then nanoGPT's), alternating."})
    nanogpt_flags: str = field(
        default=NANOGPT_CPU_FLAGS,
        metadata={
            "help": "Flags after `train.py config/train_shakespeare_char.py`, one string (its README's CPU run)."
        },
    )
    output: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})


# Starts the command from a small process and reports its peak RSS (KiB) to a file. Linux carries a process's peak
# RSS across fork and exec, so a command started from this process would report at least this process's memory;
# posix_spawn from a fresh interpreter leaves the command only its own.
SPAWNER = """
import os, sys
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def timed_process(command: list[str], cwd: Path, log: Path) -> dict:
    """Run a command to the end: wall seconds and the peak RSS (MiB) the kernel recorded for it."""
    peak = log.with_suffix(".peak")
    start = time.perf_counter()
    with open(log, "w") as output:
        result = subprocess.run(
            [sys.executable, "-c", SPAWNER, str(peak), *command], cwd=cwd, stdout=output, stderr=subprocess.STDOUT
        )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {result.returncode}:\n{log.read_text()[-3000:]}")
    return {"seconds": seconds, "peak_rss_mib": int(peak.read_text()) / 1024}


def nanogpt_copy(checkout: Path, text: Path, work: Path) -> Path:
    """The checkout's training files in `work`, with the text as `data/shakespeare_char/input.txt` prepared by
    nanoGPT's own `prepare.py` (train.bin / val.bin / meta.pkl)."""
    missing = [name for name in NANOGPT_FILES if not (checkout / name).exists()]
    if missing:
        raise ValueError(f"{checkout} is not a nanoGPT checkout (missing {missing}); clone karpathy/nanoGPT.")
    for name in NANOGPT_FILES:
        source, target = checkout / name, work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    data = work / "data/shakespeare_char"
    shutil.copy(text, data / "input.txt")
    subprocess.run([sys.executable, "prepare.py"], cwd=data, check=True, capture_output=True)
    return work


@torch.no_grad()
def nanogpt_validation_loss(work: Path, out_dir: Path, block_size: int = 64) -> float:
    """nanoGPT's saved model scored on its whole val.bin: non-overlapping blocks, each predicting its tokens after the
    first, token-weighted, as the recipe's evaluation scores its own split."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", work / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    checkpoint = torch.load(out_dir / "ckpt.pt", map_location="cpu", weights_only=False)  # a file this run wrote
    model = module.GPT(module.GPTConfig(**checkpoint["model_args"]))
    model.load_state_dict({key.removeprefix("_orig_mod."): value for key, value in checkpoint["model"].items()})
    model.eval()
    tokens = np.fromfile(work / "data/shakespeare_char/val.bin", dtype=np.uint16).astype(np.int64)
    blocks = torch.from_numpy(tokens[: len(tokens) // block_size * block_size]).view(-1, block_size)
    total, count = 0.0, 0
    for batch in blocks.split(128):
        _, loss = model(batch[:, :-1].contiguous(), batch[:, 1:].contiguous())
        total += loss.item() * batch[:, 1:].numel()
        count += batch[:, 1:].numel()
    return total / count


def bench_nanogpt(args: NanoGPTBenchArguments) -> dict:
    checkout, text = Path(args.nanogpt_dir).resolve(), Path(args.dataset).resolve()
    if not text.is_file():
        raise ValueError(f"--dataset {args.dataset}: no such file (Tiny Shakespeare's input.txt).")
    config = Path(args.recipe_config).resolve()
    runs: dict[str, list[dict]] = {"ours": [], "nanogpt": []}
    with tempfile.TemporaryDirectory() as folder:
        work = nanogpt_copy(checkout, text, Path(folder) / "nanogpt")

        def ours_command(output_dir: Path, *flags: str) -> list[str]:
            command = [
                sys.executable,
                "-m",
                "toolkit.cli",
                "pretrain",
                "--config",
                str(config),
                "--dataset",
                str(text),
            ]
            return [*command, "--output_dir", str(output_dir), *shlex.split(args.recipe_flags), *flags]

        # Our data prepared before the timed runs, as nanoGPT's prepare.py: tokenized once into datasets' cache.
        untimed = ["--max_steps", "1", "--eval_strategy", "no", "--save_strategy", "no", "--plot", "false"]
        timed_process(ours_command(Path(folder) / "prepare", *untimed), Path(folder), Path(folder) / "prepare.log")
        for trial in range(args.trials):
            ours_dir = Path(folder) / f"ours-{trial}"
            run = timed_process(ours_command(ours_dir), Path(folder), Path(folder) / f"ours-{trial}.log")
            run["validation_loss"] = json.loads((ours_dir / "metrics.json").read_text())["eval_loss"]
            runs["ours"].append(run)

            nanogpt_dir = work / f"out-{trial}"
            command = [
                sys.executable,
                "train.py",
                "config/train_shakespeare_char.py",
                *shlex.split(args.nanogpt_flags),
            ]
            run = timed_process([*command, f"--out_dir={nanogpt_dir}"], work, Path(folder) / f"nanogpt-{trial}.log")
            run["validation_loss"] = nanogpt_validation_loss(work, nanogpt_dir)
            runs["nanogpt"].append(run)

    def summary(rows: list[dict]) -> dict:
        return {key: statistics.median(row[key] for row in rows) for key in rows[0]} | {"runs": rows}

    ours, nanogpt = summary(runs["ours"]), summary(runs["nanogpt"])
    return {
        "setup": f"toolkit pretrain --config {args.recipe_config} {args.recipe_flags} vs nanoGPT train.py "
        f"{args.nanogpt_flags}; {args.trials} pairs",
        "ours": ours,
        "nanogpt": nanogpt,
        "speed_ours_vs_nanogpt": statistics.median(
            b["seconds"] / a["seconds"] for a, b in zip(runs["ours"], runs["nanogpt"])
        ),
        "peak_rss_ours_vs_nanogpt": ours["peak_rss_mib"] / nanogpt["peak_rss_mib"],
    }


def format_nanogpt_results(results: dict) -> str:
    lines = [
        results["setup"],
        "",
        "| run | wall s (median) | peak RSS MiB | whole-split validation loss |",
        "|---|---|---|---|",
    ]
    for name in ("ours", "nanogpt"):
        row = results[name]
        losses = " / ".join(f"{run['validation_loss']:.4f}" for run in row["runs"])
        lines.append(f"| {name} | {row['seconds']:.1f} | {row['peak_rss_mib']:,.0f} | {losses} |")
    lines.append(
        f"\nspeed, ours / nanoGPT (median of pairs): {results['speed_ours_vs_nanogpt']:.2f}x; "
        f"peak RSS: {results['peak_rss_ours_vs_nanogpt']:.2f}x"
    )
    return "\n".join(lines)
