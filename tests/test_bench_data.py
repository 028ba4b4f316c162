"""`toolkit bench data`: tokenization throughput, whole pretraining runs' peak memory, memmap vs in-memory steps."""

import json

import pytest

from toolkit import bench
from toolkit.bench.data import build_corpus, paragraphs


def test_corpora_are_seeded_shuffles_of_paragraphs_of_the_requested_size(tmp_path):
    source = tmp_path / "source.txt"
    source.write_text("".join(f"Paragraph {i} with some words.\n\n" for i in range(50)))
    pieces = paragraphs([str(source)])
    assert len(pieces) == 50
    first = build_corpus(tmp_path / "a.txt", pieces, 1, seed=0).read_text()
    assert len(first.encode()) >= 10**6 and first == build_corpus(tmp_path / "b.txt", pieces, 1, seed=0).read_text()
    assert first != build_corpus(tmp_path / "c.txt", pieces, 1, seed=1).read_text()
    assert set(first.split("\n\n")) - {""} == set(pieces)


@pytest.mark.slow
def test_one_megabyte_rows_run_end_to_end(tmp_path, shared_data):
    output = tmp_path / "data.json"
    argv = ["data", "--text_files", str(shared_data / "tinyshakespeare/input.txt"), "--tokenizer"]
    argv += [str(shared_data / "gpt2-tokenizer"), "--corpus_mb", "1", "--tokenize_mb", "1", "--train_steps", "2"]
    assert bench.main([*argv, "--trials", "1", "--work_dir", str(tmp_path), "--output", str(output)]) == 0
    results = json.loads(output.read_text())
    assert results["tokenize_mb_per_s"]["1_process"] > 0 and results["tokenize_mb_per_s"]["2_process"] > 0
    (run,) = results["pretraining"]
    assert run["corpus_mb"] >= 1 and run["peak_rss_mib"] > 100
    assert results["training_steps"]["memmap_steps_per_s"] > 0
