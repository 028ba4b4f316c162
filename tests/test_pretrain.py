"""recipes/pretrain.py end to end on tiny configs: outputs, resume, graceful stop, bad input."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from summaries import checked_summary
from transformers import AutoModelForCausalLM, AutoTokenizer

from recipes_loader import REPO, load_recipe
from toolkit.loading import load_gpt2_tokenizer
from toolkit.runs import read_run, resolve_checkpoint
from toolkit.stopping import TrainingDiverged

pretrain = load_recipe("pretrain")
TINY = str(REPO / "recipes/configs/pretrain/tiny_cpu.yaml")


def run(tmp_path, *extra, name="run"):
    output_dir = tmp_path / name
    metrics = pretrain.main(["--config", TINY, "--output_dir", str(output_dir), *extra])
    return output_dir, metrics


def test_tiny_config_trains_and_saves_everything(tmp_path):
    output_dir, metrics = run(tmp_path)
    assert metrics["global_step"] == 30
    assert metrics["eval_loss"] < metrics["train_loss"] + 1  # evaluated on held-out blocks
    assert metrics["eval_perplexity"] == pytest.approx(float(torch.tensor(metrics["eval_loss"]).exp()), rel=1e-6)
    saved = checked_summary(output_dir, "pretrain")
    assert saved["eval_loss"] == metrics["eval_loss"] == saved["headline"]["eval_loss"]
    assert saved["curves"]["eval_loss"][-1][1] == metrics["eval_loss"]
    assert (output_dir / "training_curves.png").stat().st_size > 10_000
    assert sorted(p.name for p in output_dir.glob("checkpoint-*")) == ["checkpoint-15", "checkpoint-30"]

    model = AutoModelForCausalLM.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    text = "Question: Tom has 3 apples."
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert model.config.vocab_size == len(tokenizer)
    # The loss at the end is well below a uniform guess over the vocabulary.
    assert metrics["eval_loss"] < 0.9 * torch.log(torch.tensor(float(len(tokenizer)))).item()


def test_total_flos_is_transformers_estimate_for_every_step(tmp_path):
    output_dir, _ = run(tmp_path, "--max_steps", "6", "--eval_steps", "6", "--save_steps", "6")
    state = json.loads((output_dir / "trainer_state.json").read_text())
    parameters = AutoModelForCausalLM.from_pretrained(output_dir).num_parameters(exclude_embeddings=True)
    assert state["total_flos"] == 6 * (6 * 8 * 64) * parameters  # 6 steps of 8 blocks of 64 tokens


def test_gpt2_architecture_from_scratch(tmp_path):
    output_dir, metrics = run(tmp_path, "--architecture", "gpt2", "--max_steps", "5", "--eval_steps", "5")
    assert AutoModelForCausalLM.from_pretrained(output_dir).config.model_type == "gpt2"
    assert metrics["global_step"] == 5


CORPUS = "".join(f"Line {i}: the quick brown fox jumps over the lazy dog, {i * 7} times.\n" for i in range(600))


def test_a_corpus_file_is_read_from_its_memory_mapped_token_file(tmp_path):
    from toolkit.pipelines.common import job_parser
    from toolkit.pipelines.pretrain import prepare

    data = tmp_path / "corpus.txt"
    data.write_text(CORPUS)
    argv = ["--config", TINY, "--dataset", str(data), "--output_dir", str(tmp_path / "run")]
    model_args, data_args, _, training_args = job_parser("pretrain").parse_args_and_config(argv)
    _, _, blocks = prepare(model_args, data_args, training_args)
    assert isinstance(blocks["train"].stream, np.memmap) and isinstance(blocks["validation"].stream, np.memmap)


@pytest.mark.parametrize("source", ["arithmetic", "corpus file", "random blocks"])
def test_resumed_run_matches_uninterrupted_run(tmp_path, source):
    # Logging every 3 steps does not line up with the step-10 save: the loss is logged at every save as well.
    steps = ["--max_steps", "20", "--save_steps", "10", "--eval_steps", "10", "--logging_steps", "3"]
    if source != "arithmetic":  # blocks read from the memory-mapped token file
        (tmp_path / "corpus.txt").write_text(CORPUS)
        steps += ["--dataset", str(tmp_path / "corpus.txt")]
    if source == "random blocks":  # 8 steps an epoch: the run resumes inside its second epoch and ends in its third
        steps += ["--block_sampling", "random", "--text_sample_by", "line", "--max_train_samples", "60"]
    full_dir, full = run(tmp_path, *steps, name="full")

    resumed_dir, _ = run(tmp_path, *steps, name="resumed")
    # Make the second run look stopped at step 10: only its step-10 checkpoint survives.
    for path in resumed_dir.iterdir():
        if path.name != "checkpoint-10":
            subprocess.run(["rm", "-rf", str(path)], check=True)
    _, resumed = run(tmp_path, *steps, "--resume_from_checkpoint", "latest", name="resumed")

    assert resumed["global_step"] == 20
    assert resumed["eval_loss"] == pytest.approx(full["eval_loss"], abs=1e-6)
    assert resumed["train_loss"] == pytest.approx(full["train_loss"], rel=1e-6)  # the whole run, not steps 11-20
    history = json.loads((full_dir / "trainer_state.json").read_text())["log_history"]
    assert [row["step"] for row in history if "loss" in row] == [3, 6, 9, 10, 12, 15, 18, 20]  # windows tile the run
    a = AutoModelForCausalLM.from_pretrained(full_dir).state_dict()
    b = AutoModelForCausalLM.from_pretrained(resumed_dir).state_dict()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=0, msg=key)


def test_resuming_a_finished_run_says_so_and_trains_nothing(tmp_path):
    output_dir, _ = run(tmp_path, "--max_steps", "4", "--save_steps", "4", "--eval_steps", "4")
    with pytest.raises(
        ValueError, match=r"checkpoint-4: that checkpoint ends its run \(step 4 of 4\).*--max_steps above 4"
    ):
        run(tmp_path, "--max_steps", "4", "--resume_from_checkpoint", "latest")
    assert read_run(output_dir).status == "finished"  # the record of the finished run is untouched
    _, longer = run(tmp_path, "--max_steps", "6", "--save_steps", "4", "--resume_from_checkpoint", "latest")
    assert longer["global_step"] == 6


def test_a_resumed_run_counts_its_rate_over_its_own_steps_when_its_checkpoint_rotates_away(tmp_path):
    """The summary's rate covers the steps after the resumed checkpoint, read when the run opens: by the end, the
    rotating saves (save_total_limit 1) have deleted that checkpoint."""
    output_dir, _ = run(
        tmp_path, "--max_steps", "4", "--save_steps", "4", "--eval_steps", "4", "--save_total_limit", "1"
    )
    extra = ["--save_steps", "2", "--save_total_limit", "1", "--resume_from_checkpoint", "latest"]
    _, summary = run(tmp_path, "--max_steps", "8", *extra)
    assert not (output_dir / "checkpoint-4").exists() and (output_dir / "checkpoint-8").is_dir()
    tokens_per_step = 8 * 64  # per_device_train_batch_size x block_size, one process
    assert summary["units"] == 8 * tokens_per_step
    assert summary["units_per_second"] == pytest.approx(4 * tokens_per_step / summary["train_runtime"])


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_sigterm_saves_a_checkpoint_and_the_run_resumes(tmp_path, stop):
    output_dir = tmp_path / "stopped"
    command = [sys.executable, str(REPO / "recipes/pretrain.py"), "--config", TINY, "--output_dir", str(output_dir)]
    slow = ["--max_steps", "100000", "--save_steps", "100000", "--eval_steps", "100000", "--logging_steps", "1"]
    process = subprocess.Popen([*command, *slow], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    log = ""
    while "'loss'" not in log and time.time() < deadline:  # wait until training steps are running
        log += process.stdout.readline()
    os.kill(process.pid, stop)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + stop, out[-2000:]  # 143 or 130: a scheduler sees the run did not finish
    assert f"Stopped by {stop.name} at step" in out
    assert read_run(output_dir).status == "stopped"
    checkpoints = list(output_dir.glob("checkpoint-*"))
    assert len(checkpoints) == 1
    stopped_at = int(checkpoints[0].name.split("-")[1])
    assert 0 < stopped_at < 100000
    assert not (output_dir / "metrics.json").exists()

    resume = [*command, "--max_steps", str(stopped_at + 3), "--resume_from_checkpoint", "latest"]
    finished = subprocess.run(resume, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert json.loads((output_dir / "metrics.json").read_text())["global_step"] == stopped_at + 3
    assert read_run(output_dir).status == "finished"


def test_sigterm_to_the_accelerate_launcher_stops_the_job_it_started(tmp_path):
    """`accelerate launch` with one process runs the recipe as its child and does not pass SIGTERM on; the child
    asks to get SIGTERM when its parent dies, so it still saves a checkpoint and stops instead of running on."""
    output_dir = tmp_path / "launched"
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO / "accelerate_configs/cpu.yaml"),
    ]
    recipe = [str(REPO / "recipes/pretrain.py"), "--config", TINY, "--output_dir", str(output_dir)]
    slow = ["--max_steps", "100000", "--save_steps", "100000", "--eval_steps", "100000", "--logging_steps", "1"]
    launcher = subprocess.Popen([*launch, *recipe, *slow], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, log = time.time() + 120, ""
    while "'loss'" not in log and time.time() < deadline:
        log += launcher.stdout.readline()
    launcher.send_signal(signal.SIGTERM)
    launcher.wait(timeout=60)
    deadline = time.time() + 60
    while (read_run(output_dir).status == "running") and time.time() < deadline:
        time.sleep(0.5)
    assert read_run(output_dir).status == "stopped"
    assert resolve_checkpoint("latest", output_dir).startswith(str(output_dir / "checkpoint-"))


def test_refuses_to_overwrite_another_run(tmp_path):
    output_dir, _ = run(tmp_path, "--max_steps", "2", "--eval_steps", "2")
    before = {p: p.stat().st_mtime_ns for p in output_dir.rglob("*")}
    with pytest.raises(ValueError, match="already holds a run.*--overwrite_output_dir true"):
        run(tmp_path, "--max_steps", "2")
    assert {p: p.stat().st_mtime_ns for p in output_dir.rglob("*")} == before
    run(tmp_path, "--max_steps", "2", "--eval_steps", "2", "--overwrite_output_dir", "true")


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint-\\* folder"):
        run(tmp_path, "--resume_from_checkpoint", "latest")


def test_missing_column_names_the_available_ones(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"body": "hello there"}\n{"body": "general kenobi"}\n')
    with pytest.raises(ValueError, match=r"column\(s\) \['text'\] not found; available columns: \['body'\]"):
        run(tmp_path, "--dataset", str(data))


def test_malformed_jsonl_names_file_and_line(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"text": "fine"}\n{"text": "also fine"}\n{"text": broken}\n')
    with pytest.raises(ValueError, match=rf"{data}:3: malformed JSON line"):
        run(tmp_path, "--dataset", str(data))


def test_gzip_compressed_jsonl_and_wikitext_raw_files_load_as_their_formats(tmp_path):
    from toolkit.data import load_raw

    rows = tmp_path / "rows.jsonl.gz"
    with gzip.open(rows, "wt", encoding="utf-8") as handle:
        handle.write('{"text": "first row"}\n{"text": "second row"}\n')
    assert load_raw(str(rows))["train"]["text"] == ["first row", "second row"]
    raw = tmp_path / "wiki.train.raw"  # WikiText's own file names
    raw.write_text(" = Title = \n\n Some text .\n")
    assert load_raw(str(raw), text_sample_by="document")["train"]["text"] == [" = Title = \n\n Some text .\n"]
    broken = tmp_path / "broken.jsonl.gz"
    with gzip.open(broken, "wt", encoding="utf-8") as handle:
        handle.write('{"text": "fine"}\n{"text": broken}\n')
    with pytest.raises(ValueError, match=rf"{broken}:2: malformed JSON line"):
        run(tmp_path, "--dataset", str(broken))


def test_empty_file_is_a_clear_error(tmp_path):
    data = tmp_path / "empty.txt"
    data.write_text("")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        run(tmp_path, "--dataset", str(data))


def test_too_little_text_for_one_block(tmp_path):
    data = tmp_path / "short.txt"
    data.write_text("To be, or not to be.")
    with pytest.raises(ValueError, match="fewer than one block of 64.*smaller --block_size"):
        run(tmp_path, "--dataset", str(data))


def test_block_size_over_context_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="--block_size 64 is longer than the model's context \\(32 positions\\)"):
        run(tmp_path, "--context_length", "32")


def test_unknown_cli_flag_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="no_such_option"):
        run(tmp_path, "--no_such_option", "1")


def test_unknown_yaml_key_is_rejected(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text(open(TINY).read() + "learning_rat: 0.1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        pretrain.main(["--config", str(config), "--output_dir", str(tmp_path / "out")])


PACK_AND_REPORT_MEMORY = """
import resource, sys
from toolkit.pipelines.common import job_parser
from toolkit.pipelines.pretrain import prepare
args = job_parser("pretrain").parse_args_and_config(sys.argv[1:])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
_, _, blocks = prepare(args[0], args[1], args[3])
print(len(blocks["train"]) + len(blocks["validation"]), before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.parametrize(
    "separator, tokenizer", [(" ", "char"), ("", "char"), (" ", "bpe")], ids=["spaced", "unspaced", "spaced-bpe"]
)
def test_a_one_line_corpus_packs_in_memory_proportional_to_its_tokens(separator, tokenizer, tmp_path):
    """Ten million characters on one line (a flat token stream: 2 bytes a token, no Python lists per token), with or
    without spaces (CJK, minified JSON or DNA have none: memory grew ~460 MB per MB), and a BPE trained on it (which
    took ~90 MB per MB of a document)."""
    words = ["thou", "art", "more", "lovely", "and", "temperate", "rough", "winds", "do", "shake"]
    text = separator.join(words[(i * 7 + i // 10) % len(words)] for i in range(2_500_000))[:10_000_000]
    data = tmp_path / "one-line.txt"
    data.write_text(text)
    flags = ["--config", TINY, "--dataset", str(data), "--output_dir", str(tmp_path / "run"), "--max_steps", "1"]
    flags += ["--tokenizer", tokenizer, "--bpe_vocab_size", "300"]
    result = subprocess.run(
        [sys.executable, "-c", PACK_AND_REPORT_MEMORY, *flags], capture_output=True, text=True, check=True
    )
    blocks, before_kib, peak_kib = map(int, result.stdout.split()[-3:])
    if tokenizer == "char":
        tokens = len(text) + 1  # characters and the closing EOS; the last tenth is held out for validation
        assert blocks == int(tokens * 0.9) // 64 + (tokens - int(tokens * 0.9)) // 64
    assert (peak_kib - before_kib) / 1024 < 600, (
        f"packing {len(text):,} characters grew peak RSS by {peak_kib - before_kib} KiB"
    )
    assert ("without a space between two words" in result.stderr) == (separator == "")


def test_a_hub_token_flag_is_never_pickled_into_the_run_folder(tmp_path, monkeypatch):
    """Trainer pickles its arguments into training_args.bin in the run folder and every checkpoint."""
    token = "hf_FlagTokenForThisTest0123456789"
    monkeypatch.delenv("HF_TOKEN", raising=False)
    output_dir, _ = run(
        tmp_path, "--hub_token", token, "--max_steps", "2", "--save_steps", "1", "--eval_strategy", "no"
    )
    written = [path for path in output_dir.rglob("*") if path.is_file()]
    assert sum(path.name == "training_args.bin" for path in written) == 3  # the run's and two checkpoints'
    assert not [path for path in written if token.encode() in path.read_bytes()]
    assert os.environ["HF_TOKEN"] == token  # where huggingface_hub (and Trainer's push_to_hub) reads it


def test_a_folder_of_gpt2s_original_bpe_files_is_a_tokenizer_to_pretrain_with(tmp_path, shared_data):
    """--tokenizer <folder of OpenAI's encoder.json + vocab.bpe> failed, though load_gpt2_tokenizer reads it."""
    folder = shared_data / "gpt2-tokenizer"
    output_dir, _ = run(tmp_path, "--tokenizer", str(folder), "--max_steps", "1", "--eval_strategy", "no")
    saved, original = AutoTokenizer.from_pretrained(output_dir), load_gpt2_tokenizer(folder)
    text = "Question: what is 12 + 30?\nAnswer: 42"
    assert saved(text)["input_ids"] == original(text)["input_ids"] and len(saved) == 50257


def test_a_second_run_on_a_folder_in_use_is_refused_until_the_first_ends(tmp_path):
    """Two runs on one --output_dir both ran (neither refused), and --overwrite_output_dir cleared a running run."""
    output_dir = tmp_path / "busy"
    command = [sys.executable, str(REPO / "recipes/pretrain.py"), "--config", TINY, "--output_dir", str(output_dir)]
    slow = ["--max_steps", "100000", "--save_steps", "100000", "--eval_steps", "100000", "--logging_steps", "1"]
    first = subprocess.Popen([*command, *slow], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, log = time.time() + 120, ""
    while "'loss'" not in log and time.time() < deadline:
        log += first.stdout.readline()
    try:
        for extra in ([], ["--overwrite_output_dir", "true"], ["--resume_from_checkpoint", "latest"]):
            with pytest.raises(ValueError, match="is in use by another run that is still going; nothing was read"):
                run(tmp_path, *extra, name="busy")
        assert read_run(output_dir).status == "running" and first.poll() is None
    finally:
        first.kill()  # however the holder ends, the kernel releases its lock
        first.communicate(timeout=60)
    run(tmp_path, "--overwrite_output_dir", "true", "--max_steps", "1", "--eval_strategy", "no", name="busy")
    assert read_run(output_dir).status == "finished"


def test_a_run_whose_training_diverges_fails_naming_the_step(tmp_path):
    """--learning_rate inf (now refused) made every weight NaN and the run still finished; a finite rate that blows the
    weights up must fail the run too, at the first logged step whose gradient norm is not finite."""
    with pytest.raises(TrainingDiverged, match=r"Training diverged: the gradient norm is nan at step 3\b"):
        run(tmp_path, "--learning_rate", "1e30", "--max_steps", "6", "--logging_steps", "1", "--eval_strategy", "no")
    record = read_run(tmp_path / "run")
    assert record.status == "failed" and record.error.startswith("TrainingDiverged: Training diverged: the gradient")
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_resuming_with_another_model_shape_names_the_setting(tmp_path):
    """The optimizer state failed to load with "a parameter group that doesn't match the size of optimizer's group"."""
    run(tmp_path, "--max_steps", "4", "--save_steps", "2", "--eval_strategy", "no")
    with pytest.raises(
        ValueError, match=r"checkpoint-4 was saved from another model shape: num_hidden_layers 2 \(this"
    ):
        run(tmp_path, "--max_steps", "6", "--resume_from_checkpoint", "latest", "--num_layers", "3")
