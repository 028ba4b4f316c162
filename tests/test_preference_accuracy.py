"""The held-out preference accuracy of a causal LM (toolkit/evaluation/preference_accuracy.py): log-probs of answers
checked against a hand computation, independent of padding, and the paired before/after summary."""

import datasets
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from toolkit.evaluation.preference_accuracy import answer_logprobs, preference_accuracy_change, preferred_chosen
from toolkit.tokenization import build_char_tokenizer

TEXTS = ["Q: 1+2=\nA:", " 3", " 4", "Q: 10+20=\nA:", " 30", " 3"]


@pytest.fixture(scope="module")
def model_and_tokenizer():
    tokenizer = build_char_tokenizer(TEXTS)
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=len(tokenizer))
    return GPT2LMHeadModel(config).eval(), tokenizer


def by_hand(model, tokenizer, prompt: str, answer: str) -> float:
    """The summed log-prob of the answer's tokens and EOS, from one unpadded forward pass (a character tokenizer:
    the prompt's tokens are a prefix of prompt + answer's)."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = torch.tensor([tokenizer(prompt + answer)["input_ids"] + [tokenizer.eos_token_id]])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0], dim=-1)
    return sum(logprobs[position - 1, ids[0, position]].item() for position in range(len(prompt_ids), ids.shape[1]))


def test_answer_logprobs_match_a_hand_computation_whatever_the_batch(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompts, answers = ["Q: 1+2=\nA:", "Q: 10+20=\nA:", "Q: 1+2=\nA:"], [" 3", " 30", " 300"]
    expected = torch.tensor([by_hand(model, tokenizer, p, a) for p, a in zip(prompts, answers)])
    for batch_size in (1, 3):  # rows of different lengths padded together, or alone
        assert torch.allclose(answer_logprobs(model, tokenizer, prompts, answers, batch_size), expected, atol=1e-5)


def test_preferred_chosen_compares_the_two_answers_of_each_pair(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    rows = {"prompt": ["Q: 1+2=\nA:", "Q: 10+20=\nA:"], "chosen": [" 3", " 30"], "rejected": [" 4", " 3"]}
    pairs = datasets.Dataset.from_dict(rows)
    chosen = answer_logprobs(model, tokenizer, rows["prompt"], rows["chosen"])
    rejected = answer_logprobs(model, tokenizer, rows["prompt"], rows["rejected"])
    assert preferred_chosen(model, tokenizer, pairs, batch_size=1) == (chosen > rejected).tolist()
    swapped = pairs.rename_columns({"chosen": "rejected", "rejected": "chosen"})
    assert preferred_chosen(model, tokenizer, swapped) == (rejected > chosen).tolist()


def test_the_change_counts_pairs_gained_and_lost():
    change = preference_accuracy_change([True, False, False, True], [True, True, True, False])
    assert change["eval_preference_accuracy_before"] == 0.5 and change["eval_preference_accuracy"] == 0.75
    assert (change["eval_preference_accuracy_gained"], change["eval_preference_accuracy_lost"]) == (2, 1)
    assert change["eval_preference_accuracy_p_value"] == 1.0  # 2 vs 1 disagreements: no evidence


def test_rows_over_max_length_are_cut_as_dpo_cuts_them(model_and_tokenizer):
    """keep_start keeps the prompt and the answer's first tokens; a longer row never reaches the model whole."""
    model, tokenizer = model_and_tokenizer
    prompt, answer = "Q: 10+20=\nA:", " 30"
    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = torch.tensor([tokenizer(prompt + answer)["input_ids"][: len(prompt_ids) + 1]])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0], dim=-1)
    first_answer_token = logprobs[len(prompt_ids) - 1, ids[0, len(prompt_ids)]].item()
    cut = answer_logprobs(model, tokenizer, [prompt], [answer], max_length=len(prompt_ids) + 1)
    assert cut.item() == pytest.approx(first_answer_token, abs=1e-5)
    assert cut.item() != pytest.approx(by_hand(model, tokenizer, prompt, answer), abs=1e-3)
