"""--dataset_streaming: a corpus streamed straight into its memory-mapped token file, named by its content, reused."""

import json
import os
from pathlib import Path

import datasets
import numpy as np
import pytest
from transformers import ByT5Tokenizer

from recipes_loader import REPO, load_recipe
from toolkit.data import load_raw, source_identity, token_stream, tokenize_texts
from toolkit.loading import load_tokenizer
from toolkit.pipelines.common import job_parser
from toolkit.pipelines.pretrain import prepare
from toolkit.tokenization import build_char_tokenizer
from toolkit.training import PretrainDataArguments
from toolkit.training.setup import token_streams_of_streamed_splits

pretrain = load_recipe("pretrain")
TINY = str(REPO / "recipes/configs/pretrain/tiny_cpu.yaml")


def write_rows(path: Path, count: int, first: int = 0) -> Path:
    rows = (
        {"id": i, "text": f"Line {i}: the quick brown fox jumps over the lazy dog, {i * 7} times."}
        for i in range(count)
    )
    path.write_text("".join(json.dumps(row) + "\n" for row in rows if row["id"] >= first))
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """datasets' cache folder, here a fresh one: the streamed token files go in it, and nothing else should."""
    folder = tmp_path / "datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(folder))
    return folder


@pytest.fixture
def corpus(tmp_path):
    return write_rows(tmp_path / "corpus.jsonl", 300)


@pytest.fixture
def tokenizer_folder(tmp_path, corpus):
    """A character tokenizer saved as a folder, as an earlier run's output_dir holds it."""
    folder = tmp_path / "tokenizer"
    build_char_tokenizer([corpus.read_text()]).save_pretrained(folder)
    return folder


def streamed(tmp_path, corpus, tokenizer_folder, *flags):
    argv = ["--config", TINY, "--output_dir", str(tmp_path / "run"), "--dataset", str(corpus)]
    argv += ["--dataset_streaming", "true", "--tokenizer", str(tokenizer_folder), *flags]
    model_args, data_args, _, training_args = job_parser("pretrain").parse_args_and_config(argv)
    _, _, blocks = prepare(model_args, data_args, training_args)
    return blocks


def tokens_of_rows(corpus: Path, tokenizer_folder: Path, rows: int | None = None) -> np.ndarray:
    """The token stream the non-streaming path makes of the file's first `rows` rows (all: None)."""
    train = load_raw(str(corpus))["train"]
    train = train.select(range(rows)) if rows is not None else train
    return np.array(token_stream(tokenize_texts(train, load_tokenizer(str(tokenizer_folder)), "text")))


def test_a_streamed_corpus_is_its_rows_tokens_with_the_tail_held_out(tmp_path, cache, corpus, tokenizer_folder):
    blocks = streamed(tmp_path, corpus, tokenizer_folder)
    train, validation = blocks["train"].stream, blocks["validation"].stream
    assert isinstance(train, np.memmap) and isinstance(validation, np.memmap) and train.dtype == np.uint16
    assert train.filename == validation.filename  # one file, its tail held out for validation
    assert Path(train.filename).parent == cache / "toolkit-token-files"
    assert not list(cache.rglob("*.arrow"))  # the rows never went through datasets' Arrow cache
    expected = tokens_of_rows(corpus, tokenizer_folder)  # every row's tokens, each closed by EOS, in order
    assert np.array_equal(np.concatenate([train, validation]), expected)
    assert len(validation) == len(expected) - int(len(expected) * 0.9)  # --validation_fraction 0.1

    capped = streamed(tmp_path, corpus, tokenizer_folder, "--max_train_samples", "40")
    capped_stream = np.concatenate([capped["train"].stream, capped["validation"].stream])
    assert np.array_equal(capped_stream, tokens_of_rows(corpus, tokenizer_folder, rows=40))


def test_the_datas_validation_split_streams_into_its_own_file(tmp_path, cache, corpus, tokenizer_folder):
    validation_rows = write_rows(tmp_path / "validation.jsonl", 330, first=300)
    files = {"train": str(corpus), "validation": str(validation_rows)}
    raw = datasets.load_dataset("json", data_files=files, streaming=True)
    args = PretrainDataArguments(dataset=str(corpus), dataset_streaming=True, max_train_samples=100)
    tokenizer = load_tokenizer(str(tokenizer_folder))
    streams = token_streams_of_streamed_splits(raw, args, tokenizer, source_identity(str(corpus)))
    assert streams["train"].filename != streams["validation"].filename
    assert np.array_equal(streams["train"], tokens_of_rows(corpus, tokenizer_folder, rows=100))
    assert np.array_equal(streams["validation"], tokens_of_rows(validation_rows, tokenizer_folder))


def test_the_token_file_is_written_once_reused_and_rewritten_when_half_written(
    tmp_path, cache, corpus, tokenizer_folder
):
    first = streamed(tmp_path, corpus, tokenizer_folder)["train"].stream
    path, expected = Path(first.filename), np.array(first)
    written = os.stat(path).st_mtime_ns
    again = streamed(tmp_path, corpus, tokenizer_folder)["train"].stream
    assert again.filename == first.filename and os.stat(path).st_mtime_ns == written

    path.with_suffix(".json").unlink()  # as if the writer died before recording the file
    path.write_bytes(b"\x00" * 10)
    rewritten = streamed(tmp_path, corpus, tokenizer_folder)["train"].stream
    assert rewritten.filename == first.filename and np.array_equal(rewritten, expected)

    edited = corpus.read_text().replace("quick", "QUICK", 1)  # the same size, and the old modification time back
    times = os.stat(corpus)
    corpus.write_text(edited)
    os.utime(corpus, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert os.stat(corpus).st_size == times.st_size and os.stat(corpus).st_mtime_ns == times.st_mtime_ns
    after_edit = streamed(tmp_path, corpus, tokenizer_folder)["train"].stream
    assert np.array_equal(after_edit, tokens_of_rows(corpus, tokenizer_folder)[: len(after_edit)])
    write_rows(corpus, 301)  # the data changed: another file
    assert streamed(tmp_path, corpus, tokenizer_folder)["train"].stream.filename != first.filename
    fewer_rows = streamed(tmp_path, corpus, tokenizer_folder, "--max_train_samples", "100")
    assert fewer_rows["train"].stream.filename != first.filename


def test_a_streamed_run_trains_and_saves(tmp_path, cache, corpus, tokenizer_folder):
    output_dir = tmp_path / "run"
    argv = ["--config", TINY, "--output_dir", str(output_dir), "--dataset", str(corpus), "--dataset_streaming", "true"]
    argv += [
        "--tokenizer",
        str(tokenizer_folder),
        "--block_sampling",
        "random",
        "--max_steps",
        "4",
        "--eval_steps",
        "4",
    ]
    metrics = pretrain.main(argv)
    assert metrics["global_step"] == 4 and np.isfinite(metrics["eval_loss"])
    assert (output_dir / "model.safetensors").exists() and (output_dir / "tokenizer.json").exists()


def test_streaming_refuses_what_it_cannot_do(tmp_path, cache, corpus, tokenizer_folder):
    run = ["--config", TINY, "--output_dir", str(tmp_path / "run"), "--dataset_streaming", "true"]
    with pytest.raises(ValueError, match="--tokenizer char is built from the whole training text.*tokenizer folder"):
        pretrain.main([*run, "--dataset", str(corpus)])
    with pytest.raises(ValueError, match="arithmetic is generated in memory and cannot be streamed"):
        pretrain.main([*run, "--tokenizer", str(tokenizer_folder), "--overwrite_output_dir", "true"])
    ByT5Tokenizer().save_pretrained(tmp_path / "byt5")
    with pytest.raises(ValueError, match="ByT5Tokenizer \\(not a fast `tokenizers` tokenizer\\)"):
        pretrain.main(
            [*run, "--dataset", str(corpus), "--tokenizer", str(tmp_path / "byt5"), "--overwrite_output_dir", "true"]
        )
    nulls = tmp_path / "nulls.jsonl"
    nulls.write_text(corpus.read_text() + '{"id": 300, "text": null}\n')
    with pytest.raises(ValueError, match=r"nulls.jsonl \(train\): row 300 has no 'text' \(null\)"):
        pretrain.main(
            [*run, "--dataset", str(nulls), "--tokenizer", str(tokenizer_folder), "--overwrite_output_dir", "true"]
        )
    with pytest.raises(ValueError, match=r"column\(s\) \['body'\] not found; available columns: \['id', 'text'\]"):
        pretrain.main(
            [
                *run,
                "--dataset",
                str(corpus),
                "--tokenizer",
                str(tokenizer_folder),
                "--text_column",
                "body",
                "--overwrite_output_dir",
                "true",
            ]
        )
