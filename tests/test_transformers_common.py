"""transformers' own common model and config tests pass for our GPT wherever they pass for GPT-2.

The test files come from the installed transformers version's source distribution (`pip download --no-binary`, from
the package registry; or the archive named by TOOLKIT_TRANSFORMERS_SDIST). `tests/transformers_common/overlay/` is laid
over the sdist's `tests/` package: the harness that runs both families under one tester (`test_gpt_family.py`), the
generation tests written out (`generation/test_utils.py`; the sdist lacks them) and stubs for two helper modules the
sdist lacks. The comparison runs in a subprocess from a temporary folder.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import transformers

OVERLAY = Path(__file__).parent / "transformers_common" / "overlay"
REQUIRED = ("tests/test_modeling_common.py", "tests/test_configuration_common.py")

# Tests that pass for GPT-2 and are meant not to pass for our GPT, with the reason.
DELIBERATE_EXCEPTIONS: dict[str, str] = {}


def source_distribution(download_dir: Path) -> Path:
    given = os.environ.get("TOOLKIT_TRANSFORMERS_SDIST")
    if given:
        return Path(given)
    version = transformers.__version__
    download_dir.mkdir(parents=True, exist_ok=True)
    archive = download_dir / f"transformers-{version}.tar.gz"
    if not archive.exists():
        command = [sys.executable, "-m", "pip", "download", f"transformers=={version}", "--no-binary", ":all:"]
        subprocess.run([*command, "--no-deps", "-q", "-d", str(download_dir)], check=True, timeout=600)
    return archive


def build_harness(archive: Path, root: Path) -> Path:
    """The sdist's tests/ package with our harness, generation tests and stubs in place; returns the test file."""
    with tarfile.open(archive) as tar:
        top = tar.getnames()[0].split("/")[0]
        members = [m for m in tar.getmembers() if m.name.startswith(f"{top}/tests/") and m.isfile()]
        tar.extractall(root, members=members, filter="data")
    tests = root / top / "tests"
    missing = [name for name in REQUIRED if not (root / top / name).is_file()]
    assert not missing, f"{archive} lacks {missing}; point TOOLKIT_TRANSFORMERS_SDIST at a transformers sdist"
    shutil.copytree(OVERLAY, tests, dirs_exist_ok=True)
    (tests / "__init__.py").touch()
    return tests / "test_gpt_family.py"


def outcomes(report: Path) -> dict[str, dict[str, str]]:
    """{test case class: {test name: passed | failed | skipped}} from a JUnit XML report."""
    results: dict[str, dict[str, str]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        tags = {child.tag for child in case}
        outcome = "failed" if tags & {"failure", "error"} else "skipped" if "skipped" in tags else "passed"
        results.setdefault(case.get("classname").rsplit(".", 1)[-1], {})[case.get("name")] = outcome
    return results


@pytest.mark.slow
def test_every_common_test_passing_for_gpt2_passes_for_our_gpt(tmp_path):
    archive = source_distribution(tmp_path / "sdist")
    test_file = build_harness(archive, tmp_path / "harness")
    report = tmp_path / "report.xml"
    # Every warning recorded every time: tests that expect a deprecation warning must not depend on test order.
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(test_file),
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "-W",
        "always",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    run = subprocess.run(
        [*command, "-n", "2", f"--junitxml={report}"],
        cwd=test_file.parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=3000,
    )
    assert report.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    results = outcomes(report)
    gpt2, ours = results["GPT2CommonTest"], results["ToolkitGPTCommonTest"]
    gpt2_passed = {name for name, outcome in gpt2.items() if outcome == "passed"}
    ours_passed = {name for name, outcome in ours.items() if outcome == "passed"}
    print(f"GPT-2: {len(gpt2_passed)} of {len(gpt2)} passed; our GPT: {len(ours_passed)} of {len(ours)} passed")
    assert len(gpt2_passed) > 100, run.stdout[-3000:]
    regressions = sorted(gpt2_passed - ours_passed - set(DELIBERATE_EXCEPTIONS))
    assert not regressions, f"pass for GPT-2 but not for our GPT: {regressions}\n{run.stdout[-6000:]}"
