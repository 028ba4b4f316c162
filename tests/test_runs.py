"""The run folder (toolkit/runs.py): the record, output-dir safety, what `latest` means."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from toolkit.runs import (
    PEAK_RSS_RESET,
    TRAINER_STATE_FILE,
    end_run,
    model_dir,
    prepare_output_dir,
    read_run,
    resolve_checkpoint,
    rotate_checkpoints,
    run_of_model,
    start_run,
)


def checkpoint(folder, step: int, complete: bool = True):
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    save_file({"weight": torch.zeros(4)}, path / "model.safetensors")
    if complete:
        (path / TRAINER_STATE_FILE).write_text(json.dumps({"global_step": step}))
    return path


def test_the_record_says_what_the_run_is_and_how_it_ended(tmp_path):
    record = start_run(tmp_path, "ppo", method="lora", base_model="outputs/sft", datasets=["arithmetic"])
    assert read_run(tmp_path).status == "running"
    end_run(tmp_path, record, "stopped")
    saved = read_run(tmp_path)
    assert (saved.job, saved.kind, saved.status, saved.model_path) == ("ppo", "ppo", "stopped", "policy")
    assert saved.seconds >= 0 and saved.base_model == "outputs/sft"
    assert model_dir(tmp_path) == tmp_path / "policy"
    assert run_of_model(tmp_path / "policy") == (tmp_path, saved)  # the policy folder belongs to the run around it
    assert read_run(tmp_path / "policy") is None
    with pytest.raises(ValueError, match="Unknown job"):
        start_run(tmp_path, "distill")


PEAKS_OF_TWO_RUNS = """
import sys
from pathlib import Path
from toolkit.runs import end_run, read_run, start_run
root = Path(sys.argv[1])
record = start_run(root / "big", "sft")
block = b"x" * (300 * 2**20)  # 300 MiB, every page written
del block
end_run(root / "big", record, "finished")
end_run(root / "small", start_run(root / "small", "sft"), "finished")
print(read_run(root / "big").peak_memory_mib, read_run(root / "small").peak_memory_mib)
"""


@pytest.mark.skipif(not PEAK_RSS_RESET.exists(), reason="per-run peak RSS needs Linux's /proc/self/clear_refs")
def test_each_run_records_its_own_peak_memory(tmp_path):
    """Jobs run one after another in one process (the demo) each record their own peak, not the process's. In a
    fresh process: one that kept freed memory resident (PPO's allocator settings) would not grow for the block."""
    result = subprocess.run(
        [sys.executable, "-c", PEAKS_OF_TWO_RUNS, str(tmp_path)], capture_output=True, text=True, check=True
    )
    big, small = map(float, result.stdout.split())
    assert big > small + 250


OPENING_COUNTED = """
import sys, time
from dataclasses import dataclass
from pathlib import Path
from toolkit.jobs import Job, register
from toolkit.pipelines.common import execute
from toolkit.runs import JobResult, end_run, read_run, start_run

@dataclass
class Arguments:
    output_dir: str

ARGUMENTS = (Arguments,)

def prepare_data():
    block = b"x" * (300 * 2**20)  # data preparation: 300 MiB, every page written, and half a second
    time.sleep(0.5)
    del block

def run(opened, arguments):
    prepare_data()
    opened.start()
    return JobResult(metrics={})

register(Job("counted", "__main__", "a job", "a job", unit="samples"))
root = Path(sys.argv[1])
execute("counted", Arguments(str(root / "counted")))
prepare_data()
end_run(root / "uncounted", start_run(root / "uncounted", "counted"), "finished")  # counted from the record only
for name in ("counted", "uncounted"):
    record = read_run(root / name)
    print(record.seconds, record.peak_memory_mib)
"""


@pytest.mark.skipif(not PEAK_RSS_RESET.exists(), reason="per-run peak RSS needs Linux's /proc/self/clear_refs")
def test_a_run_counts_its_work_from_the_opening(tmp_path):
    """A job's wall time and peak memory start when it opens its run, so the data and models it builds before
    training count (the demo's stage times add up to its wall clock); without the opening's start they would not."""
    result = subprocess.run(
        [sys.executable, "-c", OPENING_COUNTED, str(tmp_path)], capture_output=True, text=True, check=True
    )
    (counted_seconds, counted_peak), (uncounted_seconds, uncounted_peak) = (
        map(float, line.split()) for line in result.stdout.split("\n")[:2]
    )
    assert counted_seconds >= 0.5 > uncounted_seconds
    assert counted_peak > uncounted_peak + 250


def test_latest_is_the_newest_complete_checkpoint(tmp_path):
    checkpoint(tmp_path, 2)
    checkpoint(tmp_path, 10)  # newest by step, not by name (checkpoint-10 < checkpoint-9 as text)
    checkpoint(tmp_path, 9)
    assert resolve_checkpoint("latest", tmp_path) == str(tmp_path / "checkpoint-10")
    checkpoint(tmp_path, 12, complete=False)  # a save cut short (a crash, SIGKILL) has no trainer_state.json
    with pytest.warns(UserWarning, match="Skipping checkpoint-12: the save never finished"):
        assert resolve_checkpoint("latest", tmp_path) == str(tmp_path / "checkpoint-10")
    with pytest.raises(ValueError, match="checkpoint-12: the save never finished"):
        resolve_checkpoint(str(tmp_path / "checkpoint-12"), tmp_path)
    (tmp_path / "checkpoint-12" / TRAINER_STATE_FILE).write_text('{"global_step": 1')  # killed while writing it
    with pytest.warns(UserWarning, match="Skipping checkpoint-12"):
        assert resolve_checkpoint("latest", tmp_path) == str(tmp_path / "checkpoint-10")


def test_latest_skips_a_checkpoint_with_a_damaged_file_and_a_path_to_one_names_it(tmp_path):
    """A truncated model.safetensors or optimizer.pt in the latest checkpoint failed deep in the resume, naming no
    file (torch even suggested weights_only=False)."""
    checkpoint(tmp_path, 2)
    torch.save({"state": torch.zeros(8)}, checkpoint(tmp_path, 4) / "optimizer.pt")
    weights = checkpoint(tmp_path, 6) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-3])  # cut short
    optimizer = checkpoint(tmp_path, 8) / "optimizer.pt"
    torch.save({"state": torch.zeros(8)}, optimizer)
    optimizer.write_bytes(optimizer.read_bytes()[:200])
    message = (
        "Skipping checkpoint-8: optimizer.pt is cut short or damaged; checkpoint-6: model.safetensors is cut short"
    )
    with pytest.warns(UserWarning, match=message):
        assert resolve_checkpoint("latest", tmp_path) == str(tmp_path / "checkpoint-4")
    with pytest.raises(ValueError, match="checkpoint-6: model.safetensors is cut short or damaged; pass an earlier"):
        resolve_checkpoint(str(tmp_path / "checkpoint-6"), tmp_path)


def test_latest_without_a_complete_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint-\\* folder"):
        resolve_checkpoint("latest", tmp_path)
    checkpoint(tmp_path, 5, complete=False)
    with pytest.raises(
        ValueError, match=r"no complete checkpoint-\* folder .*\(checkpoint-5: the save never finished"
    ):
        resolve_checkpoint("latest", tmp_path)


def test_overwrite_starts_a_fresh_run_and_latest_cannot_resume_the_old_one(tmp_path, caplog):
    end_run(tmp_path, start_run(tmp_path, "pretrain"), "stopped")
    checkpoint(tmp_path, 2000)
    with pytest.raises(ValueError, match="already holds a run .* --overwrite_output_dir true"):
        prepare_output_dir(tmp_path, overwrite=False)
    assert (tmp_path / "checkpoint-2000").is_dir()
    prepare_output_dir(tmp_path, overwrite=True)
    assert "removing the old run in" in caplog.text and "checkpoint-2000" in caplog.text
    assert not (tmp_path / "checkpoint-2000").exists()
    with pytest.raises(ValueError, match="no checkpoint-\\* folder"):
        resolve_checkpoint("latest", tmp_path)


def test_overwrite_leaves_no_file_of_the_old_run_and_follows_no_link(tmp_path):
    """A LoRA run overwritten by a full run kept its adapter files, which eval then loaded as the new model."""
    run, outside = tmp_path / "run", tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the run's")
    end_run(run, start_run(run, "sft", method="lora"), "finished")
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (run / name).write_text("{}")
    (run / "policy").mkdir()
    (run / "policy" / "model.safetensors").write_text("")
    (run / "notes.json").symlink_to(outside / "keep.txt")
    (run / "linked").symlink_to(outside)
    prepare_output_dir(run, overwrite=True)
    assert sorted(path.name for path in run.iterdir()) == []
    assert (outside / "keep.txt").read_text() == "not the run's"


def test_overwrite_refuses_to_empty_a_repository_or_the_working_directory(tmp_path, monkeypatch):
    end_run(tmp_path, start_run(tmp_path, "sft"), "finished")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="holds the working directory or a git repository"):
        prepare_output_dir(".", overwrite=True)
    assert (tmp_path / "run.json").exists()


def test_an_output_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        prepare_output_dir(tmp_path / "file", overwrite=True)


def test_resuming_another_runs_checkpoint_into_a_finished_run_is_refused_unless_overwritten(tmp_path):
    """prepare_output_dir skipped its check whenever a checkpoint was given, so a finished run was overwritten."""
    source, finished = tmp_path / "source", tmp_path / "finished"
    old = checkpoint(source, 4)
    end_run(finished, start_run(finished, "pretrain"), "finished")
    (finished / "model.safetensors").write_text("the finished run's model")
    with pytest.raises(ValueError, match=r"already holds a run .* with a run resumed from .*checkpoint-4"):
        prepare_output_dir(finished, overwrite=False, resume_from_checkpoint=str(old))
    assert (finished / "model.safetensors").read_text() == "the finished run's model"
    assert prepare_output_dir(finished, overwrite=True, resume_from_checkpoint=str(old)) == str(old)
    assert not (finished / "model.safetensors").exists()
    # A run's own checkpoint continues it in place, and an empty folder takes another run's checkpoint.
    own = checkpoint(finished, 2)
    assert prepare_output_dir(finished, overwrite=False, resume_from_checkpoint="latest") == str(own)
    assert prepare_output_dir(tmp_path / "new", overwrite=False, resume_from_checkpoint=str(old)) == str(old)


def test_rotation_keeps_the_checkpoint_just_saved_and_never_counts_a_partial_one(tmp_path):
    """Rotation by step number alone kept a newer partial checkpoint (left by a crash) and deleted every complete
    one, the one just saved included, after which `latest` found nothing."""
    for step in (2, 4):
        checkpoint(tmp_path, step)
    checkpoint(tmp_path, 8, complete=False)  # a save cut short by a crash, before the run was resumed from 4
    saved = checkpoint(tmp_path, 6)
    assert rotate_checkpoints(tmp_path, 1, saved) == [tmp_path / "checkpoint-2", tmp_path / "checkpoint-4"]
    with pytest.warns(UserWarning, match="Skipping checkpoint-8"):
        assert resolve_checkpoint("latest", tmp_path) == str(saved)
    checkpoint(tmp_path, 10)  # a newer complete one: a run resumed from an earlier checkpoint saves below it
    saved = checkpoint(tmp_path, 7)
    assert rotate_checkpoints(tmp_path, 2, saved) == [tmp_path / "checkpoint-6"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint-10", "checkpoint-7", "checkpoint-8"]
