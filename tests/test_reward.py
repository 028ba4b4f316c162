"""Reward models: training with TRL's RewardTrainer on a learnable preference, data loading and validation, the
pairwise evaluation, the reward model built from a causal LM, and synthetic arithmetic pairs."""

import gzip
import json
import math
import random
import string

import datasets
import pytest
import torch
from peft import LoraConfig
from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel
from trl import RewardConfig

from toolkit import GPTConfig, GPTForCausalLM, GPTForSequenceClassification
from toolkit.generation import generate_completions
from toolkit.pipelines.reward import PreferenceDataArguments, load_preference_splits
from toolkit.rlhf.preferences import (
    load_preference_jsonl,
    policy_answer_pairs,
    preference_dataset,
    sampled_preference_pairs,
    split_prompt,
)
from toolkit.rlhf.reward_model import (
    evaluate_reward_model,
    load_reward_model,
    make_reward_trainer,
    reward_model_from_causal_lm,
)
from toolkit.tasks.arithmetic import arithmetic_preference_pairs, gold_answer
from toolkit.tokenization import build_char_tokenizer

MARKER = "h"


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer("abcdefgh ")


def tiny_causal_lm(tokenizer, seed: int = 0, context: int = 64) -> GPTForCausalLM:
    torch.manual_seed(seed)
    config = GPTConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=context,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
    )
    return GPTForCausalLM(config)


def marker_pairs(count: int, seed: int) -> datasets.Dataset:
    """Chosen texts contain the marker character somewhere, rejected texts never do."""
    rng = random.Random(seed)

    def text(with_marker: bool) -> str:
        characters = [rng.choice("abcdefg ") for _ in range(rng.randint(5, 12))]
        if with_marker:
            characters.insert(rng.randrange(len(characters) + 1), MARKER)
        return "".join(characters)

    return datasets.Dataset.from_dict(
        {"chosen": [text(True) for _ in range(count)], "rejected": [text(False) for _ in range(count)]}
    )


def reward_config(tmp_path, **overrides) -> RewardConfig:
    fields = dict(
        output_dir=str(tmp_path / "reward"),
        max_steps=40,
        per_device_train_batch_size=16,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        logging_steps=5,
        bf16=False,
        activation_checkpointing=False,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    return RewardConfig(**{**fields, **overrides})


def test_reward_trainer_learns_a_marker_preference(tmp_path, tokenizer):
    folder = tmp_path / "causal-lm"
    tiny_causal_lm(tokenizer).save_pretrained(folder)
    train, held_out = marker_pairs(64, seed=0), marker_pairs(64, seed=1)
    model = reward_model_from_causal_lm(folder, tokenizer)
    before = evaluate_reward_model(model, tokenizer, train)
    trainer = make_reward_trainer(model, tokenizer, train, args=reward_config(tmp_path))
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[-1] < losses[0] - 0.3
    after_train, after_held_out = (evaluate_reward_model(model, tokenizer, data) for data in (train, held_out))
    assert 0.2 < before["accuracy"] < 0.8  # a fresh head is near chance
    assert after_train["accuracy"] > 0.9 and after_held_out["accuracy"] > 0.9
    assert after_held_out["margin"] > 1.0


def test_lora_reward_model_trains_the_adapter_and_the_head_and_reloads(tmp_path, tokenizer):
    tiny_causal_lm(tokenizer).save_pretrained(tmp_path / "base")  # the adapter records this folder as its base
    model = reward_model_from_causal_lm(tmp_path / "base", tokenizer)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="SEQ_CLS")
    trainer = make_reward_trainer(
        model, tokenizer, marker_pairs(32, seed=0), args=reward_config(tmp_path, max_steps=3), peft_config=peft_config
    )
    trainer.train()
    trained = trainer.model
    trainable = {name for name, parameter in trained.named_parameters() if parameter.requires_grad}
    assert any("lora_" in name for name in trainable) and any("score" in name for name in trainable)
    assert all("lora_" in name or "score" in name for name in trainable)
    frozen = {
        name.replace(".base_layer", ""): tensor
        for name, tensor in trained.get_base_model().state_dict().items()
        if "lora_" not in name and "score" not in name
    }
    assert len(frozen) == len(before) - 1  # everything but the score head
    assert all(torch.equal(tensor, before[name]) for name, tensor in frozen.items())
    adapter_folder = tmp_path / "adapter"
    trained.save_pretrained(adapter_folder)
    tokenizer.save_pretrained(adapter_folder)
    reloaded = load_reward_model(adapter_folder)
    assert all(parameter.requires_grad for parameter in reloaded.parameters())  # trainable, e.g. as a value model
    held_out = marker_pairs(8, seed=2)
    expected = evaluate_reward_model(trained.eval(), tokenizer, held_out)
    actual = evaluate_reward_model(reloaded, tokenizer, held_out)
    assert actual["margin"] == pytest.approx(expected["margin"], abs=1e-5)


def test_evaluation_equals_scoring_each_text_alone(tokenizer):
    model = reward_model_from_causal_lm(tiny_causal_lm(tokenizer), tokenizer).eval()
    pairs = datasets.Dataset.from_dict(
        {"prompt": ["ab", "c", "dd"], "chosen": ["cd", "h", "a b"], "rejected": ["g", "hh", "b"]}
    )

    def score(text: str) -> float:
        ids = tokenizer(text + tokenizer.eos_token, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            return model(ids).logits.item()  # one unpadded row: the score at its last token (EOS)

    margins = [
        score(prompt + chosen) - score(prompt + rejected)
        for prompt, chosen, rejected in zip(pairs["prompt"], pairs["chosen"], pairs["rejected"])
    ]
    result = evaluate_reward_model(model, tokenizer, pairs, batch_size=2)
    assert result["num_pairs"] == 3 and result["num_skipped"] == 0
    assert result["accuracy"] == pytest.approx(sum(margin > 0 for margin in margins) / 3)
    assert result["margin"] == pytest.approx(sum(margins) / 3, abs=1e-5)
    # Longest sides: 5, 4 and 6 tokens ("dd" + "a b" + EOS): with max_length=5 only the last pair is skipped.
    assert evaluate_reward_model(model, tokenizer, pairs, max_length=5)["num_skipped"] == 1


def test_reward_model_from_a_causal_lm_folder_or_model(tmp_path, tokenizer):
    causal_lm = tiny_causal_lm(tokenizer)
    causal_lm.save_pretrained(tmp_path / "ours")
    from_folder = reward_model_from_causal_lm(tmp_path / "ours", tokenizer)
    from_model = reward_model_from_causal_lm(causal_lm, tokenizer)
    for model in (from_folder, from_model):
        assert isinstance(model, GPTForSequenceClassification)
        assert model.config.num_labels == 1 and model.config.pad_token_id == tokenizer.pad_token_id
        assert torch.equal(model.transformer.wte.weight, causal_lm.transformer.wte.weight)
        # Head init N(0, 1/sqrt(d + 1)) with d = 64: std 0.124; 64 draws land well inside (0.08, 0.17).
        assert 0.08 < model.score.weight.std().item() < 0.17
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=32, vocab_size=len(tokenizer)))
    gpt2_reward = reward_model_from_causal_lm(gpt2, tokenizer)
    assert isinstance(gpt2_reward, GPT2ForSequenceClassification)
    assert torch.equal(gpt2_reward.transformer.wte.weight, gpt2.transformer.wte.weight)
    assert abs(gpt2_reward.score.weight.std().item() - 1 / math.sqrt(33)) < 0.06


def write_jsonl(path, rows) -> None:
    with gzip.open(path, "wt") if path.suffix == ".gz" else open(path, "w") as file:
        for row in rows:
            file.write((row if isinstance(row, str) else json.dumps(row)) + "\n")


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ({"chosen": "  ", "rejected": "b"}, "line 3: 'chosen' is empty"),
        ({"chosen": "a", "rejected": ""}, "line 3: 'rejected' is empty"),
        ({"chosen": "same", "rejected": "same"}, "line 3: 'chosen' and 'rejected' are identical"),
        ({"chosen": "a"}, "line 3: missing 'rejected'"),
        ('{"chosen": "a", "rejected": ', "line 3: not valid JSON"),
    ],
)
def test_bad_rows_name_the_line(tmp_path, bad_row, message):
    path = tmp_path / "pairs.jsonl.gz"
    write_jsonl(path, [{"chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "a", "rejected": "b"}, bad_row])
    with pytest.raises(ValueError, match=message):
        load_preference_jsonl(path)


def test_rows_in_memory_are_validated_and_prompts_kept():
    with pytest.raises(ValueError, match="row 1: 'chosen' and 'rejected' are identical"):
        preference_dataset([{"chosen": "a", "rejected": "b"}, {"chosen": "x", "rejected": "x"}])
    dataset = preference_dataset(
        [{"prompt": "Q:", "chosen": " 1", "rejected": " 2"}, {"chosen": "a", "rejected": "b"}]
    )
    assert dataset["prompt"] == ["Q:", ""]


def test_split_prompt_of_a_dialogue():
    chosen = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant: fine"
    rejected = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant: go away"
    prompt, chosen_answer, rejected_answer = split_prompt(chosen, rejected)
    assert prompt == "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant:"
    assert (chosen_answer, rejected_answer) == (" fine", " go away")
    assert split_prompt("no marker", "at all") == ("", "no marker", "at all")


def test_load_hh_rlhf_harmless_test_split(shared_data):
    path = shared_data / "preferences" / "harmless-base-test.jsonl.gz"
    implicit = load_preference_jsonl(path)
    assert implicit.num_rows == 2312 and implicit.column_names == ["chosen", "rejected"]
    explicit = load_preference_jsonl(path, explicit_prompt=True)
    assert explicit.num_rows == 2312 and explicit.column_names == ["prompt", "chosen", "rejected"]
    # Splitting is lossless; 2307 pairs share everything up to the last "Assistant:", and in 3 of them one answer
    # is empty after it, so those keep an empty prompt.
    for index in range(0, 2312, 7):
        assert explicit[index]["prompt"] + explicit[index]["chosen"] == implicit[index]["chosen"]
        assert explicit[index]["prompt"] + explicit[index]["rejected"] == implicit[index]["rejected"]
    assert sum(1 for prompt in explicit["prompt"] if prompt) == 2304


def test_arithmetic_preference_pairs():
    pairs = arithmetic_preference_pairs(num_pairs=20, seed=3)
    assert pairs.column_names == ["prompt", "chosen", "rejected", "final_answer"] and pairs.num_rows == 20
    for row in pairs:
        assert row["prompt"].startswith("Question: ") and row["prompt"].endswith("\nAnswer:")
        assert gold_answer(row["chosen"]) == row["final_answer"]
        assert gold_answer(row["rejected"]) != row["final_answer"]
    assert arithmetic_preference_pairs(num_pairs=20, seed=3)["rejected"] == pairs["rejected"]
    preference_dataset(pairs.to_list())  # every pair is a valid preference


def has_even_a_count(index: int, text: str) -> bool:
    return text.count("a") % 2 == 0


def test_sampled_pairs_reject_each_wrong_sample_against_a_right_one_of_its_prompt(tokenizer):
    model, prompts = tiny_causal_lm(tokenizer), ["abc", "gh a", "dd", "hefe b"]
    pairs = sampled_preference_pairs(
        model, tokenizer, prompts, has_even_a_count, num_samples=6, max_new_tokens=5, seed=1
    )
    torch.manual_seed(1)  # the same samples again
    samples = generate_completions(
        model, tokenizer, prompts, max_new_tokens=5, temperature=1.0, num_samples=6, show_progress=False
    )
    expected = 0
    for index, prompt in enumerate(prompts):
        own = samples[index * 6 : (index + 1) * 6]
        right = {text for text in own if has_even_a_count(index, text)}
        wrong = {text for text in own if not has_even_a_count(index, text) and text.strip()}
        rows = [row for row in pairs if row["prompt"] == prompt]
        assert sorted(row["rejected"] for row in rows) == (sorted(wrong) if right else [])
        assert all(row["chosen"] in right for row in rows)
        expected += len(wrong) if right else 0
    assert pairs.column_names == ["prompt", "chosen", "rejected"] and len(pairs) == expected > 0
    preference_dataset(pairs.to_list())  # every pair is a valid preference


def test_sampled_pairs_fall_back_on_the_reference_when_no_sample_is_right(tokenizer):
    model = tiny_causal_lm(tokenizer)
    pairs = sampled_preference_pairs(
        model, tokenizer, ["ab", "cd"], lambda index, text: False, num_samples=3, max_new_tokens=4,
        references=["gold one", "gold two"],
    )  # fmt: skip
    assert set(pairs["chosen"]) == {"gold one", "gold two"} and len(pairs) >= 2
    with pytest.raises(ValueError, match="num_samples >= 2"):
        sampled_preference_pairs(model, tokenizer, ["ab"], has_even_a_count, num_samples=1)
    with pytest.raises(ValueError, match="needs a temperature"):
        generate_completions(model, tokenizer, ["ab"], max_new_tokens=3, num_samples=2)
    with pytest.raises(ValueError, match="temperature must be positive"):
        generate_completions(model, tokenizer, ["ab"], max_new_tokens=3, temperature=0.0)


def test_reward_data_adds_the_policys_own_wrong_answers(tmp_path):
    tokenizer = build_char_tokenizer(string.printable, model_max_length=256)
    folder = tmp_path / "policy"
    tiny_causal_lm(tokenizer, context=256).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    args = PreferenceDataArguments(
        dataset="arithmetic", num_pairs=20, synthetic_difficulty=[1], policy_samples_from=str(folder),
        policy_sample_problems=6, policy_samples_per_problem=2, validation_fraction=0.25,
    )  # fmt: skip
    sampled = policy_answer_pairs(args, seed=0)
    # The problems after the 20 pairs; a random policy answers none right, so each of its answers is rejected
    # against the question's reference solution.
    references = arithmetic_preference_pairs(num_pairs=26, difficulty=1).select(range(20, 26))
    reference = dict(zip(references["prompt"], references["chosen"], strict=True))
    assert len(sampled) >= 6 and all(row["chosen"] == reference[row["prompt"]] for row in sampled)
    splits = load_preference_splits(args, seed=0)
    assert len(splits["train"]) + len(splits["validation"]) == 20 + len(sampled)

    # Any source whose rows carry a prompt, a right answer and its final_answer can be sampled: not hh-rlhf pairs.
    hh_pairs = tmp_path / "pairs.jsonl"
    hh_pairs.write_text(
        "".join(json.dumps({"prompt": "Q", "chosen": " a", "rejected": " b"}) + "\n" for _ in range(3))
    )
    with pytest.raises(ValueError, match=r"--policy_samples_from .* it lacks \['final_answer'\]"):
        load_preference_splits(PreferenceDataArguments(dataset=str(hh_pairs), policy_samples_from=str(folder)), 0)
