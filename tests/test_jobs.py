"""The job contract (`toolkit.jobs`, `toolkit.pipelines.common.run_job`): one registry that every front door and
every reader of run folders takes the jobs from, and one summary head in every job's metrics.json. A job registered
here, and nowhere else, shows up everywhere."""

import json
import warnings

import dummy_job
import pytest

from toolkit.cli import main as toolkit_main
from toolkit.evaluation.comparison import comparison_table, training_summary
from toolkit.hub.card import build_model_card, detect_method, locate_run
from toolkit.hub.upload import PushArguments
from toolkit.jobs import JOBS, register
from toolkit.pipelines.common import job_parser, run_job
from toolkit.runs import SUMMARY_HEAD, read_run, read_summary


@pytest.fixture
def dummy():
    register(dummy_job.JOB)
    yield dummy_job.JOB
    del JOBS[dummy_job.JOB.name]


def test_a_registered_job_is_a_command_a_recipe_a_run_a_card_and_a_comparison_row(dummy, tmp_path, capsys):
    assert toolkit_main(["--help"]) == 0
    assert "  dummy     a job only the tests know" in capsys.readouterr().out
    assert job_parser("dummy").prog == "dummy"

    folder = tmp_path / "run"
    # What recipes/<job>.py does: parse the command line (YAML, flags), then the shared lifecycle.
    config = tmp_path / "dummy.yaml"
    config.write_text(f"output_dir: {folder}\nsteps: 5\ndataset: pairs.jsonl\n")
    summary = run_job("dummy", ["--config", str(config), "--push_repo_id", "me/dummy", "--push_dry_run", "true"])
    record = read_run(folder)
    assert (record.job, record.method, record.status, record.base_model) == ("dummy", "full", "finished", "nothing")
    assert record.datasets == ["pairs.jsonl"]  # what run.json records comes from the job's own flags
    assert read_summary(folder) == json.loads(json.dumps(summary))
    assert list(summary)[: len(SUMMARY_HEAD)] == list(SUMMARY_HEAD)
    assert (summary["unit"], summary["units"], summary["headline"]["reward_last_fifth"]) == ("episodes", 40, 0.4)

    card = (folder / "hub-upload" / "README.md").read_text()  # the push the run asked for, through the card
    assert "Trained with finetune-toolkit by the tests' dummy method." in card
    assert "| reward_last_fifth | 0.4 |" in card and "Trained on 40 episodes (16.0 a second)" in card
    run = locate_run(folder)
    assert detect_method(run) == "dummy"
    arguments = PushArguments(model_path=str(folder), repo_id="me/dummy", dry_run=True)
    assert "the tests' dummy method" in str(build_model_card(arguments, run, "dummy", None))

    row = {"name": "dummy", "score": 0.5, "gained": 1, "lost": 0, "p_value": 1.0, "kl": None}
    row["summary"] = training_summary(folder)
    table = comparison_table([row], "exact match", "sft")
    assert "| dummy | dummy (full) | 0.5000 | +1 / -0 | 1 | - | 0.000 -> 0.400 | 40 episodes | 16.0 |" in table

    assert toolkit_main(["dummy", "--output_dir", str(tmp_path / "cli")]) == 0  # `toolkit dummy`
    assert read_run(tmp_path / "cli").status == "finished"


def test_the_method_is_checked_once_with_one_message(dummy, tmp_path):
    with pytest.raises(ValueError, match="Unknown method 'lora' for dummy: pass --method full"):
        run_job("dummy", ["--output_dir", str(tmp_path), "--method", "lora"])
    assert not (tmp_path / "run.json").exists()


def test_a_failed_job_is_recorded_as_failed_and_writes_no_summary(dummy, tmp_path, monkeypatch):
    def broken(opened, *arguments):
        opened.start()
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(dummy_job, "run", broken)
    with pytest.raises(RuntimeError, match="broken on purpose"):
        run_job("dummy", ["--output_dir", str(tmp_path)])
    assert read_run(tmp_path).status == "failed"
    assert read_summary(tmp_path) == {}


def test_ppo_takes_model_name_or_path_and_its_old_name_with_a_warning():
    parser = job_parser("ppo")
    assert "--policy_name_or_path" not in parser.format_help()
    (args, *_) = parser.parse_args_and_config(["--model_name_or_path", "outputs/sft", "--use_cpu", "true"])
    assert args.model_name_or_path == "outputs/sft"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (args, *_) = parser.parse_args_and_config(["--policy_name_or_path", "outputs/old", "--use_cpu", "true"])
    assert args.model_name_or_path == "outputs/old"
    assert any("--policy_name_or_path is deprecated" in str(warning.message) for warning in caught)


def test_sft_shows_no_flags_for_a_model_built_from_scratch():
    help_text = job_parser("sft").format_help()
    for flag in (
        "--architecture",
        "--preset",
        "--num_layers",
        "--num_heads",
        "--hidden_size",
        "--context_length",
        "--model_dropout",
        "--model_bias",
        "--model_activation",
        "--bpe_vocab_size",
    ):
        assert flag not in help_text, flag
        assert flag in job_parser("pretrain").format_help(), flag


def test_a_stopped_run_is_recorded_stopped_exits_143_and_is_not_pushed(dummy, tmp_path):
    folder = tmp_path / "run"
    argv = ["--output_dir", str(folder), "--stop", "true", "--push_repo_id", "me/dummy", "--push_dry_run", "true"]
    with pytest.raises(SystemExit) as stopped:
        run_job("dummy", argv)
    assert stopped.value.code == 143
    assert read_run(folder).status == "stopped" and (folder / "model.safetensors").is_file()
    assert not (folder / "hub-upload").exists() and not (folder / "metrics.json").exists()
