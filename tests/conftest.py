import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TOOLKIT_SHARED_DATA", REPO.parent / "shared" / "data"))

# Laid over transformers' own test package by tests/test_transformers_common.py; not tests of this suite.
collect_ignore_glob = ["transformers_common/*"]

# Tiny models run faster on one thread than on two, and pytest-xdist runs one worker per core.
torch.set_num_threads(1)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (Tiny Shakespeare, GSM8K, WikiText-2, GPT-2 BPE, MT, preferences); skip cleanly without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (set TOOLKIT_SHARED_DATA to its location)")
    return SHARED_DATA


@pytest.fixture
def python_without_toolkit(tmp_path):
    """argv prefix for a Python subprocess that cannot import `toolkit` (checks exported remote code)."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'toolkit' or name.startswith('toolkit.'):\n"
        "            raise ImportError('toolkit is blocked in this subprocess')\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(blocker), "HF_HUB_OFFLINE": "1"}
    return [sys.executable], env
