"""--block_sampling random: nanoGPT's random block offsets, seeded, resumable, new each epoch, in constant memory."""

import time
import tracemalloc

import numpy as np
import pytest
import torch

from recipes_loader import REPO, load_recipe
from toolkit.data import RandomBlocks
from toolkit.pipelines.common import job_parser
from toolkit.pipelines.pretrain import build_trainer, prepare

pretrain = load_recipe("pretrain")
TINY = str(REPO / "recipes/configs/pretrain/tiny_cpu.yaml")
CORPUS = "".join(f"Line {i}: the quick brown fox jumps over the lazy dog, {i * 7} times.\n" for i in range(600))


def offsets(blocks: RandomBlocks, epoch: int) -> np.ndarray:
    """Where each block of an epoch starts: the stream is 0, 1, 2, ... so a block's first token is its offset."""
    blocks.set_epoch(epoch)
    ids = blocks.input_ids(range(len(blocks))).numpy()
    assert (ids == ids[:, :1] + np.arange(blocks.block_size)).all()  # each block is one slice of the stream
    return ids[:, 0]


def test_offsets_are_a_pure_function_of_seed_epoch_and_index():
    stream = np.arange(2000, dtype=np.uint16)
    blocks = RandomBlocks(stream, 16, seed=1337)
    assert len(blocks) == 2000 // 16  # an epoch reads as many tokens as the stream holds
    first = offsets(blocks, 0)
    assert np.array_equal(offsets(RandomBlocks(stream, 16, seed=1337), 0), first)  # same seed, same blocks
    assert np.array_equal(offsets(blocks, 0), first)  # and again after other epochs
    blocks.set_epoch(0)
    assert [blocks[i]["input_ids"][0].item() for i in (7, 3, -1)] == [first[7], first[3], first[-1]]  # by index alone
    assert np.array_equal(blocks.input_ids([9, 2])[:, 0].numpy(), first[[9, 2]])
    assert torch.equal(blocks[5]["labels"], blocks[5]["input_ids"])
    assert (offsets(blocks, 1) != first).mean() > 0.9  # each epoch draws new offsets
    assert (offsets(RandomBlocks(stream, 16, seed=1338), 0) != first).mean() > 0.9  # and each seed
    with pytest.raises(IndexError):
        blocks[len(blocks)]


def test_offsets_cover_the_whole_stream_uniformly():
    blocks = RandomBlocks(np.arange(2000, dtype=np.uint16), 16, seed=0)
    drawn = np.concatenate([offsets(blocks, epoch) for epoch in range(40)])  # 5000 draws
    starts = 2000 - 16 + 1  # every offset a whole block fits after, both ends included
    assert drawn.min() >= 0 and drawn.max() <= starts - 1
    assert drawn.min() < 10 and drawn.max() > starts - 11  # reaches both ends
    assert len(np.unique(drawn)) > 0.85 * starts  # 1 - e^-2.5 = 92% expected with replacement
    per_quarter = np.bincount(drawn * 4 // starts, minlength=4)
    assert np.abs(per_quarter / len(drawn) - 0.25).max() < 0.03


def test_a_100m_token_memory_map_is_read_without_memory_per_block(tmp_path):
    path = tmp_path / "tokens.bin"
    np.memmap(path, dtype=np.uint16, mode="w+", shape=(100_000_000,)).flush()  # sparse: 200 MB, nothing written
    stream = np.memmap(path, dtype=np.uint16, mode="r", shape=(100_000_000,))
    tracemalloc.start()
    started = time.perf_counter()
    blocks = RandomBlocks(stream, 64, seed=0)
    rows = [blocks[index]["input_ids"] for index in (0, 1, len(blocks) - 1)]
    batch = blocks.input_ids(range(8))
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(blocks) == 1_562_500 and [len(row) for row in rows] == [64] * 3 and batch.shape == (8, 64)
    assert elapsed < 0.5
    assert peak < 100_000  # bytes: an index per block would be 12.5 MB


def prepared(tmp_path, *flags):
    argv = ["--config", TINY, "--output_dir", str(tmp_path / "run"), *flags]
    model_args, data_args, _, training_args = job_parser("pretrain").parse_args_and_config(argv)
    return prepare(model_args, data_args, training_args), training_args


def test_two_epochs_through_the_trainer_read_each_epochs_own_blocks(tmp_path):
    """The pipeline's Trainer and dataloader (shuffled indices), two epochs: every block of each epoch is read
    once, and the second epoch's blocks are new ones."""
    (tmp_path / "corpus.txt").write_text(CORPUS)
    flags = ["--dataset", str(tmp_path / "corpus.txt"), "--text_sample_by", "line", "--max_train_samples", "80"]
    flags += ["--block_sampling", "random"]
    flags += ["--max_steps", "-1", "--num_train_epochs", "2", "--eval_strategy", "no", "--save_strategy", "no"]
    (tokenizer, model, blocks), training_args = prepared(tmp_path, *flags)
    train = blocks["train"]
    assert isinstance(train, RandomBlocks) and train.seed == 0  # the config's --seed
    read = []
    model.register_forward_pre_hook(
        lambda _, args, kwargs: read.extend(kwargs["input_ids"].tolist()), with_kwargs=True
    )
    build_trainer(model, tokenizer, blocks, training_args).train()

    assert len(read) == 2 * len(train)
    epochs = []
    for epoch, rows in enumerate((read[: len(train)], read[len(train) :])):
        train.set_epoch(epoch)
        expected = train.input_ids(range(len(train))).tolist()
        assert sorted(rows) == sorted(expected), f"epoch {epoch}"
        assert rows != expected  # in the sampler's shuffled order
        epochs.append({tuple(row) for row in rows})
    assert len(epochs[0] & epochs[1]) < 0.2 * len(train)


def test_the_offsets_are_seeded_by_data_seed_else_seed(tmp_path):
    (tmp_path / "corpus.txt").write_text(CORPUS)
    flags = ["--dataset", str(tmp_path / "corpus.txt"), "--block_sampling", "random", "--seed", "3"]
    (_, _, blocks), _ = prepared(tmp_path, *flags)
    assert blocks["train"].seed == 3
    (_, _, blocks), _ = prepared(tmp_path, *flags, "--data_seed", "11")
    assert blocks["train"].seed == 11
    validation = blocks["validation"]  # strided without overlap: every validation token scored once
    assert type(validation).__name__ == "TokenBlocks" and validation.stride == validation.block_size == 64


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--block_sampling", "shuffled"], r"--block_sampling must be 'strided' or 'random', got 'shuffled'"),
        (["--block_sampling", "random", "--block_stride", "4"], "--block_stride spaces strided blocks.*drop one"),
        (
            ["--block_sampling", "random", "--dataloader_num_workers", "1", "--dataloader_persistent_workers", "true"],
            "workers kept across epochs would never see: drop --dataloader_persistent_workers",
        ),
    ],
)
def test_settings_that_cannot_work_name_the_flag(tmp_path, flags, message):
    with pytest.raises(ValueError, match=message):
        pretrain.main(["--config", TINY, "--output_dir", str(tmp_path / "run"), *flags])
