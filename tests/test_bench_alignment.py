"""`toolkit bench alignment`: PPO, GRPO, RLOO and DPO on the same models, prompts and response length, each run in a
fresh process, reported as rates and peak memory with each method's speed over PPO's."""

import json

import pytest

from toolkit import bench
from toolkit.bench.alignment import AlignmentBenchArguments, bench_alignment


def test_every_method_runs_on_the_tiny_config_and_is_reported(tmp_path, capsys):
    output = tmp_path / "alignment.json"
    argv = ["alignment", "--trials", "1", "--steps", "1", "--skip_gpt2_small", "true", "--output", str(output)]
    assert bench.main(argv) == 0
    rows = json.loads(output.read_text())["tiny"]["rows"]
    assert list(rows) == ["ppo (value model)", "ppo (value head)", "grpo", "rloo", "dpo"]
    for method, row in rows.items():
        assert row["per_second"] > 0 and row["peak_memory_mib"] > 0, method
        assert len(row["step_seconds"]) == 1 and len(row["step_seconds"][0]) == 1, method  # warm-up left out
    assert rows["ppo (value model)"]["speed_vs_ppo"] == 1.0
    printed = capsys.readouterr().out
    assert "| grpo |" in printed and "x PPO (value model)" in printed


def test_a_group_size_that_does_not_divide_the_batch_is_refused():
    with pytest.raises(ValueError, match="--num_generations 3 must divide --batch_size 8"):
        bench_alignment(AlignmentBenchArguments(num_generations=3))
