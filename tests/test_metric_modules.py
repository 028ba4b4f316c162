"""The `evaluate` modules shipped in toolkit/evaluation/metrics: offline loading, same numbers as the functions."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import setuptools
import torch
from evaluate.loading import get_imports
from transformers import GPT2TokenizerFast

import toolkit
from toolkit import GPTConfig, GPTForCausalLM
from toolkit.evaluation import (
    bleu_score,
    bleu_score_files,
    gsm8k_exact_match,
    metric_path,
    perplexity_of_texts,
)
from toolkit.evaluation.bleu import read_segments

METRICS = ("perplexity", "bleu", "gsm8k")
TEXTS = ["The quick brown fox jumps over the lazy dog.", "To be, or not to be, that is the question."]
GSM8K_OUTPUTS = ["So 2 + 3 = 5.\n#### 5", "It is $1,000.", "no idea", "#### 7."]
GSM8K_ANSWERS = ["#### 5", "#### 1000", "#### 3", "Because.\n#### 7"]

# Run in a fresh interpreter with the Hub switched off and every socket refused, so a module that tried to fetch
# anything (the Hub `bleu` fetches helper code even from a local copy) would fail here.
OFFLINE_SCRIPT = """
import json, socket, sys
def refuse(*args, **kwargs):
    raise OSError("network access attempted while loading an evaluate module")
socket.socket.connect = refuse
socket.create_connection = refuse

import evaluate
from toolkit.evaluation import load_metric, metric_path

model_dir, mt_dir, cache_dir, texts, outputs, answers = sys.argv[1:7]
texts, outputs, answers = json.loads(texts), json.loads(outputs), json.loads(answers)
hypotheses = open(mt_dir + "/newstest2017-ende.uedin-nmt.de", encoding="utf-8").read().rstrip("\\n").split("\\n")
references = open(mt_dir + "/newstest2017-ende.ref.de", encoding="utf-8").read().rstrip("\\n").split("\\n")

bleu = load_metric("bleu", cache_dir=cache_dir)
bleu_from_file = evaluate.load(str(metric_path("bleu") / "bleu.py"), cache_dir=cache_dir)
perplexity = load_metric("perplexity", cache_dir=cache_dir)
gsm8k = evaluate.load(str(metric_path("gsm8k")), cache_dir=cache_dir)
nested_references = [[reference] for reference in references[:300]]
results = {
    "bleu": bleu.compute(predictions=hypotheses, references=references),
    "bleu_nested": bleu_from_file.compute(predictions=hypotheses[:300], references=nested_references),
    "perplexity": perplexity.compute(predictions=texts, model=model_dir, context_length=8, stride=4),
    "gsm8k": gsm8k.compute(predictions=outputs, references=answers),
}
print(json.dumps(results))
"""


def save_tiny_model(shared_data: Path, path: Path) -> Path:
    tokenizer_dir = shared_data / "gpt2-tokenizer"
    tokenizer = GPT2TokenizerFast(vocab=str(tokenizer_dir / "encoder.json"), merges=str(tokenizer_dir / "vocab.bpe"))
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
    )
    GPTForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_modules_load_offline_and_give_the_function_numbers(shared_data, tmp_path):
    model_dir = save_tiny_model(shared_data, tmp_path / "tiny-gpt")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_EVALUATE_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "HF_METRICS_CACHE": str(tmp_path / "metrics"),
    }
    mt = shared_data / "mt"
    arguments = [str(model_dir), str(mt), str(tmp_path / "metrics")]
    arguments += [json.dumps(TEXTS), json.dumps(GSM8K_OUTPUTS), json.dumps(GSM8K_ANSWERS)]
    completed = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, *arguments], env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])

    bleu = bleu_score_files(mt / "newstest2017-ende.uedin-nmt.de", mt / "newstest2017-ende.ref.de").to_dict()
    assert results["bleu"] == bleu
    hypotheses = read_segments(mt / "newstest2017-ende.uedin-nmt.de")
    references = read_segments(mt / "newstest2017-ende.ref.de")
    assert results["bleu_nested"] == bleu_score(hypotheses[:300], references[:300]).to_dict()
    assert round(results["bleu"]["bleu"], 2) == 28.30
    assert results["bleu"]["bleu_signature"] == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"

    perplexity = perplexity_of_texts(model_dir, None, TEXTS, context_length=8, stride=4, show_progress=False)
    assert results["perplexity"].keys() == perplexity.to_dict().keys()
    for key, value in perplexity.to_dict().items():
        expected = pytest.approx(value, rel=1e-6) if isinstance(value, float) else value
        assert results["perplexity"][key] == expected, key
    assert "window 8 tokens, stride 4" in results["perplexity"]["protocol"]

    # Hand-checked: outputs 1 and 4 match under both extractors, output 2 only under flexible ("$1,000." -> 1000).
    assert results["gsm8k"] == {"strict_match": 0.5, "flexible_extract": 0.75}
    assert results["gsm8k"] == gsm8k_exact_match(GSM8K_OUTPUTS, GSM8K_ANSWERS)


def test_modules_import_only_installed_libraries():
    for name in METRICS:
        script = metric_path(name) / f"{name}.py"
        imports = get_imports(str(script))
        assert {kind for kind, *_ in imports} == {"library"}, imports  # nothing relative, nothing to download
        assert {module for _, module, *_ in imports} == {"datasets", "evaluate", "toolkit"}


def test_modules_ship_as_package_files():
    # setuptools only packages .py files that sit in packages, so each module folder needs an __init__.py.
    root = Path(toolkit.__file__).parent.parent
    packages = setuptools.find_packages(where=str(root), include=["toolkit*"])
    for name in METRICS:
        assert f"toolkit.evaluation.metrics.{name}" in packages
        assert (metric_path(name) / f"{name}.py").is_file()


def test_unknown_metric_names_the_available_ones():
    with pytest.raises(ValueError, match="Unknown metric 'rouge'. The toolkit ships: perplexity, bleu, gsm8k"):
        metric_path("rouge")


def test_bleu_module_accepts_several_references(tmp_path):
    from toolkit.evaluation import load_metric

    metric = load_metric("bleu", cache_dir=str(tmp_path))
    references = [["a dog", "the cat sat on the mat"], ["hello there", "hi"]]
    module = metric.compute(predictions=["the cat sat on the mat", "hello there"], references=references)
    assert module == bleu_score(["the cat sat on the mat", "hello there"], references).to_dict()
    assert module["bleu"] == pytest.approx(100.0)
