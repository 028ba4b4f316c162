"""Bad input gets an error that names the file, row or flag and says what to do, before any work is lost."""

import gzip
import json

import pytest
from huggingface_hub import constants as hub_constants

from recipes_loader import REPO, load_recipe
from toolkit import generation
from toolkit.hub import push_folder
from toolkit.loading import load_causal_lm
from toolkit.pipelines.reward import PreferenceDataArguments, load_preference_splits
from toolkit.rlhf.reward_model import load_reward_model
from toolkit.runs import read_run, read_summary

CONFIGS = REPO / "recipes/configs"
pretrain, sft, evaluation = (load_recipe(name) for name in ("pretrain", "sft", "eval"))


def run_pretrain(tmp_path, *extra):
    return pretrain.main(
        ["--config", str(CONFIGS / "pretrain/tiny_cpu.yaml"), "--output_dir", str(tmp_path / "run"), *extra]
    )


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_file_that_is_not_utf8_names_the_file_and_the_byte(tmp_path):
    data = tmp_path / "latin1.txt"
    data.write_bytes("plain text first, then caf\u00e9 au lait".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt: not UTF-8 text at byte 26 .*iconv -f latin1"):
        run_pretrain(tmp_path, "--dataset", str(data))
    with pytest.raises(ValueError, match=r"latin1.txt: not UTF-8 text at byte 26"):
        evaluation.main(
            ["--models", "gpt2-stand-in", "--perplexity_data", str(data), "--output_dir", str(tmp_path / "e")]
        )
    data.write_bytes("ends with caf\u00e9".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt: ends inside a UTF-8 character .*iconv"):
        run_pretrain(tmp_path, "--dataset", str(data))


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"text": "fine"}, {"text": None}], r"rows.jsonl \(train\): row 1 has no 'text' \(null\)"),
        ([{"text": 5}, {"text": 6}], r"column 'text' holds .*int64.* values, not text"),
    ],
)
def test_a_text_column_without_text_names_the_row_or_the_type(tmp_path, rows, message):
    data = write_jsonl(tmp_path / "rows.jsonl", rows * 20)
    with pytest.raises(ValueError, match=message):
        run_pretrain(tmp_path, "--dataset", str(data))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--prompt_column", ""], "--prompt_column is empty"),
        (["--prompt_column", "prompt"], "--prompt_column and --completion_column go together"),
        (["--block_size", "0"], "--block_size must be at least 1 token, got 0"),
        (["--block_size", "-5"], "--block_size must be at least 1 token, got -5"),
        (["--block_stride", "0"], "--block_stride must be at least 1 token"),
        (["--max_train_samples", "0"], "--max_train_samples must be at least 1"),
    ],
)
def test_settings_that_cannot_work_name_the_flag(tmp_path, flags, message):
    with pytest.raises(ValueError, match=message):
        run_pretrain(tmp_path, *flags)
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize(
    "job, flags, message",
    [
        ("pretrain", ["--learning_rate", "inf"], r"--learning_rate inf is not a finite number"),
        ("dpo", ["--beta", "nan"], r"--beta nan is not a finite number"),
        ("ppo", ["--kl_coef", "nan"], r"--kl_coef nan is not a finite number"),
        ("grpo", ["--reward_weights", "1", "inf"], r"--reward_weights \[1.0, inf\] is not a finite number"),
        ("sft", ["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be at least 1, got 0"),
        (
            "grpo",
            ["--max_steps", "-5", "--num_train_epochs", "0"],
            "--max_steps -5 with --num_train_epochs 0.0 trains",
        ),
        ("grpo", ["--num_prompts", "0"], "--num_prompts must be at least 1"),
        ("rloo", ["--num_generations", "0"], "--num_generations must be at least 2"),
        ("ppo", ["--top_p", "0"], r"--top_p is the probability mass sampled from, in \(0, 1\]"),
        ("ppo", ["--save_steps", "0"], "--save_steps must be positive with --save_strategy steps"),
        ("pretrain", ["--text_sample_by", "bogus"], "--text_sample_by must be one of document, paragraph, line"),
        ("sft", ["--validation_fraction", "1.5"], "--validation_fraction is the share held out, strictly between"),
        ("dpo", ["--validation_fraction", "0"], "--validation_fraction is the share held out, strictly between"),
        ("reward", ["--validation_fraction", "1"], "--validation_fraction is the share held out, strictly between"),
        ("reward", ["--num_pairs", "0"], "--num_pairs 0 leaves no pairs: pass at least 1"),
    ],
)
def test_settings_that_can_only_produce_garbage_are_refused_by_flag(job, flags, message, tmp_path):
    """Each of these ran to "finished": NaN weights, 0 steps, a negative KL, or a ZeroDivisionError mid-run."""
    argv = ["--config", str(CONFIGS / job / "tiny_cpu.yaml"), "--output_dir", str(tmp_path / "run"), *flags]
    with pytest.raises(ValueError, match=message):
        load_recipe(job).main(argv)
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize("name", ["cut.jsonl.gz", "damaged.parquet"])
def test_a_compressed_or_parquet_file_cut_short_is_named(name, tmp_path):
    """EOFError and pyarrow's ArrowInvalid named no file."""
    rows = "".join(json.dumps({"text": f"row {i} " * 20}) + "\n" for i in range(2000)).encode()
    data = tmp_path / name
    data.write_bytes(gzip.compress(rows)[:3000] if name.endswith(".gz") else b"PAR1" + bytes(100))
    with pytest.raises(
        ValueError, match=rf"Could not read .*{name} \((EOFError|ArrowInvalid): .*cut short or damaged"
    ):
        run_pretrain(tmp_path, "--dataset", str(data))


def test_too_few_pairs_to_hold_some_out_and_an_empty_prompt_are_named(tmp_path):
    pairs = write_jsonl(tmp_path / "one-pair.jsonl", [{"prompt": "2+2=", "chosen": " 4", "rejected": " 5"}])
    argv = ["--config", str(CONFIGS / "dpo/tiny_cpu.yaml"), "--output_dir", str(tmp_path / "run")]
    with pytest.raises(ValueError, match=r"1 preference pair\(s\) from .*one-pair.jsonl cannot be split"):
        load_recipe("dpo").main([*argv, "--dataset", str(pairs)])
    with pytest.raises(ValueError, match="--prompt is empty: give the text to continue"):
        generation.main(["--model_name_or_path", str(tmp_path), "--prompt", ""])


def test_a_damaged_record_is_named_by_its_file(tmp_path):
    """--compare_runs read a damaged run.json or metrics.json into a JSONDecodeError or an AttributeError."""
    (tmp_path / "run.json").write_text('{"job": "sft", "stat')
    with pytest.raises(ValueError, match=r"run.json is damaged \(.*\): restore it, or leave its folder out"):
        read_run(tmp_path)
    (tmp_path / "run.json").unlink()
    (tmp_path / "metrics.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="metrics.json is damaged: it holds a JSON list, not an object"):
        read_summary(tmp_path)


def test_a_flag_prefix_is_an_error_not_another_flag(tmp_path):
    with pytest.raises((SystemExit, ValueError)):
        run_pretrain(tmp_path, "--learning_rat", "0.01")
    assert not (tmp_path / "run").exists()


def test_an_output_dir_that_cannot_be_written_fails_before_data_preparation(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        pretrain.main(["--config", str(CONFIGS / "pretrain/tiny_cpu.yaml"), "--output_dir", str(tmp_path / "a-file")])
    with pytest.raises(ValueError, match=r"a-file/run is not writable \(Not a directory\)"):
        pretrain.main(
            ["--config", str(CONFIGS / "pretrain/tiny_cpu.yaml"), "--output_dir", str(tmp_path / "a-file" / "run")]
        )


def test_a_malformed_gsm8k_line_is_named_by_file_and_line(tmp_path):
    data = tmp_path / "test.jsonl"
    data.write_text('{"question": "1 + 1?", "answer": "#### 2"}\n{"question": "broken\n')
    with pytest.raises(ValueError, match=r"test.jsonl:2: malformed JSON line"):
        evaluation.main(
            [
                "--models",
                "gpt2-stand-in",
                "--tasks",
                "gsm8k",
                "--gsm8k_data",
                str(data),
                "--output_dir",
                str(tmp_path / "e"),
            ]
        )


def test_reward_pairs_from_a_csv_file_are_read_and_checked_row_by_row(tmp_path):
    data = tmp_path / "pairs.csv"
    data.write_text("prompt,chosen,rejected\nQ1,good,bad\nQ2,fine,worse\n")
    pairs = load_preference_splits(PreferenceDataArguments(dataset=str(data), validation_fraction=0.5), seed=0)
    assert sorted([*pairs["train"]["chosen"], *pairs["validation"]["chosen"]]) == ["fine", "good"]
    data.write_text("prompt,chosen,rejected\nQ1,good,bad\nQ2,same,same\n")
    with pytest.raises(ValueError, match=r"pairs.csv 1: 'chosen' and 'rejected' are identical"):
        load_preference_splits(PreferenceDataArguments(dataset=str(data)), seed=0)


def test_an_unreachable_hub_is_one_clear_error(tmp_path, monkeypatch):
    run = tmp_path / "run"
    (run).mkdir()
    (run / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (run / "tokenizer.json").write_text("{}")
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 34)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)  # the user's setting, not this test's subject
    with pytest.raises(ValueError, match=r"Could not reach the Hub at http://127.0.0.1:9 .*Check --endpoint"):
        push_folder(run, "alice/gpt-tiny", endpoint="http://127.0.0.1:9")


def test_an_upload_under_hf_hub_offline_says_so_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 34)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match=r"HF_HUB_OFFLINE is set, so nothing can be uploaded: .*--dry_run true"):
        push_folder(tmp_path / "no-such-run", "alice/gpt-tiny", endpoint="http://127.0.0.1:9")


def test_eval_guards_its_output(tmp_path):
    with pytest.raises(ValueError, match="cannot name a folder of per-example records"):
        evaluation.main(["--models", str(CONFIGS), "--model_names", "..", "--output_dir", str(tmp_path)])
    (tmp_path / "results.json").write_text("{}")  # an earlier evaluation's results
    with pytest.raises(ValueError, match="already holds a run .*--overwrite_output_dir true"):
        evaluation.main(["--models", "gpt2-stand-in", "--output_dir", str(tmp_path)])
    assert (tmp_path / "results.json").read_text() == "{}"


def test_a_folders_own_model_code_never_runs_on_a_yes_at_a_prompt(tmp_path, monkeypatch):
    """Without --trust_remote_code true the loaders refuse a folder's code outright: transformers would ask on a
    terminal (trust_remote_code=None) and a "y" there ran the code anyway."""
    ran = tmp_path / "ran"
    (tmp_path / "configuration_planted.py").write_text(f"open({str(ran)!r}, 'w').close()\n")
    config = {"model_type": "planted", "auto_map": {"AutoConfig": "configuration_planted.PlantedConfig"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr("builtins.input", lambda *args: "y")
    monkeypatch.setattr("transformers.dynamic_module_utils.TIME_OUT_REMOTE_CODE", 15)
    for load in (load_causal_lm, load_reward_model):
        with pytest.raises(ValueError, match="custom code|trust_remote_code"):
            load(str(tmp_path))
    assert not ran.exists()
