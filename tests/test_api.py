"""The public API: every advertised name resolves; packing helpers behave as documented."""

import datasets
import pytest

import toolkit
from toolkit.data import pack_blocks


def test_every_public_name_resolves():
    for name in toolkit.__all__:
        assert getattr(toolkit, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        toolkit.nonexistent  # noqa: B018


def test_blocks_tile_the_stream_and_overlap_with_a_stride():
    tokenized = datasets.Dataset.from_dict({"input_ids": [list(range(10)), list(range(10, 23))]})  # 23 tokens
    tiled = pack_blocks(tokenized, 5)
    assert tiled["input_ids"] == [list(range(i, i + 5)) for i in range(0, 20, 5)]  # ragged tail dropped
    assert tiled["labels"] == tiled["input_ids"]
    overlapping = pack_blocks(tokenized, 5, stride=2)
    assert overlapping["input_ids"] == [list(range(i, i + 5)) for i in range(0, 19, 2)]
