"""`toolkit bench ppo`: our PPOTrainer's episodes/s and peak memory, and its side-by-side run against TRL 1.12 in a
separate venv (never installed here: the TRL side is only checked for its clear errors and skip message)."""

import ast
import json
import sys
from pathlib import Path

import pytest

from toolkit import bench
from toolkit.bench import PPOBenchArguments, bench_ppo


def test_tiny_config_runs_and_reports_speed_and_memory(tmp_path, capsys):
    output = tmp_path / "ppo.json"
    argv = ["ppo", "--trials", "1", "--steps", "1", "--threads", "1", "--skip_gpt2_small", "true"]
    assert bench.main([*argv, "--output", str(output)]) == 0

    results = json.loads(output.read_text())
    ours = results["ours"]
    assert ours["episodes_per_s"] > 0
    assert len(ours["runs"]) == 1 and len(ours["runs"][0]["step_seconds"]) == 1  # the warm-up step is left out
    # Peak RSS counts the imports too; a tiny run may not climb above them, so its growth can be 0.
    assert ours["peak_memory_mib"] > 0 and 0 <= ours["memory_growth_mib"] <= ours["peak_memory_mib"]
    assert "trl" not in results and "gpt2_small" not in results
    printed = capsys.readouterr().out
    assert "ours (toolkit.rlhf.PPOTrainer)" in printed
    assert "TRL column skipped: no --trl_python" in printed and "pip install trl==1.12.0" in printed


def test_missing_trl_python_is_a_clear_error_before_any_run(tmp_path):
    missing = str(tmp_path / "no-venv" / "bin" / "python")
    with pytest.raises(ValueError, match="is not an executable.*pip install trl==1.12.0"):
        bench_ppo(PPOBenchArguments(trl_python=missing))


def test_python_without_trl_ppo_is_a_clear_error():
    # This venv's TRL (>= 1.16) no longer ships trl.experimental.ppo.
    with pytest.raises(ValueError, match=r"(?s)cannot import trl\.experimental\.ppo.*pip install trl==1.12.0"):
        bench.check_trl_python(sys.executable)


def test_trl_script_never_imports_toolkit():
    """It runs with TRL 1.12's venv, where toolkit (which needs TRL >= 1.16) is not installed."""
    tree = ast.parse(Path(bench.__file__).with_name("trl_ppo.py").read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "." for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0]
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level > 0]
    assert not [name for name in imported if name.split(".")[0] == "toolkit"]


@pytest.mark.slow
def test_gpt2_small_rows_compare_allocator_settings_and_lora_with_full_memory():
    results = bench_ppo(PPOBenchArguments(trials=1, steps=1, gpt2_small_steps=1, threads=1))
    rows = results["gpt2_small"]["rows"]
    assert [(row["policy"], row["value"], row["reuse_freed_memory"]) for row in rows] == [
        ("full", "value model", False),
        ("full", "value model", True),
        ("full", "value head", True),
        ("LoRA r=8", "value head", True),
    ]
    assert all(row["episodes_per_s"] > 0 for row in rows)
    phases = rows[0]["phase_seconds"]
    names = ("generation", "policy_and_value", "reference", "reward", "update")
    assert set(phases) == {f"time/{name}" for name in names}
    assert 0 < sum(phases.values()) <= sum(rows[0]["step_seconds"])
    # LoRA drops the reference copy, the policy's gradients and its AdamW state: well under the full policy's peak.
    assert results["gpt2_small"]["ratio_lora_vs_full_peak_memory"] < 0.8
    printed = bench.format_ppo_results(results)
    assert "ours with / without reuse_freed_memory" in printed and "update" in printed
