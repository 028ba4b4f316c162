"""The alignment comparison's own measurements (toolkit/evaluation/comparison.py): the sampled KL estimate against the
exact KL of a one-token answer, and the training-run summary read from a run folder."""

import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from toolkit.evaluation.comparison import comparison_table, sampled_kl, training_summary
from toolkit.runs import JobResult, end_run, job_summary, start_run, write_summary
from toolkit.tokenization import build_char_tokenizer

PROMPTS = ["1+2=", "3+4="]


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer(["0123456789+= "], padding_side="left")


def tiny_gpt2(tokenizer, seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    # A wide initialisation: peaked next-token distributions, so two seeds disagree measurably.
    special = dict(bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    config = GPT2Config(
        n_layer=1, n_head=2, n_embd=16, n_positions=32, vocab_size=len(tokenizer), initializer_range=0.5, **special
    )
    return GPT2LMHeadModel(config).eval()


def test_a_model_is_at_kl_zero_from_itself(tokenizer):
    model = tiny_gpt2(tokenizer, 0)
    assert sampled_kl(model, model, tokenizer, PROMPTS * 4, max_new_tokens=6) == [0.0] * 8


def test_one_token_answers_estimate_the_exact_kl(tokenizer):
    """With one-token answers, KL(p || q) = sum_x p(x) log p(x) / q(x) over the next-token distributions."""
    model, reference = tiny_gpt2(tokenizer, 0), tiny_gpt2(tokenizer, 1)
    ids = torch.tensor([tokenizer(PROMPTS[0], add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        p = torch.log_softmax(model(ids).logits[0, -1], -1)
        q = torch.log_softmax(reference(ids).logits[0, -1], -1)
    exact = (p.exp() * (p - q)).sum().item()
    estimates = sampled_kl(model, reference, tokenizer, PROMPTS[:1] * 4000, max_new_tokens=1, batch_size=500)
    mean = sum(estimates) / len(estimates)
    spread = math.sqrt(sum((value - mean) ** 2 for value in estimates) / len(estimates) / len(estimates))
    assert abs(mean - exact) < 4 * spread and exact > 0.01


def test_the_summary_reads_what_the_run_recorded(tmp_path):
    record = start_run(tmp_path, "grpo", method="lora")
    end_run(tmp_path, record, "finished")
    result = JobResult(metrics={"global_step": 2}, units=64, units_per_second=8.0)
    result.curves = {"reward": [[32, 0.25], [64, 0.75]], "loss": [[64, 0.1]]}
    write_summary(tmp_path, job_summary(record, result))
    summary = training_summary(tmp_path)
    assert (summary.job, summary.units, summary.count, summary.per_second) == ("grpo", "episodes", 64, 8.0)
    assert summary.reward_curve == [[32, 0.25], [64, 0.75]] and summary.peak_memory_mib > 0
    row = {"name": "grpo", "score": 0.5, "gained": 3, "lost": 1, "p_value": 0.625, "kl": 0.2, "summary": summary}
    table = comparison_table([row], "exact match", "sft")
    assert "| grpo | grpo (lora) | 0.5000 | +3 / -1 | 0.62 | 0.200 | 0.250 -> 0.750 | 64 episodes | 8.0 |" in table
    sft = tmp_path / "sft"
    end_run(sft, start_run(sft, "sft", method="lora"), "finished")
    assert training_summary(sft) is None  # not an alignment run
