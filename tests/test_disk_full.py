"""A disk that fills up during a save or while a token file is written: one error that says so, nothing half-written
taken for whole. Each test fills a 1 MiB file system of its own (a tmpfs, which mounting needs root for, as CI has)."""

import errno
import gc
import json
import subprocess

import datasets
import pytest

from recipes_loader import REPO, load_recipe
from toolkit.runs import read_run, resolve_checkpoint
from toolkit.tokenization import build_char_tokenizer

TINY = str(REPO / "recipes/configs/pretrain/tiny_cpu.yaml")


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 1 MiB tmpfs here ({mounted.stderr.decode().strip()}); CI runs as root")
    yield folder
    gc.collect()  # the failed save's file, open in the frames of the traceback a test kept, is closed
    subprocess.run(["umount", "--lazy", str(folder)], check=True)


def test_a_checkpoint_that_fills_the_disk_says_the_disk_is_full(small_disk):
    """torch's zip writer said "[enforce fail at inline_container.cc:672] . unexpected pos 440832 vs 440724"."""
    output_dir = small_disk / "run"
    flags = ["--config", TINY, "--output_dir", str(output_dir), "--max_steps", "15", "--save_steps", "15"]
    with pytest.raises(OSError, match=r"The disk holding .*/run is full \(0.0 MiB free\).*resume with") as error:
        load_recipe("pretrain").main([*flags, "--eval_strategy", "no"])
    assert error.value.errno == errno.ENOSPC
    record = read_run(output_dir)
    assert record.status == "failed" and record.error.startswith("OSError: [Errno 28] The disk holding")
    with pytest.raises(ValueError, match="checkpoint-15: the save never finished"):
        resolve_checkpoint("latest", output_dir)


def test_a_token_file_that_fills_the_disk_leaves_nothing_behind(small_disk, tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(small_disk / "datasets-cache"))
    corpus = tmp_path / "corpus.jsonl"  # ~1.2M characters: 2.4 MB of tokens
    corpus.write_text("".join(json.dumps({"text": f"line {i}: " + "abcdefgh " * 12}) + "\n" for i in range(10_000)))
    tokenizer = tmp_path / "tokenizer"
    build_char_tokenizer(corpus.read_text()).save_pretrained(tokenizer)
    flags = ["--config", TINY, "--output_dir", str(tmp_path / "run"), "--dataset", str(corpus)]
    flags += ["--tokenizer", str(tokenizer)]
    with pytest.raises(OSError, match=r"The disk holding .*toolkit-token-files is full .*HF_DATASETS_CACHE") as error:
        load_recipe("pretrain").main([*flags, "--dataset_streaming", "true", "--max_steps", "1"])
    assert error.value.errno == errno.ENOSPC
    assert not [path.name for path in small_disk.rglob("tokens-*")]  # no partial file left
