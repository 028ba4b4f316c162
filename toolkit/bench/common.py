"""Timing side by side, in one process or a fresh one per run."""

import multiprocessing
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor


def time_call(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def side_by_side(candidate: Callable, baseline: Callable, trials: int, warmup: int = 1) -> dict:
    """Seconds per call for both, alternating, plus the median of per-pair ratios baseline/candidate (speed-up)."""
    for _ in range(warmup):
        candidate()
        baseline()
    pairs = [(time_call(candidate), time_call(baseline)) for _ in range(trials)]
    return {
        "candidate_s": statistics.median(c for c, _ in pairs),
        "baseline_s": statistics.median(b for _, b in pairs),
        "speedup": statistics.median(b / c for c, b in pairs),
    }


def in_fresh_process(function: Callable[[dict], dict], spec: dict) -> dict:
    """function(spec) in a new process, so its peak memory is its own (exceptions come back here)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, spec).result()


GPT2_SMALL_SHAPE = dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257)


def describe(shape: dict) -> str:
    return f"{shape['n_layer']}L {shape['n_head']}H {shape['n_embd']}C"
