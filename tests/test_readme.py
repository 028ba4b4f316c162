"""The README's Python API example runs as written."""

import re
import subprocess
import sys

from recipes_loader import REPO


def test_python_api_example_runs(tmp_path):
    section = REPO.joinpath("README.md").read_text().split("## Python API", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(example)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "validation perplexity" in result.stdout
    assert "trainable params: 2,048 || all params:" in result.stdout  # r=4 on q/v of 2 layers, width 64
    assert (tmp_path / "outputs/api-example/metrics.json").exists()
