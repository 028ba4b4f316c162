"""The public API: every advertised name resolves; packing helpers behave as documented."""

import datasets
import numpy as np
import pytest
import torch

import toolkit
from toolkit.data import pack_blocks, token_stream


def test_every_public_name_resolves():
    for name in toolkit.__all__:
        assert getattr(toolkit, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        toolkit.nonexistent  # noqa: B018


def test_blocks_tile_the_stream_and_overlap_with_a_stride():
    tokenized = datasets.Dataset.from_dict({"input_ids": [list(range(10)), list(range(10, 23))]})  # 23 tokens
    tiled = pack_blocks(tokenized, 5)
    assert [item["input_ids"].tolist() for item in tiled] == [list(range(i, i + 5)) for i in range(0, 20, 5)]
    assert all(torch.equal(item["labels"], item["input_ids"]) for item in tiled)  # labels are the inputs
    assert tiled[-1]["input_ids"].tolist() == list(range(15, 20))
    with pytest.raises(IndexError, match="block 4 of 4"):
        tiled[4]
    overlapping = pack_blocks(tokenized, 5, stride=2)
    assert [item["input_ids"].tolist() for item in overlapping] == [list(range(i, i + 5)) for i in range(0, 19, 2)]
    assert overlapping.input_ids([3, 0]).tolist() == [list(range(6, 11)), list(range(0, 5))]
    assert len(pack_blocks(tokenized, 24)) == 0


def test_the_stream_is_flat_small_integers_in_row_order():
    rows = datasets.Dataset.from_dict({"input_ids": [[1, 2], [3], [4, 5, 6]]})
    stream = token_stream(rows.select([2, 0, 1]))  # a selection's order, not the table's
    assert stream.tolist() == [4, 5, 6, 1, 2, 3] and stream.dtype == np.uint16
    assert token_stream(datasets.Dataset.from_dict({"input_ids": [[70_000, 1]]})).dtype == np.int32
