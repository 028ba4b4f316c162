"""A corpus from files or the Hub is tokenized once into a flat token file, read memory-mapped, and reused."""

import os
from pathlib import Path

import numpy as np
import pytest

from toolkit.data import load_raw, token_stream, tokenize_texts
from toolkit.tokenization import build_char_tokenizer

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog {i * 7}\n" for i in range(400))


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT)
    return load_raw(str(path), text_sample_by="line")["train"]


def test_a_cached_corpus_gives_a_memory_map_equal_to_the_in_memory_stream(corpus):
    tokenizer = build_char_tokenizer([TEXT])
    tokenized = tokenize_texts(corpus, tokenizer, "text")
    stream = token_stream(tokenized)
    assert isinstance(stream, np.memmap) and stream.dtype == np.uint16
    in_memory = token_stream(tokenize_texts(corpus.flatten_indices(keep_in_memory=True), tokenizer, "text"))
    assert not isinstance(in_memory, np.memmap)
    assert np.array_equal(stream, in_memory)
    assert len(stream) == sum(map(len, corpus["text"])) + len(corpus)  # every character, one EOS per line


def test_the_token_file_is_written_once_and_named_by_the_tokenizer(corpus):
    tokenizer = build_char_tokenizer([TEXT])
    first = token_stream(tokenize_texts(corpus, tokenizer, "text"))
    written = first.filename, os.stat(first.filename).st_mtime_ns
    again = token_stream(tokenize_texts(corpus, build_char_tokenizer([TEXT]), "text"))  # a rebuilt, equal tokenizer
    assert (again.filename, os.stat(again.filename).st_mtime_ns) == written
    other = token_stream(tokenize_texts(corpus, build_char_tokenizer([TEXT + "#"]), "text"))
    assert other.filename != first.filename


def test_a_half_written_token_file_is_rewritten(corpus):

    tokenized = tokenize_texts(corpus, build_char_tokenizer([TEXT]), "text")
    stream = token_stream(tokenized)
    expected = np.array(stream)
    path = Path(stream.filename)
    del stream
    path.with_suffix(".json").unlink()  # as if the writer died before recording the file
    path.write_bytes(b"\x00" * 10)
    assert np.array_equal(token_stream(tokenized), expected)


@pytest.mark.parametrize("damage", ["deleted", "cut short", "damaged record"])
def test_a_token_file_deleted_or_cut_short_since_it_was_written_is_written_again(corpus, damage):
    """The file's record stayed, so the stream was read from a missing file (FileNotFoundError) or a short one
    (numpy's "mmap length is greater than file size")."""
    tokenized = tokenize_texts(corpus, build_char_tokenizer([TEXT]), "text")
    stream = token_stream(tokenized)
    expected, path = np.array(stream), Path(stream.filename)
    del stream
    if damage == "deleted":
        path.unlink()
    elif damage == "cut short":
        path.write_bytes(path.read_bytes()[:100])
    else:
        path.with_suffix(".json").write_text('{"dtype": "uint16", "tok')
    with pytest.warns(UserWarning, match="is missing, cut short or damaged: writing it again"):
        assert np.array_equal(token_stream(tokenized), expected)
