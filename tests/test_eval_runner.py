"""The benchmark runner (`toolkit eval`, recipes/eval.py): its numbers equal the `toolkit.evaluation` functions', they
do not depend on how the work is sharded over processes, the report files, and errors on bad input."""

import json
import math
import os
import signal
import string
import subprocess
import sys
import time

import pytest
import torch
from summaries import checked_summary
from test_distributed import environment, process_ids
from transformers import AutoModelForCausalLM

from recipes_loader import REPO, load_recipe
from toolkit import GPTConfig, GPTForCausalLM, evaluate_models
from toolkit.adapters import apply_lora
from toolkit.cli import main as toolkit_main
from toolkit.evaluation import (
    evaluate_gsm8k,
    generate_and_score_bleu,
    perplexity_of_file,
    perplexity_of_texts,
)
from toolkit.evaluation.perplexity import perplexity_from_records, window_records
from toolkit.evaluation.significance import mcnemar_exact
from toolkit.evaluation.task import Shard, batch_share, generation_records, process_share
from toolkit.generation import generate_greedy
from toolkit.loading import load_causal_lm, load_tokenizer
from toolkit.pipelines.eval import EvalArguments
from toolkit.runs import read_run
from toolkit.tasks.arithmetic import as_prompt_completion, make_arithmetic_dataset
from toolkit.tokenization import build_char_tokenizer

TINY_CONFIG = str(REPO / "recipes/configs/eval/tiny_cpu.yaml")
PROBLEMS = make_arithmetic_dataset("test", 8, (1, 2), seed=0).map(as_prompt_completion)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A random tiny GPT with a char tokenizer, and a LoRA adapter folder on it (no tokenizer of its own).

    Weights drawn wider than usual (std 0.3) make the outputs depend on the prompt, so BLEU and chrF are not 0."""
    folder = tmp_path_factory.mktemp("models")
    tokenizer = build_char_tokenizer([*PROBLEMS["text"], string.printable])
    torch.manual_seed(0)
    config = GPTConfig.from_preset(
        "tiny",
        vocab_size=len(tokenizer),
        max_position_embeddings=128,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=0.3,
    )
    GPTForCausalLM(config).save_pretrained(folder / "base")
    tokenizer.save_pretrained(folder / "base")
    adapted = apply_lora(AutoModelForCausalLM.from_pretrained(folder / "base"), r=4)
    for name, parameter in adapted.named_parameters():
        if "lora_B" in name:  # B starts at zero: make the adapter change the outputs
            torch.nn.init.normal_(parameter, std=0.5)
    adapted.save_pretrained(folder / "lora")
    return {"base": str(folder / "base"), "lora": str(folder / "lora")}


def test_runner_numbers_equal_the_evaluation_functions(models, tmp_path):
    texts_file = tmp_path / "texts.jsonl"
    texts_file.write_text("".join(json.dumps({"text": text}) + "\n" for text in PROBLEMS["text"][:5]))
    args = EvalArguments(
        models=[models["base"], models["lora"]],
        tasks=["perplexity", "gsm8k", "bleu"],
        limit=4,
        batch_size=3,
        output_dir=str(tmp_path / "eval"),
        perplexity_data=str(texts_file),
        num_fewshot=2,
        gsm8k_max_new_tokens=12,
        bleu_max_new_tokens=12,
        synthetic_size=8,
        synthetic_fewshot_size=10,
    )
    report = evaluate_models(args)
    saved = json.loads((tmp_path / "eval/results.json").read_text())
    assert saved["results"] == report["results"]
    assert [(row["model"], row["task"]) for row in saved["results"]] == [
        (model, task) for model in ("base", "lora") for task in ("perplexity", "gsm8k", "bleu")
    ]
    rows = {(row["model"], row["task"]): row for row in saved["results"]}
    assert rows["lora", "bleu"]["adapter"] and not rows["base", "bleu"]["adapter"]

    test = make_arithmetic_dataset("test", 8, (1, 2), seed=0)
    train = make_arithmetic_dataset("train", 10, (1, 2), seed=0)
    for name, path in models.items():
        model, tokenizer = load_causal_lm(path), load_tokenizer(path)
        perplexity = perplexity_of_texts(model, tokenizer, PROBLEMS["text"][:4], batch_size=3)
        assert rows[name, "perplexity"]["metrics"] == {
            k: v for k, v in perplexity.to_dict().items() if k != "protocol"
        }
        assert rows[name, "perplexity"]["protocol"] == perplexity.protocol
        assert rows[name, "perplexity"]["num_examples"] == 4

        gsm8k = evaluate_gsm8k(
            model, tokenizer, test, train, num_fewshot=2, limit=4, batch_size=3, max_new_tokens=12, show_progress=False
        )
        assert rows[name, "gsm8k"]["metrics"] == {k: v for k, v in gsm8k.to_dict().items() if k != "protocol"}
        assert rows[name, "gsm8k"]["protocol"] == gsm8k.protocol
        records = [json.loads(line) for line in (tmp_path / f"eval/{name}/gsm8k.jsonl").read_text().splitlines()]
        assert records == gsm8k.records

        prompts, references = PROBLEMS["prompt"][:4], PROBLEMS["answer"][:4]
        bleu, hypotheses = generate_and_score_bleu(
            model, tokenizer, prompts, references, max_new_tokens=12, batch_size=3, stop_strings=("\n\n", "Question:")
        )
        assert rows[name, "bleu"]["metrics"] == bleu.to_dict()
        segments = [json.loads(line) for line in (tmp_path / f"eval/{name}/bleu.jsonl").read_text().splitlines()]
        assert [segment["hypothesis"] for segment in segments] == hypotheses

    # The adapter changes the model, so the two rows differ; the table shows both with every headline metric.
    assert rows["base", "perplexity"]["metrics"]["loss"] != rows["lora", "perplexity"]["metrics"]["loss"]
    table = (tmp_path / "eval/results.md").read_text()
    header, _, base_row, lora_row = table.splitlines()[:4]
    assert header.count("|") == 9 and "perplexity: word_perplexity ↓" in header and "bleu: chrf ↑" in header
    assert base_row.startswith("| base | ") and lora_row.startswith("| lora | ")
    shown = float(base_row.split(" | ")[1].replace(",", ""))
    assert shown == pytest.approx(rows["base", "perplexity"]["metrics"]["perplexity"], rel=1e-3)
    assert rows["base", "bleu"]["metrics"]["chrf"] > 0
    assert "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp" in table
    assert (tmp_path / "eval/results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    documents = (tmp_path / "eval/base/perplexity.jsonl").read_text().splitlines()
    assert (
        sum(json.loads(line)["num_tokens"] for line in documents)
        == rows["base", "perplexity"]["metrics"]["num_tokens"]
    )


def test_a_plain_text_file_scores_as_perplexity_of_file(models, tmp_path):
    """A WikiText-style `.raw` file is one document, read exactly, and split by windows over the processes."""
    raw = tmp_path / "wiki.test.raw"
    raw.write_text(" = Heading = \n" + "\n".join(PROBLEMS["text"]) + "\n \n")
    args = dict(perplexity_data=str(raw), context_length=32, stride=24, batch_size=4)
    report = run_with([models["base"]], tmp_path, limit=None, **args)
    model, tokenizer = load_causal_lm(models["base"]), load_tokenizer(models["base"])
    expected = perplexity_of_file(model, tokenizer, raw, context_length=32, stride=24, batch_size=4)
    assert report["results"][0]["metrics"] == {k: v for k, v in expected.to_dict().items() if k != "protocol"}
    assert expected.num_documents == 1


def test_shares_are_contiguous_disjoint_and_whole_batches():
    assert [process_share(10, rank, 3) for rank in range(3)] == [range(0, 4), range(4, 7), range(7, 10)]
    assert [process_share(2, rank, 3) for rank in range(3)] == [range(0, 1), range(1, 2), range(2, 2)]
    # 10 items in batches of 4 are 3 batches: [0, 4), [4, 8), [8, 10); two processes take 2 and 1 of them.
    assert [batch_share(10, 4, rank, 2) for rank in range(2)] == [range(0, 8), range(8, 10)]
    assert [batch_share(10, 4, rank, 4) for rank in range(4)] == [
        range(0, 4),
        range(4, 8),
        range(8, 10),
        range(10, 10),
    ]
    for num_items in range(12):
        for num_processes in range(1, 5):
            shares = [batch_share(num_items, 3, rank, num_processes) for rank in range(num_processes)]
            assert [i for share in shares for i in share] == list(range(num_items))


@pytest.mark.parametrize("num_processes", [1, 2, 3, 5])
def test_gathered_shards_give_the_single_process_numbers_exactly(models, num_processes):
    """What every process computes, concatenated in process order (what `gather_object` returns), scores to the
    same numbers, bit for bit, as one process: windows of one long document are split across processes too."""
    model, tokenizer = load_causal_lm(models["lora"]), load_tokenizer(models["lora"])
    texts = ["\n\n".join(PROBLEMS["text"]), "", *PROBLEMS["text"][:3]]  # one long document, an empty one, short ones
    window = dict(context_length=32, stride=16, add_start_token=True)
    shards = [
        window_records(model, tokenizer, texts, Shard(rank, num_processes, batch_size=4), **window)
        for rank in range(num_processes)
    ]
    if num_processes > 1:
        assert {record["document"] for record in shards[0]} & {record["document"] for record in shards[1]} == {0}
    gathered, per_document = perplexity_from_records(texts, [r for shard in shards for r in shard], **window)
    expected = perplexity_of_texts(model, tokenizer, texts, context_length=32, stride=16, batch_size=4)
    assert gathered == expected  # every field, the per-document log-likelihoods included
    assert [row["num_tokens"] for row in per_document] == [len(text) for text in texts if text]

    prompts = PROBLEMS["prompt"][:5]
    outputs = [
        record["output"]
        for rank in range(num_processes)
        for record in generation_records(
            model,
            tokenizer,
            prompts,
            Shard(rank, num_processes, batch_size=2),
            max_new_tokens=6,
            stop_strings=["\n\n"],
        )
    ]
    assert outputs == generate_greedy(model, tokenizer, prompts, max_new_tokens=6, batch_size=2, stop_strings=["\n\n"])


def test_a_gap_in_the_gathered_records_is_an_error(models):
    model, tokenizer = load_causal_lm(models["base"]), load_tokenizer(models["base"])
    window = dict(context_length=32, stride=32, add_start_token=True)
    records = window_records(model, tokenizer, PROBLEMS["text"][:2], Shard(batch_size=2), **window)
    with pytest.raises(RuntimeError, match="do not cover every window exactly once"):
        perplexity_from_records(PROBLEMS["text"][:2], records[1:], **window)


def test_recipe_runs_the_tiny_cpu_config(models, tmp_path):
    overrides = ["--models", models["base"], models["lora"], "--output_dir", str(tmp_path / "eval"), "--limit", "2"]
    overrides += ["--gsm8k_max_new_tokens", "8", "--bleu_max_new_tokens", "8"]
    report = load_recipe("eval").main(["--config", TINY_CONFIG, *overrides])
    assert [(row["model"], row["task"], row["num_examples"]) for row in report["results"]] == [
        (model, task, 2) for model in ("base", "lora") for task in ("perplexity", "gsm8k", "bleu")
    ]
    for name in ("results.json", "results.md", "results.png", "base/gsm8k.jsonl", "lora/bleu.jsonl"):
        assert (tmp_path / "eval" / name).stat().st_size > 0, name
    summary = checked_summary(tmp_path / "eval", "eval")
    assert summary["units"] == 2 * 3 * 2 and summary["headline"]["lora/gsm8k/strict_match"] in (0.0, 0.5, 1.0)


def test_toolkit_eval_command(models, tmp_path, capsys):
    argv = ["eval", "--models", models["base"], "--tasks", "perplexity", "--limit", "1", "--output_dir", str(tmp_path)]
    assert toolkit_main(argv) == 0
    assert "| base | " in capsys.readouterr().err  # the results table, logged by `toolkit eval`
    assert json.loads((tmp_path / "results.json").read_text())["results"][0]["metrics"]["num_documents"] == 1


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        toolkit_main(["eval", "--help"])
    assert exit_info.value.code == 0
    assert "--bleu_reference_files" in capsys.readouterr().out


def run_with(model_paths: list[str], tmp_path, **overrides) -> dict:
    settings = dict(models=model_paths, output_dir=str(tmp_path / "eval"), limit=1, gsm8k_max_new_tokens=4)
    return evaluate_models(EvalArguments(**{**settings, **overrides}))


def test_unknown_task(models, tmp_path):
    with pytest.raises(ValueError, match=r"Unknown task\(s\) \['mmlu'\]: choose among perplexity, gsm8k, bleu"):
        run_with([models["base"]], tmp_path, tasks=["perplexity", "mmlu"])


def test_missing_model_path(models, tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ValueError, match="Model path .*no-such-model' does not exist"):
        run_with([models["base"], missing], tmp_path)


def test_model_without_tokenizer_says_how_to_fix_it(tmp_path):
    bare = tmp_path / "bare"
    GPTForCausalLM(GPTConfig.from_preset("tiny")).save_pretrained(bare)
    with pytest.raises(ValueError, match=r"tokenizer.save_pretrained\(folder\).*pass --tokenizer"):
        run_with([str(bare)], tmp_path)


def test_model_without_tokenizer_runs_with_an_explicit_one(models, tmp_path):
    bare = tmp_path / "bare"
    AutoModelForCausalLM.from_pretrained(models["base"]).save_pretrained(bare)
    report = run_with([str(bare)], tmp_path, tokenizer=models["base"])
    assert report["results"][0]["metrics"]["num_documents"] == 1


def test_empty_data_files(models, tmp_path):
    empty_text = tmp_path / "empty.txt"
    empty_text.write_text("")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        run_with([models["base"]], tmp_path, perplexity_data=str(empty_text))
    empty_jsonl = tmp_path / "empty.jsonl"
    empty_jsonl.write_text("\n")
    with pytest.raises(ValueError, match="empty.jsonl holds no rows"):
        run_with([models["base"]], tmp_path, tasks=["gsm8k"], gsm8k_data=str(empty_jsonl))
    blank_rows = tmp_path / "blank.jsonl"
    blank_rows.write_text('{"text": ""}\n{"text": ""}\n')
    with pytest.raises(ValueError, match="holds no text in column 'text'"):
        run_with([models["base"]], tmp_path, perplexity_data=str(blank_rows))


def test_model_names_must_match_models(models, tmp_path):
    with pytest.raises(ValueError, match="1 model_names for 2 models"):
        run_with([models["base"], models["lora"]], tmp_path, model_names=["only-one"])


@pytest.mark.slow
def test_two_processes_give_the_numbers_of_one(models, tmp_path):
    """Real `accelerate launch` runs: 2 processes over gloo on CPU against 1 process, same results.json numbers."""
    arguments = [str(REPO / "recipes/eval.py"), "--config", TINY_CONFIG, "--models", models["base"], models["lora"]]
    arguments += ["--limit", "6", "--batch_size", "2", "--gsm8k_max_new_tokens", "8", "--bleu_max_new_tokens", "8"]
    launch = [sys.executable, "-m", "accelerate.commands.launch"]
    configs = {1: "cpu.yaml", 2: "multi_gpu.yaml"}
    results = {}
    for num_processes, config in configs.items():
        output_dir = tmp_path / f"processes-{num_processes}"
        command = [*launch, "--config_file", str(REPO / "accelerate_configs" / config)]
        command += ["--num_processes", str(num_processes), *arguments, "--output_dir", str(output_dir)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        finished = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        assert finished.returncode == 0, finished.stderr[-3000:]
        report = json.loads((output_dir / "results.json").read_text())
        assert report["num_processes"] == num_processes
        results[num_processes] = report["results"]
        for name in ("base", "lora"):
            assert len((output_dir / name / "gsm8k.jsonl").read_text().splitlines()) == 6
    assert len(results[2]) == 6
    assert [row["metrics"] for row in results[2]] == [row["metrics"] for row in results[1]]
    assert [row["protocol"] for row in results[2]] == [row["protocol"] for row in results[1]]


def test_sigterm_stops_an_evaluation_between_batches(models, tmp_path):
    """A long evaluation gives way to SIGTERM at the next batch (instead of finishing first) and exits 143."""
    text = tmp_path / "long.txt"
    text.write_text("\n".join(PROBLEMS["text"]) * 200)  # tens of thousands of one-at-a-time windows
    output_dir = tmp_path / "eval"
    command = [sys.executable, str(REPO / "recipes/eval.py"), "--models", models["base"], "--tasks", "perplexity"]
    command += ["--perplexity_data", str(text), "--context_length", "16", "--batch_size", "1", "--use_cpu", "true"]
    output = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # the stop is logged to stderr
    process = subprocess.Popen([*command, "--output_dir", str(output_dir)], **output)
    deadline = time.time() + 120
    while not (output_dir / "run.json").is_file():
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.2)
    time.sleep(2)  # the model is loaded and scoring
    stopped = time.time()
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, out[-2000:]
    assert time.time() - stopped < 20
    assert "Stopped by SIGTERM during evaluation" in out
    assert read_run(output_dir).status == "stopped" and not (output_dir / "results.json").exists()


@pytest.mark.slow
def test_sigterm_to_one_rank_of_a_two_process_evaluation_is_a_stop(models, tmp_path):
    """Rank 0 died on gloo's "Connection closed by peer" once rank 1 had stopped, the run was recorded failed, and the
    launcher exited 1."""
    text = tmp_path / "long.txt"
    text.write_text("\n".join(PROBLEMS["text"]) * 200)
    output_dir = tmp_path / "eval"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file"]
    command += [str(REPO / "accelerate_configs/multi_gpu.yaml"), "--num_processes", "2", str(REPO / "recipes/eval.py")]
    command += ["--models", models["base"], "--tasks", "perplexity", "--perplexity_data", str(text)]
    command += ["--context_length", "16", "--batch_size", "1", "--use_cpu", "true", "--output_dir", str(output_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.time() + 120
    while not (output_dir / "run.json").is_file():
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.2)
    ranks = {environment(pid).get("RANK"): pid for pid in process_ids(str(output_dir))}
    while not all(catches_sigterm(ranks.get(rank, 0)) for rank in ("0", "1")):  # both are evaluating
        assert time.time() < deadline and process.poll() is None
        ranks = {environment(pid).get("RANK"): pid for pid in process_ids(str(output_dir))}
        time.sleep(0.2)
    os.kill(ranks["1"], signal.SIGTERM)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert read_run(output_dir).status == "stopped" and not (output_dir / "results.json").exists(), out[-3000:]


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a SIGTERM handler installed (the stop handler, while a job's work runs)."""
    try:
        status = dict(
            line.split(":\t", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":\t" in line
        )
    except OSError:
        return False
    return bool(int(status["SigCgt"], 16) >> (signal.SIGTERM - 1) & 1)


def test_mcnemar_exact_against_hand_computed_cases():
    assert mcnemar_exact([True, False], [True, False]) == {"gained": 0, "lost": 0, "p_value": 1.0}
    assert mcnemar_exact([False] * 5, [True] * 5)["p_value"] == pytest.approx(2 / 2**5)  # 5 gained, none lost
    # 22 gained, 8 lost: 2 * sum_{k<=8} C(30, k) / 2^30
    test = mcnemar_exact([False] * 22 + [True] * 8 + [True] * 50, [True] * 22 + [False] * 8 + [True] * 50)
    assert (test["gained"], test["lost"]) == (22, 8)
    assert test["p_value"] == pytest.approx(2 * sum(math.comb(30, k) for k in range(9)) / 2**30)
    assert test["p_value"] == pytest.approx(0.0161248, abs=1e-7)
    assert mcnemar_exact([True] * 3 + [False] * 3, [False] * 3 + [True] * 3)["p_value"] == 1.0  # capped
    with pytest.raises(ValueError, match="pairs the same examples: 2 baseline outcomes, 1 candidate"):
        mcnemar_exact([True, True], [True])


def test_every_model_is_compared_with_the_baseline_problem_by_problem(models, tmp_path):
    arguments = ["--models", models["base"], models["lora"], "--tasks", "gsm8k", "--limit", "6"]
    arguments += ["--gsm8k_max_new_tokens", "8", "--baseline", "base", "--output_dir", str(tmp_path)]
    report = load_recipe("eval").main(["--config", TINY_CONFIG, *arguments])
    base, lora = (row["metrics"] for row in report["results"])
    assert "strict_match_p_value" not in base
    lines = {name: (tmp_path / name / "gsm8k.jsonl").read_text().splitlines() for name in ("base", "lora")}
    outcomes = {name: [json.loads(line)["strict_correct"] for line in rows] for name, rows in lines.items()}
    expected = mcnemar_exact(outcomes["base"], outcomes["lora"])
    assert {key: lora[f"strict_match_{key}"] for key in expected} == expected
    assert "Against base on the same examples" in (tmp_path / "results.md").read_text()
    with pytest.raises(ValueError, match="--baseline 'sft' is none of the models' names"):
        load_recipe("eval").main(["--config", TINY_CONFIG, *arguments, "--baseline", "sft"])
