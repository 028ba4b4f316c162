"""Every YAML under recipes/configs/ runs for real, a couple of steps each, on CPU, through its header launch command.

Stand-ins replace what needs a GPU, the Hub or hours: `openai-community/gpt2` is a 2-layer GPT-2-architecture model
built from `GPT2Config` with the real GPT-2 tokenizer (../shared/data/gpt2-tokenizer); Hub datasets are the shared
local files (hh-rlhf harmless-base pairs, WikiText-2); `data/...` paths are the shared files of the same names;
sizes shrink (steps, batch, rows, new tokens; GPT-2-size shapes trained from scratch become 2 layers of width 64);
`bf16: false` and `use_cpu: true`. Everything else is the config as shipped. The configs run in the order their
`outputs/...` paths require (a run reading `outputs/sft-tiny` after the one writing it), from one working folder,
so the GPT-2 chain SFT on hh-rlhf -> reward model -> PPO from the SFT model -> eval -> push dry run runs end to end.
"""

import json
import shlex
from pathlib import Path

import pytest
import yaml
from transformers import GPT2Config, GPT2LMHeadModel

from recipes_loader import DEMO_PLANS, REPO, load_recipe, recipe_configs
from toolkit.loading import load_gpt2_tokenizer
from toolkit.pipelines.demo import plan_stages

CONFIGS = recipe_configs()
GPT2_ID = "openai-community/gpt2"
SMALL = {
    "max_steps": 2,
    "eval_steps": 2,
    "save_steps": 2,
    "logging_steps": 1,
    "per_device_train_batch_size": 2,
    "per_device_eval_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "synthetic_train_size": 16,
    "synthetic_validation_size": 8,
    "max_train_samples": 16,
    "max_eval_samples": 8,
    "validation_fraction": 0.1,  # the stand-in corpora are small: keep a validation block or more
    "num_pairs": 32,
    "num_prompts": 8,
    "policy_sample_problems": 4,
    "policy_samples_per_problem": 2,
    "num_mini_batches": 1,
    "num_ppo_epochs": 1,
    "max_new_tokens": 8,
    "num_generations": 2,
    "max_completion_length": 8,
    "sample_steps": 1,
    "limit": 4,
    "gsm8k_max_new_tokens": 8,
    "dataset_num_proc": 1,
    "bf16": False,
    "use_cpu": True,
}
GPT2_SIZES = {"small", "medium", "large", "xl"}


def header_command(config: Path) -> tuple[str, list[str]]:
    """The recipe and the arguments after `--config <path>` in the config's first line."""
    words = shlex.split(config.read_text().splitlines()[0][2:])
    script = next(w for w in words if w.startswith("recipes/") and w.endswith(".py"))
    after = words[words.index("--config") + 2 :]
    return Path(script).stem, after


def output_paths(config: dict) -> list[str]:
    """Every `outputs/...` string a config names other than its own output_dir (what it reads)."""
    values = [v for key, v in config.items() if key != "output_dir"]
    flat = [x for v in values for x in (v if isinstance(v, list) else [v])]
    return [x for x in flat if isinstance(x, str) and x.startswith("outputs/")]


def shipped_runs() -> dict[str, tuple[str, dict, list[str]]]:
    """label -> (job, settings, arguments after the settings) of every shipped config: the recipes' configs with the
    arguments after `--config` in their first line, and the demo plans' stages as the demo runs them (with their
    plan's shared.yaml)."""
    runs = {}
    for config in CONFIGS:
        name, header_args = header_command(config)
        runs[str(config.relative_to(REPO))] = (name, yaml.safe_load(config.read_text()), header_args)
    for plan in sorted(DEMO_PLANS.iterdir()):
        for stage in plan_stages(plan):
            runs[f"{plan.relative_to(REPO)}/{stage.name}.yaml"] = (stage.job, stage.config, [])
    return runs


def run_order(runs: dict[str, tuple[str, dict, list[str]]]) -> list[str]:
    """The runs' labels sorted so that every run comes after the runs whose output folders it reads."""
    writers = {str(settings.get("output_dir", "")): label for label, (_, settings, _) in runs.items()}
    writers = {out: label for out, label in writers.items() if out.startswith("outputs/")}

    def needs(label):
        reads = output_paths(runs[label][1])
        return {w for out, w in writers.items() for r in reads if w != label and (r == out or r.startswith(out + "/"))}

    order, done = [], set()
    while len(order) < len(runs):
        ready = [label for label in runs if label not in done and needs(label) <= done]
        assert ready, f"configs read outputs that no config writes: {[r for r in runs if r not in done]}"
        order.append(ready[0])
        done.add(ready[0])
    return order


def local_config(values: dict, stand_in: Path, shared: Path, dests: set[str]) -> dict:
    substitutes = {
        GPT2_ID: str(stand_in),
        "Anthropic/hh-rlhf": str(shared / "preferences/harmless-base-test.jsonl.gz"),
        "Salesforce/wikitext": str(shared / "wikitext2/wiki.valid.raw"),
        "Skylion007/openwebtext": str(shared / "wikitext2/wiki.valid.raw"),
    }

    def local(value):
        if isinstance(value, list):
            return [local(v) for v in value]
        if isinstance(value, str) and value.startswith("data/"):
            return str(shared / value.removeprefix("data/"))
        return substitutes.get(value, value) if isinstance(value, str) else value

    if values.get("dataset") in ("Salesforce/wikitext", "Skylion007/openwebtext"):
        values.pop("dataset_config", None)
    values = {key: local(value) for key, value in values.items()}
    if values.get("preset") in GPT2_SIZES:
        values.update(num_layers=2, num_heads=2, hidden_size=64)
    values.update({key: value for key, value in SMALL.items() if key in dests})
    return values


@pytest.fixture
def gpt2_stand_in(tmp_path, shared_data) -> Path:
    folder = tmp_path / "gpt2-stand-in"
    tokenizer = load_gpt2_tokenizer(shared_data / "gpt2-tokenizer")
    eos = tokenizer.eos_token_id
    config = GPT2Config(
        n_layer=2, n_head=2, n_embd=32, n_positions=1024, vocab_size=len(tokenizer), bos_token_id=eos, eos_token_id=eos
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_every_shipped_config_runs_and_the_gpt2_chain_runs_end_to_end(
    tmp_path, monkeypatch, gpt2_stand_in, shared_data
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    failures, runs = {}, shipped_runs()
    for label in run_order(runs):
        name, settings, header_args = runs[label]
        recipe = load_recipe(name)
        dests = {action.dest for action in recipe.build_parser()._actions}
        edited = tmp_path / "configs" / Path(label).relative_to("recipes/configs")
        edited.parent.mkdir(parents=True, exist_ok=True)
        edited.write_text(yaml.safe_dump(local_config(settings, gpt2_stand_in, shared_data, dests)))
        header_args = [a.replace("../shared/data", str(shared_data)) for a in header_args]
        try:
            recipe.main(["--config", str(edited), *header_args])
        except Exception as error:  # noqa: BLE001 - every config is tried; the failures are listed together
            failures[label] = f"{type(error).__name__}: {error}"
    assert not failures, json.dumps(failures, indent=2)

    # The GPT-2 chain: PPO started from the SFT model and its reward model; evaluate both, stage the upload.
    ppo_record = json.loads(Path("outputs/ppo-gpt2-hh-rlhf/run.json").read_text())
    assert ppo_record["base_model"] == "outputs/sft-gpt2-hh-rlhf"
    eval_config = tmp_path / "configs/eval/gpt2_wikitext2_gsm8k.yaml"
    chain = ["outputs/sft-gpt2-hh-rlhf", "outputs/ppo-gpt2-hh-rlhf"]
    load_recipe("eval").main(
        ["--config", str(eval_config), "--models", *chain, "--output_dir", "outputs/eval-gpt2-chain"]
    )
    results = json.loads(Path("outputs/eval-gpt2-chain/results.json").read_text())["results"]
    assert {row["model"] for row in results} == {"sft-gpt2-hh-rlhf", "ppo-gpt2-hh-rlhf"}
    assert {row["task"] for row in results} == {"perplexity", "gsm8k"}
    load_recipe("push").main(
        [
            "outputs/ppo-gpt2-hh-rlhf",
            "--repo_id",
            "you/gpt2-hh-rlhf-ppo",
            "--dry_run",
            "true",
            "--results_path",
            "outputs/eval-gpt2-chain/results.json",
            "--results_model",
            "ppo-gpt2-hh-rlhf",
        ]
    )
    assert Path("outputs/ppo-gpt2-hh-rlhf/hub-upload/README.md").is_file()
