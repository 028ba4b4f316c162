"""`toolkit bench nanogpt`: whole processes timed with their kernel-recorded peak memory, and a clear error for a
folder that is not a nanoGPT checkout (nanoGPT itself is never downloaded in tests)."""

import sys

import pytest

from toolkit.bench.nanogpt import NanoGPTBenchArguments, bench_nanogpt, timed_process


def test_a_process_is_timed_with_its_own_peak_memory(tmp_path):
    allocate = "import numpy; a = numpy.ones(300 * 2**20 // 8); print(a.sum())"
    small = timed_process([sys.executable, "-c", "print(1)"], tmp_path, tmp_path / "small.log")
    large = timed_process([sys.executable, "-c", allocate], tmp_path, tmp_path / "large.log")
    assert large["peak_rss_mib"] > small["peak_rss_mib"] + 250  # the child's 300 MiB, not this process's memory
    assert 0 < small["seconds"] < large["seconds"] + 5
    assert (tmp_path / "large.log").read_text().strip() == str(300 * 2**20 // 8) + ".0"


def test_a_failing_run_says_so_with_its_output(tmp_path):
    with pytest.raises(RuntimeError, match=r"(?s)exited with 3:.*went wrong"):
        timed_process([sys.executable, "-c", "print('went wrong'); raise SystemExit(3)"], tmp_path, tmp_path / "x.log")


def test_a_folder_that_is_not_a_nanogpt_checkout_is_named(tmp_path):
    (tmp_path / "input.txt").write_text("To be, or not to be\n")
    (tmp_path / "checkout").mkdir()
    (tmp_path / "checkout" / "train.py").write_text("")
    arguments = NanoGPTBenchArguments(nanogpt_dir=str(tmp_path / "checkout"), dataset=str(tmp_path / "input.txt"))
    with pytest.raises(ValueError, match=r"is not a nanoGPT checkout \(missing \['model.py'.*clone karpathy/nanoGPT"):
        bench_nanogpt(arguments)
    with pytest.raises(ValueError, match="--dataset .*missing.txt: no such file"):
        bench_nanogpt(NanoGPTBenchArguments(nanogpt_dir=str(tmp_path), dataset=str(tmp_path / "missing.txt")))
