"""`toolkit bench generate`: ours against GPT2LMHeadModel with the same weights, greedy, tokens checked equal."""

import json

from toolkit import bench


def test_tiny_rows_run_and_report_both_models(tmp_path, capsys):
    output = tmp_path / "generate.json"
    argv = ["generate", "--trials", "1", "--new_tokens", "4", "--batch_sizes", "1", "3", "--skip_gpt2_small", "true"]
    assert bench.main([*argv, "--output", str(output)]) == 0
    rows = json.loads(output.read_text())["generation"]
    assert [row["shape"] for row in rows] == ["4L 4H 128C, batch 1 x (16 + 4)", "4L 4H 128C, batch 3 x (16 + 4)"]
    assert all(row["ours_tokens_per_s"] > 0 and row["gpt2_tokens_per_s"] > 0 for row in rows)
    assert "identical tokens checked" in capsys.readouterr().out
