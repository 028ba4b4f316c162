"""GSM8K-style accuracy: gold answers, lm-evaluation-harness extraction rules, prompts, stop strings, end to end."""

import json
import random

import pytest
import torch
from datasets import Dataset
from transformers import GPT2TokenizerFast

from toolkit import GPTConfig, GPTForCausalLM
from toolkit.evaluation import (
    LEGACY_STOP_STRINGS,
    STOP_STRINGS,
    evaluate_gsm8k,
    fewshot_prompts,
    gsm8k_exact_match,
    load_gsm8k,
    score_gsm8k,
)
from toolkit.generation import generate_greedy, truncate_at_stop_strings
from toolkit.tasks.arithmetic import extract_flexible, extract_strict, normalize_answer


@pytest.fixture
def gpt2_tokenizer(shared_data):
    tokenizer_dir = shared_data / "gpt2-tokenizer"
    return GPT2TokenizerFast(vocab=str(tokenizer_dir / "encoder.json"), merges=str(tokenizer_dir / "vocab.bpe"))


def tiny_gpt(vocab_size: int, context: int = 128) -> GPTForCausalLM:
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=vocab_size,
        max_position_embeddings=context,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
    )
    return GPTForCausalLM(config).eval()


def test_every_gold_answer_scores_under_both_extractors(shared_data):
    examples = load_gsm8k(shared_data / "gsm8k" / "test.jsonl")
    assert len(examples) == 1319
    answers = [example["answer"] for example in examples]
    assert gsm8k_exact_match(answers, answers) == {"strict_match": 1.0, "flexible_extract": 1.0}
    result = score_gsm8k(examples, answers)
    assert (result.strict_match, result.flexible_extract, result.num_examples) == (1.0, 1.0, 1319)
    assert result.records[0]["gold"] == "18"  # Janet's ducks: "... #### 18"


# (output, strict-match extraction, flexible-extract extraction, gold, strict correct, flexible correct), from
# lm-evaluation-harness's gsm8k.yaml filters (regex + take_first; findall, group_select -1 for flexible, the
# non-empty group of the match, "[invalid]" without a match) and exact_match with regexes_to_ignore, ignore_case.
TRICKY_OUTPUTS = [
    ("She has 5 - 8 = -3 apples.\n#### -3", "-3", "-3", "-3", True, True),
    ("The temperature is -5 degrees", "[invalid]", "-5", "-5", False, True),
    ("It costs $1,000.50 in total.", "[invalid]", "$1,000.50", "1000.50", False, True),
    ("It costs $1,000.50 in total.", "[invalid]", "$1,000.50", "1000.5", False, False),  # string equality
    ("The answer is 42.", "[invalid]", "42.", "42", False, True),  # "42." is a flexible match; the "." is ignored
    ("#### 5.", "5.", "5.", "5", True, True),
    ("3 + 4 = 7 and 7 * 2 = 14\n#### 14", "14", "14", "14", True, True),
    ("3 + 4 = 7 and 7 * 2 = 14", "[invalid]", "14", "14", False, True),  # flexible takes the last number
    ("#### 3 then #### 4", "3", "4", "3", True, False),  # strict takes the first
    ("I do not know.", "[invalid]", "[invalid]", "7", False, False),  # no number at all
    ("There were 7 apples...", "[invalid]", "...", "7", False, False),  # "..." is the last flexible match
    ("Total #### 1,234", "1,234", "1,234", "1234", True, True),
    ("####5", "[invalid]", "5", "5", False, True),  # strict needs "#### " with the space
    ("The answer is $18.00", "[invalid]", "$18.00", "18", False, False),
]


@pytest.mark.parametrize("output, strict, flexible, gold, strict_correct, flexible_correct", TRICKY_OUTPUTS)
def test_extraction_matches_lm_eval(output, strict, flexible, gold, strict_correct, flexible_correct):
    assert extract_strict(output) == strict
    assert extract_flexible(output) == flexible
    assert (normalize_answer(strict) == normalize_answer(gold)) is strict_correct
    assert (normalize_answer(flexible) == normalize_answer(gold)) is flexible_correct
    expected = {"strict_match": float(strict_correct), "flexible_extract": float(flexible_correct)}
    assert gsm8k_exact_match([output], [f"Some reasoning.\n#### {gold}"]) == expected


def test_normalisation():
    assert normalize_answer("$1,000.") == "1000"
    assert normalize_answer("Work: 2 + 2 = 4\n#### 4") == "4"
    assert normalize_answer("[INVALID]") == "[invalid]"
    assert normalize_answer("5..") == "5."  # only one final "."


def test_fewshot_prompts_are_deterministic_and_follow_the_harness_format():
    train = [{"question": f"q{i}?", "answer": f"a{i}\n#### {i}"} for i in range(10)]
    prompts = fewshot_prompts(["What is 2 + 2?", "What is 3 + 3?"], train, num_fewshot=2, seed=1234)
    rng = random.Random(1234)  # one generator draws each question's exemplars in turn
    first, second = rng.sample(train, 2), rng.sample(train, 2)
    assert prompts[0] == (
        f"Question: {first[0]['question']}\nAnswer: {first[0]['answer']}\n\n"
        f"Question: {first[1]['question']}\nAnswer: {first[1]['answer']}\n\n"
        "Question: What is 2 + 2?\nAnswer:"
    )
    assert prompts[1].startswith(f"Question: {second[0]['question']}\nAnswer: {second[0]['answer']}\n\n")
    assert prompts == fewshot_prompts(["What is 2 + 2?", "What is 3 + 3?"], train, num_fewshot=2, seed=1234)
    assert fewshot_prompts(["Why?"], train, num_fewshot=0) == ["Question: Why?\nAnswer:"]


def test_loading_from_jsonl_and_dataset(tmp_path):
    rows = [
        {"question": "1 + 1?", "answer": "2\n#### 2", "id": 0},
        {"question": "2 + 2?", "answer": "#### 4", "id": 1},
    ]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    expected = [{"question": row["question"], "answer": row["answer"]} for row in rows]
    assert load_gsm8k(tmp_path / "data.jsonl") == expected
    assert load_gsm8k(Dataset.from_list(rows)) == expected
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.jsonl holds no rows"):
        load_gsm8k(tmp_path / "empty.jsonl")
    with pytest.raises(ValueError, match=r"lacks the field\(s\) \['answer'\]"):
        load_gsm8k(Dataset.from_list([{"question": "1 + 1?", "solution": "2"}]))


def test_stop_strings_end_generation_and_cut_the_output(gpt2_tokenizer):
    # All-zero weights make every logit equal, so greedy decoding repeats token 0, "!".
    model = tiny_gpt(len(gpt2_tokenizer))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    unstopped = generate_greedy(model, gpt2_tokenizer, ["Say:"], max_new_tokens=6, show_progress=False)
    assert unstopped == ["!!!!!!"]
    stopped = generate_greedy(
        model, gpt2_tokenizer, ["Say:"], max_new_tokens=6, stop_strings=["!!!!"], show_progress=False
    )
    assert stopped == [""]


def test_stop_string_conventions():
    output = "2 + 5 = 7\n\n#### 7\n\nQuestion: Next one?</s>"
    assert truncate_at_stop_strings(output, STOP_STRINGS) == "2 + 5 = 7\n\n#### 7\n\n"  # current harness
    assert truncate_at_stop_strings(output, LEGACY_STOP_STRINGS) == "2 + 5 = 7"  # before v3: stop at a blank line
    assert truncate_at_stop_strings("#### 7</s>Question:", STOP_STRINGS) == "#### 7"  # the earliest stop wins


def test_end_to_end_with_a_tiny_random_model(shared_data, gpt2_tokenizer, tmp_path):
    model = tiny_gpt(len(gpt2_tokenizer))
    test = Dataset.from_list(load_gsm8k(shared_data / "gsm8k" / "test.jsonl")[:3])
    train = shared_data / "gsm8k" / "train.jsonl"
    records_path = tmp_path / "records.jsonl"
    result = evaluate_gsm8k(
        model, gpt2_tokenizer, test, train, max_new_tokens=8, batch_size=2, records_path=records_path
    )

    records = [json.loads(line) for line in records_path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == result.num_examples == 3
    for record, example in zip(records, test):
        assert record["question"] == example["question"]
        assert record["prompt"].endswith(f"Question: {example['question']}\nAnswer:")
        assert record["prompt"].count("Question: ") == 6  # 5 exemplars + the question
        assert "Question:" not in record["output"]
        assert record["strict_answer"] == extract_strict(record["output"])
        assert record["flexible_answer"] == extract_flexible(record["output"])
        assert record["gold"] == normalize_answer(example["answer"])
        assert record["strict_correct"] == (normalize_answer(record["strict_answer"]) == record["gold"])
    assert result.strict_match == sum(record["strict_correct"] for record in records) / 3
    assert result.flexible_extract == sum(record["flexible_correct"] for record in records) / 3
    assert "5-shot" in str(result) and "strict-match" in str(result)
    assert gpt2_tokenizer.pad_token is None  # a padded copy was used

    one_by_one = evaluate_gsm8k(model, gpt2_tokenizer, test, train, max_new_tokens=8, batch_size=1)
    assert [record["output"] for record in one_by_one.records] == [record["output"] for record in records]


def test_bad_generation_settings_give_a_clear_error(gpt2_tokenizer):
    model = tiny_gpt(len(gpt2_tokenizer))
    examples = [{"question": "1 + 1?", "answer": "#### 2"}]
    with pytest.raises(ValueError, match="max_new_tokens=256 leaves no room for the prompt"):
        evaluate_gsm8k(model, gpt2_tokenizer, examples, examples, num_fewshot=1)
    with pytest.raises(ValueError, match="needs a training set"):
        evaluate_gsm8k(model, gpt2_tokenizer, examples, max_new_tokens=4)
    gpt2_tokenizer.eos_token = None
    with pytest.raises(ValueError, match="has no EOS token"):
        evaluate_gsm8k(model, gpt2_tokenizer, examples, num_fewshot=0, max_new_tokens=4)
