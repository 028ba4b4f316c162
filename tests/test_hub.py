"""Hub upload: the staged folder (a dry run) loads like the original, the card carries the run's facts, and the
upload goes through huggingface_hub to a local stand-in for the Hub that records every request."""

import base64
import json
import logging
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import torch
from huggingface_hub import ModelCard, constants
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

from recipes_loader import REPO, load_recipe
from toolkit import GPTConfig, GPTForCausalLM
from toolkit.hub import detect_method, locate_run, push_folder
from toolkit.hub.upload import DRY_RUN_MARKER
from toolkit.plotting import plot_training_curves
from toolkit.runs import end_run, start_run
from toolkit.tokenization import build_char_tokenizer

TOKEN = "hf_FakeTokenForTheseTests0123456789"
PROMPT = "12+7=19\n3*4="
# What a training run leaves next to the model (trainer.save_state / train_and_save), kept small.
LOG_HISTORY = [
    {"step": 5, "loss": 2.7, "learning_rate": 0.001},
    {"step": 10, "loss": 2.5, "learning_rate": 0.0005},
    {"step": 10, "eval_loss": 2.4},
]
# What a dry run of that run stages: no checkpoint, no training_args.bin.
STAGED_FILES = [
    "README.md",
    "config.json",
    "configuration_gpt.py",
    "generation_config.json",
    "metrics.json",
    "model.safetensors",
    "modeling_gpt.py",
    "results.json",
    "run.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "trainer_state.json",
    "training_curves.png",
]
# The card's model-index: metric name (the task in front, when it differs) -> value.
OUR_SCORES = {
    "perplexity": 12.5,
    "perplexity word_perplexity": 30.25,
    "perplexity bits_per_byte": 1.125,
    "gsm8k strict_match": 0.25,
    "gsm8k flexible_extract": 0.5,
}


def tiny_gpt(tokenizer, seed: int = 0) -> GPTForCausalLM:
    torch.manual_seed(seed)
    shape = dict(num_hidden_layers=2, num_attention_heads=2, hidden_size=32, max_position_embeddings=64)
    return GPTForCausalLM(GPTConfig(**shape, vocab_size=len(tokenizer))).eval()


def results_json(model_path: Path) -> dict:
    """A `toolkit eval` report (toolkit/pipelines/eval.py) on this model and another one."""

    def row(label, path, task, metrics):
        return dict(
            model=label,
            model_path=str(path),
            adapter=False,
            task=task,
            data="arithmetic",
            num_examples=16,
            metrics=metrics,
            protocol=f"{task} protocol",
        )

    perplexity = {"perplexity": 12.5, "word_perplexity": 30.25, "bits_per_byte": 1.125, "num_tokens": 900}
    return {
        "arguments": {"models": [str(model_path), "outputs/other"]},
        "results": [
            row("base", model_path, "perplexity", perplexity),
            row("base", model_path, "gsm8k", {"strict_match": 0.25, "flexible_extract": 0.5, "num_examples": 16}),
            row("other", "outputs/other", "gsm8k", {"strict_match": 0.75, "flexible_extract": 0.875}),
        ],
    }


@pytest.fixture
def tokenizer():
    return build_char_tokenizer("0123456789+-*/=\n abcdefghijklmnopqrstuvwxyz", model_max_length=64)


@pytest.fixture
def gpt_run(tmp_path, tokenizer) -> Path:
    """A full fine-tuning run's output_dir: model, tokenizer, metrics, state, curves, eval results, and the files
    that must stay home (training_args.bin, a checkpoint)."""
    run = tmp_path / "sft-full"
    tiny_gpt(tokenizer).save_pretrained(run)
    tokenizer.save_pretrained(run)
    end_run(run, start_run(run, "sft", method="full", datasets=["arithmetic"]), "finished")
    (run / "metrics.json").write_text(json.dumps({"method": "full", "train_loss": 2.5, "eval_loss": 2.4}))
    state = {"global_step": 10, "max_steps": 10, "train_batch_size": 8, "log_history": LOG_HISTORY}
    (run / "trainer_state.json").write_text(json.dumps(state))
    plot_training_curves(LOG_HISTORY, run / "training_curves.png", "sft-full")
    (run / "results.json").write_text(json.dumps(results_json(run)))
    (run / "training_args.bin").write_bytes(b"pickled TrainingArguments")
    (run / "checkpoint-10").mkdir()
    (run / "checkpoint-10" / "config.json").write_text("{}")
    return run


def scores(card: ModelCard) -> dict[str, float]:
    return {result.metric_name: result.metric_value for result in card.data.eval_results}


def folder_files(folder: Path) -> dict[str, bytes]:
    """A staged folder's files, without the marker a dry run leaves beside them (it is never uploaded)."""
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.name != DRY_RUN_MARKER}


def test_dry_run_folder_reloads_without_toolkit(gpt_run, tokenizer, python_without_toolkit, tmp_path):
    result = push_folder(gpt_run, "alice/gpt-tiny", dry_run=True, datasets=["arithmetic"])
    folder = gpt_run / "hub-upload"
    assert result.dry_run_dir == folder and result.commit_url is None
    assert sorted(result.files) == sorted(folder_files(folder)) == STAGED_FILES

    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        torch.save(GPTForCausalLM.from_pretrained(gpt_run).eval()(ids).logits, tmp_path / "expected.pt")
    script = (
        "import sys, torch\n"
        "try:\n    import toolkit\nexcept ImportError:\n    pass\nelse:\n    sys.exit('toolkit importable')\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"folder = {str(folder)!r}\n"
        "model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()\n"
        "assert type(model).__module__.startswith('transformers_modules'), type(model).__module__\n"
        "tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)\n"
        f"ids = tokenizer({PROMPT!r}, return_tensors='pt').input_ids\n"
        f"assert ids.tolist() == {ids.tolist()!r}, ids\n"
        f"expected = torch.load({str(tmp_path / 'expected.pt')!r})\n"
        "with torch.no_grad():\n    assert torch.equal(model(ids).logits, expected)\n"
        "print('OK')\n"
    )
    python, env = python_without_toolkit
    run = subprocess.run([*python, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "OK"


def test_adapter_dry_run_loads_with_peft(tmp_path, tokenizer):
    base = tiny_gpt(tokenizer)
    base.save_pretrained(tmp_path / "base")
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    lora = get_peft_model(base, config)
    with torch.no_grad():  # LoRA starts as a no-op (B = 0): move B so the adapter changes the outputs
        for name, parameter in lora.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.2)
    adapter_dir = tmp_path / "sft-lora"
    lora.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    recorded_base = json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        expected = lora.eval()(ids).logits
        assert not torch.equal(expected, GPTForCausalLM.from_pretrained(tmp_path / "base").eval()(ids).logits)

    result = push_folder(adapter_dir, "alice/gpt-tiny-lora", dry_run=True, base_model="alice/gpt-tiny")
    folder = result.dry_run_dir
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md"} <= set(result.files)
    assert "config.json" not in result.files
    fresh_base = GPTForCausalLM.from_pretrained(tmp_path / "base").eval()
    reloaded = PeftModel.from_pretrained(fresh_base, folder).eval()
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, expected)

    # The staged config points at the Hub base; the run's own file (hard-linked siblings) is untouched.
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == "alice/gpt-tiny"
    assert json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == recorded_base
    card = ModelCard.load(folder / "README.md")  # PEFT's own README is replaced by ours
    assert card.data.library_name == "peft" and card.data.base_model == "alice/gpt-tiny"
    assert {"finetune-toolkit", "lora"} <= set(card.data.tags)
    assert "AutoPeftModelForCausalLM" in card.text


def test_model_card_has_the_run_facts_and_eval_results(gpt_run):
    push_folder(gpt_run, "alice/gpt-tiny", dry_run=True, base_model="alice/gpt-base", datasets=["arithmetic"])
    card = ModelCard.load(gpt_run / "hub-upload" / "README.md")
    assert card.data.base_model == "alice/gpt-base"
    assert card.data.datasets == ["arithmetic"]
    assert {"finetune-toolkit", "full"} <= set(card.data.tags)
    assert card.data.pipeline_tag == "text-generation" and card.data.library_name == "transformers"
    assert card.data.model_name == "gpt-tiny"
    assert scores(card) == OUR_SCORES  # headline metrics of this model only, not the other model's rows
    assert {(result.task_type, result.dataset_type) for result in card.data.eval_results} == {
        ("text-generation", "arithmetic")
    }
    assert {result.metric_type for result in card.data.eval_results} >= {"perplexity", "strict_match"}
    assert "| arithmetic | gsm8k strict_match | 0.25 |" in card.text
    assert "![Training curves](training_curves.png)" in card.text
    curves = (gpt_run / "training_curves.png").read_bytes()
    assert (gpt_run / "hub-upload" / "training_curves.png").read_bytes() == curves
    assert re.search(r"\| peak_learning_rate \| 0\.001 \|", card.text)
    assert re.search(r"\| train_batch_size \| 8 \|", card.text)
    assert "trust_remote_code=True" in card.text
    for heading in ("## How to use", "## Training", "## Evaluation", "## Intended use", "## Limitations"):
        assert heading in card.text
    assert str(gpt_run.parent) not in card.content  # no local paths on a public card

    # Another model's rows, by name; the previous dry run's folder is replaced.
    push_folder(gpt_run, "alice/gpt-tiny", dry_run=True, results_model="other")
    card = ModelCard.load(gpt_run / "hub-upload" / "README.md")
    assert scores(card) == {"gsm8k strict_match": 0.75, "gsm8k flexible_extract": 0.875}


def test_a_local_base_model_is_named_not_linked(tmp_path, tokenizer):
    adapter_dir = tmp_path / "sft-lora"
    write_json(adapter_dir / "adapter_config.json", {"peft_type": "LORA", "base_model_name_or_path": str(tmp_path)})
    tokenizer.save_pretrained(adapter_dir)
    with pytest.warns(UserWarning, match="is a local folder.*pass --base_model <its repo id>"):
        result = push_folder(adapter_dir, "alice/gpt-tiny-lora", dry_run=True)
    card = ModelCard.load(result.dry_run_dir / "README.md")
    assert card.data.base_model is None
    assert f"**Base model:** a local model (`{tmp_path.name}`)" in card.text
    assert str(tmp_path) not in card.text


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "job, method, expected",
    [("pretrain", None, "pretrain"), ("sft", "full", "full"), ("sft", "lora", "lora"), ("reward", "lora", "reward")],
)
def test_method_is_what_the_run_recorded(tmp_path, job, method, expected):
    write_json(tmp_path / "config.json", {})  # the same folder shape for every kind: only the record differs
    end_run(tmp_path, start_run(tmp_path, job, method=method), "finished")
    assert detect_method(locate_run(tmp_path)) == expected


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"config.json": {}}, "unrecorded"),
        ({"adapter_config.json": {"peft_type": "LORA"}}, "lora"),
        ({"adapter_config.json": {"peft_type": "PROMPT_TUNING"}}, "prompt_tuning"),
        ({"config.json": {"architectures": ["GPTForSequenceClassification"]}}, "reward"),
        ({"adapter_config.json": {"peft_type": "LORA", "task_type": "SEQ_CLS"}}, "reward"),
    ],
)
def test_a_folder_without_a_record_is_read_from_what_peft_and_transformers_wrote(tmp_path, files, expected):
    for name, data in files.items():
        write_json(tmp_path / name, data)
    assert detect_method(locate_run(tmp_path)) == expected


def test_a_ppo_run_uploads_its_policy(tmp_path):
    write_json(tmp_path / "policy" / "config.json", {})
    end_run(tmp_path, start_run(tmp_path, "ppo", method="lora"), "finished")
    for path in (tmp_path, tmp_path / "policy"):
        run = locate_run(path)
        assert (run.model_dir, run.run_dir) == (tmp_path / "policy", tmp_path)
        assert detect_method(run) == "ppo"
    # A folder called policy/ beside metrics.jsonl is not a PPO run unless its run says so.
    other = tmp_path / "other"
    write_json(other / "policy" / "config.json", {})
    (other / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match="neither config.json nor adapter_config.json"):
        locate_run(other)


# ---- upload through huggingface_hub to a local stand-in for the Hub -------------------------------------------------


class FakeHubHandler(BaseHTTPRequestHandler):
    """Answers the Hub API calls that HfApi.create_repo / create_branch / upload_folder make."""

    protocol_version = "HTTP/1.1"
    timeout = 10  # a stalled connection is dropped instead of holding the test

    def do_GET(self):
        self.answer()

    def do_POST(self):
        self.answer()

    def answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        status, reply = self.server.route(self.command, urlsplit(self.path).path, body)
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        pass  # requests are recorded, not printed


class FakeHub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), FakeHubHandler)
        self.requests: list[dict] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def route(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        repo = r"/api/models/(?P<repo>[^/]+/[^/]+)"
        if method == "POST" and path == "/api/repos/create":
            payload = json.loads(body)
            return 200, {"url": f"{self.url}/{payload['organization']}/{payload['name']}"}
        if method == "POST" and path == "/api/validate-yaml":
            return 200, {"errors": [], "warnings": []}
        if method == "POST" and re.fullmatch(rf"{repo}/branch/[^/]+", path):
            return 200, {}
        if method == "POST" and re.fullmatch(rf"{repo}/preupload/[^/]+", path):
            files = json.loads(body)["files"]
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        commit = re.fullmatch(rf"{repo}/commit/[^/]+", path)
        if method == "POST" and commit:
            oid = "0123456789abcdef0123456789abcdef01234567"
            return 200, {"commitUrl": f"{self.url}/{commit['repo']}/commit/{oid}", "commitOid": oid}
        return 404, {"error": f"no such endpoint in the fake Hub: {method} {path}"}

    def find(self, method: str, pattern: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and re.fullmatch(pattern, r["path"].split("?")[0])]


@pytest.fixture
def fake_hub(monkeypatch):
    """A Hub API stand-in on 127.0.0.1 (a free port), shut down after the test, or after 120 s at the latest."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite may run offline; this server is local
    server = FakeHub()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    deadline = threading.Timer(120, server.shutdown)
    deadline.daemon = True
    deadline.start()
    try:
        yield server
    finally:
        deadline.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def committed_files(commit: dict) -> tuple[dict, dict[str, bytes]]:
    """The NDJSON commit body: its header and {path: content} of the files."""
    lines = [json.loads(line) for line in commit["body"].splitlines()]
    files = {item["value"]["path"]: base64.b64decode(item["value"]["content"]) for item in lines[1:]}
    assert all(item["key"] == "file" for item in lines[1:])
    return lines[0]["value"], files


def assert_token_only_in_authorization(requests: list[dict]) -> None:
    """Every API write carries the token as `Authorization: Bearer`; no request carries it anywhere else."""
    assert requests
    for request in requests:
        headers = {name.lower(): value for name, value in request["headers"].items()}
        if request["method"] == "POST":
            assert headers["authorization"] == f"Bearer {TOKEN}", request["path"]
            assert headers["user-agent"].startswith("finetune-toolkit/"), headers["user-agent"]
        assert headers.get("authorization", f"Bearer {TOKEN}") == f"Bearer {TOKEN}"
        assert TOKEN.encode() not in request["body"]
        assert TOKEN not in request["path"]
        assert not [name for name, value in headers.items() if TOKEN in value and name != "authorization"]


def test_upload_sends_exactly_the_dry_run_folder(gpt_run, fake_hub, tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(constants, "HF_DEBUG", True)  # huggingface_hub logs every request as a curl command
    caplog.set_level(logging.INFO, logger="toolkit")
    caplog.set_level(logging.DEBUG, logger="huggingface_hub")  # last: the capture's own level
    options = dict(private=True, revision="dev", base_model="alice/gpt-base", datasets=["arithmetic"])
    dry = push_folder(gpt_run, "alice/gpt-tiny", dry_run=True, dry_run_dir=tmp_path / "dry", **options)
    result = push_folder(
        gpt_run, "alice/gpt-tiny", endpoint=fake_hub.url, commit_message="First upload of the tiny GPT", **options
    )

    (create,) = fake_hub.find("POST", "/api/repos/create")
    assert json.loads(create["body"]) == {"name": "gpt-tiny", "organization": "alice", "visibility": "private"}
    (branch,) = fake_hub.find("POST", "/api/models/alice/gpt-tiny/branch/dev")
    (commit,) = fake_hub.find("POST", "/api/models/alice/gpt-tiny/commit/dev")
    assert fake_hub.find("POST", "/api/models/alice/gpt-tiny/preupload/dev")
    assert fake_hub.requests.index(create) < fake_hub.requests.index(branch) < fake_hub.requests.index(commit)
    header, files = committed_files(commit)
    assert header["summary"] == "First upload of the tiny GPT"
    assert files == folder_files(tmp_path / "dry")
    assert sorted(files) == result.files == dry.files
    assert result.commit_url.startswith(f"{fake_hub.url}/alice/gpt-tiny/commit/")

    assert_token_only_in_authorization(fake_hub.requests)
    captured = capsys.readouterr()
    assert fake_hub.url in caplog.text  # the run reported its upload...
    assert "POST" in caplog.text  # ...and huggingface_hub logged its requests...
    assert TOKEN not in captured.out + captured.err + caplog.text  # ...without the token
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert written and not [path for path in written if TOKEN.encode() in path.read_bytes()]


def test_toolkit_push_command_uploads_to_hf_endpoint(gpt_run, fake_hub, tmp_path):
    """The console command as a user runs it: endpoint from HF_ENDPOINT, token from HF_TOKEN, path first."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_ENDPOINT": fake_hub.url,
        "HF_TOKEN": TOKEN,
        "HF_DEBUG": "1",
    }
    command = [sys.executable, "-m", "toolkit.cli", "push", str(gpt_run), "--repo_id", "alice/gpt-tiny"]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"Uploaded {len(STAGED_FILES)} files to alice/gpt-tiny (branch main)" in run.stderr  # logged
    assert TOKEN not in run.stdout + run.stderr
    (create,) = fake_hub.find("POST", "/api/repos/create")
    assert "visibility" not in json.loads(create["body"])  # not private: the namespace's default applies
    assert not fake_hub.find("POST", r".*/branch/.*")
    (commit,) = fake_hub.find("POST", "/api/models/alice/gpt-tiny/commit/main")
    assert committed_files(commit)[0]["summary"] == "Upload full model with finetune-toolkit"
    assert_token_only_in_authorization(fake_hub.requests)


# ---- bad input ------------------------------------------------------------------------------------------------------


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-stored-token"))


def test_missing_token_says_how_to_log_in(gpt_run, no_token):
    with pytest.raises(ValueError, match=r"set HF_TOKEN or run `hf auth login`"):
        push_folder(gpt_run, "alice/gpt-tiny", endpoint="http://127.0.0.1:9")
    assert push_folder(gpt_run, "alice/gpt-tiny", dry_run=True).files  # a dry run needs no token


@pytest.mark.parametrize("repo_id", ["gpt-tiny", "alice/team/gpt-tiny", "alice/gpt tiny", "alice/--gpt", ""])
def test_bad_repo_id(tmp_path, repo_id):
    with pytest.raises(ValueError, match=r"not a Hub repository id: use <user or org>/<name>"):
        push_folder(tmp_path, repo_id, dry_run=True)
    assert not (tmp_path / "hub-upload").exists()


def test_path_that_is_not_a_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        push_folder(tmp_path / "missing", "alice/gpt-tiny", dry_run=True)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "metrics.json").write_text("{}")
    with pytest.raises(ValueError, match="not a model or adapter folder: it holds neither config.json nor adapter"):
        push_folder(tmp_path / "notes", "alice/gpt-tiny", dry_run=True)
    assert not (tmp_path / "notes" / "hub-upload").exists()


def test_missing_tokenizer_is_an_error_that_tokenizer_path_fixes(gpt_run, tokenizer, tmp_path):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (gpt_run / name).unlink()
    with pytest.raises(ValueError, match=r"has no tokenizer.*tokenizer\.save_pretrained\(folder\).*--tokenizer_path"):
        push_folder(gpt_run, "alice/gpt-tiny", dry_run=True)
    assert not (gpt_run / "hub-upload").exists()

    tokenizer.save_pretrained(tmp_path / "tokenizer")
    result = push_folder(gpt_run, "alice/gpt-tiny", dry_run=True, tokenizer_path=str(tmp_path / "tokenizer"))
    assert AutoTokenizer.from_pretrained(result.dry_run_dir)(PROMPT).input_ids == tokenizer(PROMPT).input_ids


def test_a_file_holding_the_token_stops_the_upload(gpt_run, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    (gpt_run / "hub_settings.json").write_text(json.dumps({"hub_token": TOKEN}))
    with pytest.raises(ValueError, match="would upload your Hugging Face token: hub_settings.json") as error:
        push_folder(gpt_run, "alice/gpt-tiny", dry_run=True)
    assert TOKEN not in str(error.value)
    assert not (gpt_run / "hub-upload").exists()


def test_a_token_in_a_file_name_stops_the_upload_and_is_never_shown(gpt_run, monkeypatch, caplog):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    (gpt_run / f"{TOKEN}.json").write_text("{}")
    (gpt_run / f"notes-{TOKEN}.txt").write_text("")  # not a model file: left out, and logged without the token
    with caplog.at_level(logging.INFO), pytest.raises(ValueError, match=r"token: <token>.json\. Nothing") as error:
        push_folder(gpt_run, "alice/gpt-tiny", dry_run=True)
    assert TOKEN not in str(error.value) and TOKEN not in caplog.text and "notes-<token>.txt" in caplog.text
    assert not (gpt_run / "hub-upload").exists()


def test_push_never_follows_a_link_or_a_model_path_out_of_the_run(gpt_run, tmp_path, caplog):
    """A folder received from someone else could stage any readable file on this machine, named like a model file,
    or send push to another folder through run.json's model_path."""
    secret = tmp_path / "private.json"
    secret.write_text('{"private": true}')
    (gpt_run / "notes.json").symlink_to(secret)
    folder = push_folder(gpt_run, "alice/gpt-tiny", dry_run=True).dry_run_dir
    assert not (folder / "notes.json").exists()
    assert "as links are never followed: notes.json" in caplog.text
    assert all(b"private" not in path.read_bytes() for path in folder.iterdir())
    other = tmp_path / "other"
    shutil.copytree(gpt_run, other, ignore=shutil.ignore_patterns("hub-upload", "notes.json"))
    record = json.loads((gpt_run / "run.json").read_text())
    for model_path in ("../other", str(other), "policy"):
        if model_path == "policy":
            (gpt_run / "policy").symlink_to(other)
        (gpt_run / "run.json").write_text(json.dumps({**record, "model_path": model_path}))
        with pytest.raises(
            ValueError, match=f"names model_path '{re.escape(model_path)}', which is not a folder inside"
        ):
            push_folder(gpt_run, "alice/gpt-tiny", dry_run=True, dry_run_dir=tmp_path / "staged")


def test_the_staged_record_names_local_sources_by_their_names_only(gpt_run, tmp_path):
    """run.json is uploaded; the absolute paths it holds locally (where the user keeps data and models) are not."""
    record = json.loads((gpt_run / "run.json").read_text())
    local = {
        "base_model": str(tmp_path / "models" / "base"),
        "datasets": [str(tmp_path / "train.jsonl"), "arithmetic"],
    }
    (gpt_run / "run.json").write_text(json.dumps({**record, **local}))
    staged = push_folder(gpt_run, "alice/gpt-tiny", dry_run=True).dry_run_dir / "run.json"
    assert str(tmp_path) not in staged.read_text()
    assert json.loads(staged.read_text()) | {"model_path": "."} == {
        **record,
        "base_model": "base",
        "datasets": ["train.jsonl", "arithmetic"],
        "model_path": ".",
    }


def test_dry_run_never_replaces_a_folder_it_did_not_write(gpt_run, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"holds files no dry run wrote \(notes.txt\); nothing was changed"):
        push_folder(gpt_run, "alice/gpt-tiny", dry_run=True, dry_run_dir=tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_damaged_dry_run_marker_proves_nothing(gpt_run):
    """A malformed marker raised a JSONDecodeError; it is now a folder no dry run wrote."""
    folder = push_folder(gpt_run, "alice/gpt-tiny", dry_run=True).dry_run_dir
    (folder / DRY_RUN_MARKER).write_text('{"files": ["config.j')
    with pytest.raises(ValueError, match="holds files no dry run wrote .*nothing was changed"):
        push_folder(gpt_run, "alice/gpt-tiny", dry_run=True)
    assert (folder / "model.safetensors").is_file()


def test_a_downloaded_model_is_never_replaced_by_a_dry_run_into_it(gpt_run, tmp_path):
    """A model downloaded from the Hub holds a toolkit-tagged README.md like a staged folder; a dry run into it (as
    `toolkit push dl --dry_run true --dry_run_dir dl`) must refuse, not delete the model."""
    first = push_folder(gpt_run, "alice/gpt-tiny", dry_run=True)
    downloaded = tmp_path / "dl"
    shutil.copytree(first.dry_run_dir, downloaded, ignore=shutil.ignore_patterns(DRY_RUN_MARKER))
    before = folder_files(downloaded)
    with pytest.raises(ValueError, match="holds files no dry run wrote"):
        push_folder(downloaded, "alice/b", dry_run=True, dry_run_dir=downloaded)
    assert folder_files(downloaded) == before


def test_a_dry_run_replaces_only_its_own_files(gpt_run):
    folder = push_folder(gpt_run, "alice/gpt-tiny", dry_run=True).dry_run_dir
    assert push_folder(gpt_run, "alice/gpt-tiny", dry_run=True).dry_run_dir == folder  # its own folder: replaced
    (folder / "NOTES.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds files no dry run wrote \(NOTES.txt\)"):
        push_folder(gpt_run, "alice/gpt-tiny", dry_run=True)
    assert (folder / "NOTES.txt").read_text() == "mine" and (folder / "model.safetensors").is_file()


def test_staged_files_are_copies_so_editing_them_never_edits_the_run(gpt_run):
    folder = push_folder(gpt_run, "alice/gpt-tiny", dry_run=True).dry_run_dir
    original = (gpt_run / "config.json").read_bytes()
    with (folder / "config.json").open("a") as staged:
        staged.write("\n")
    with (folder / "model.safetensors").open("r+b") as staged:  # even weights edited in place
        staged.seek(-1, 2)
        staged.write(b"\0")
    assert (gpt_run / "config.json").read_bytes() == original
    assert (gpt_run / "model.safetensors").stat().st_ino != (folder / "model.safetensors").stat().st_ino


def test_the_token_in_weights_metadata_or_the_commit_message_stops_the_upload(gpt_run, monkeypatch, fake_hub):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    weights = load_file(gpt_run / "model.safetensors")
    save_file(weights, gpt_run / "model.safetensors", metadata={"note": f"pushed with {TOKEN}"})
    with pytest.raises(ValueError, match="would upload your Hugging Face token: model.safetensors"):
        push_folder(gpt_run, "alice/gpt-tiny", dry_run=True)
    save_file(weights, gpt_run / "model.safetensors")
    with pytest.raises(ValueError, match="commit message holds your Hugging Face token"):
        push_folder(gpt_run, "alice/gpt-tiny", endpoint=fake_hub.url, commit_message=f"token {TOKEN}")
    assert not fake_hub.requests  # nothing was sent


def test_push_recipe_tiny_config_dry_run(gpt_run, tmp_path):
    result = load_recipe("push").main(
        [
            "--config",
            str(REPO / "recipes/configs/push/tiny_cpu.yaml"),
            "--model_path",
            str(gpt_run),
            "--results_path",
            str(gpt_run / "results.json"),
            "--dry_run_dir",
            str(tmp_path / "dry"),
            "--dry_run",
            "true",
        ]
    )
    assert result.commit_url is None and "README.md" in result.files
    card = ModelCard.load(tmp_path / "dry" / "README.md")
    assert card.data.license == "apache-2.0" and card.data.datasets == ["arithmetic"]
    assert scores(card) == OUR_SCORES
