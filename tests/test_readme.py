"""The documentation holds together: the README links every docs/ page, and the Python API example in
docs/api.md runs as written."""

import re
import subprocess
import sys

from recipes_loader import REPO

DOCS = REPO / "docs"


def test_the_readme_links_every_docs_page():
    pages = sorted(page.name for page in DOCS.glob("*.md") if page.name != "README.md")
    assert pages, "docs/ holds the reference"
    readme = REPO.joinpath("README.md").read_text()
    index = DOCS.joinpath("README.md").read_text()
    for page in pages:
        assert f"](docs/{page})" in readme, f"README.md does not link docs/{page}"
        assert f"]({page})" in index, f"docs/README.md does not list {page}"


def test_python_api_example_runs(tmp_path):
    section = DOCS.joinpath("api.md").read_text().split("## Worked example", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(example)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "validation perplexity" in result.stdout
    assert "trainable params: 2,048 || all params:" in result.stdout  # r=4 on q/v of 2 layers, width 64
    assert (tmp_path / "outputs/api-example/model.safetensors").exists()  # train_and_save saved the model


def test_every_test_the_docs_cite_exists():
    """The reliability page proves each guarantee by a test's name: a renamed or deleted test must not leave it."""
    pages = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
    cited = {match for page in pages for match in re.findall(r"`(tests/\w+\.py)(?:::(\w+))?", page.read_text())}
    assert len(cited) > 30
    for path, name in sorted(cited):
        assert (REPO / path).is_file(), path
        assert not name or f"def {name}(" in (REPO / path).read_text(), f"{path}::{name}"
