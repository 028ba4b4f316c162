"""PPOTrainer on tiny models: exact first-step KL, what an update changes (full and LoRA), EOS truncation and penalty,
temperature log-probs with left padding, clear errors, exact resume, and a learnable verifiable reward."""

import json
import os
import pickle
import subprocess
import sys
from copy import deepcopy

import datasets
import pytest
import torch
from accelerate import Accelerator
from peft import LoraConfig, get_peft_model
from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

from toolkit import GPTConfig, GPTForCausalLM, GPTForSequenceClassification
from toolkit.rlhf import (
    PPOConfig,
    PPOTrainer,
    TokenValueModel,
    left_pad,
    response_logprobs,
    sequence_scores,
    truncate_after_eos,
)
from toolkit.stopping import TrainingDiverged
from toolkit.tokenization import build_char_tokenizer

CHARACTERS = "abcdefgh "
PROMPTS = ["ab", "cde", "h", "fgh", "abc", "d", "ee", "gha"]


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer(CHARACTERS)  # 9 characters + eos (9), pad (10), unk (11)


def gpt_config(tokenizer, **overrides) -> GPTConfig:
    fields = dict(
        vocab_size=len(tokenizer),
        max_position_embeddings=32,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
    )
    return GPTConfig(**{**fields, **overrides})


def tiny_policy(tokenizer, seed: int = 0, **overrides) -> GPTForCausalLM:
    torch.manual_seed(seed)
    return GPTForCausalLM(gpt_config(tokenizer, **overrides))


def tiny_reward_model(tokenizer, seed: int = 1) -> GPTForSequenceClassification:
    torch.manual_seed(seed)
    return GPTForSequenceClassification(gpt_config(tokenizer, num_labels=1, pad_token_id=tokenizer.pad_token_id))


def starts_with_a(prompts: list[str], responses: list[str]) -> list[float]:
    return [1.0 if response.startswith("a") else 0.0 for response in responses]


def make_config(tmp_path, **overrides) -> PPOConfig:
    fields = dict(
        output_dir=str(tmp_path / "ppo"),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        num_mini_batches=2,  # 8 prompts a step, 2 optimizer steps of 4 (2 micro-batches of 2) per PPO epoch
        num_ppo_epochs=2,
        max_steps=4,
        learning_rate=1e-3,
        max_new_tokens=6,
        temperature=0.9,
        sample_steps=0,
        disable_tqdm=True,
        report_to="none",
    )
    return PPOConfig(**{**fields, **overrides})


def lora(policy: GPTForCausalLM):
    return get_peft_model(policy, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.1))


def parameters(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.named_parameters()}


@pytest.mark.parametrize("use_lora", [False, True], ids=["full", "lora"])
def test_first_rollout_kl_is_exactly_zero(tmp_path, tokenizer, use_lora):
    policy = tiny_policy(tokenizer)
    config = make_config(tmp_path, rollout_forward_batch_size=3)  # scored in chunks of 3, 3 and 2 rows
    trainer = PPOTrainer(config, lora(policy) if use_lora else policy, tokenizer, PROMPTS, reward_fn=starts_with_a)
    rollout = trainer.rollout(trainer.prompt_indices(0))
    assert torch.equal(rollout.logprobs, rollout.ref_logprobs)
    assert (rollout.logprobs[rollout.response_mask.bool()] < 0).all()
    assert trainer.step()["objective/kl"] == 0.0


def test_step_changes_the_policy_and_not_the_reference(tmp_path, tokenizer):
    trainer = PPOTrainer(make_config(tmp_path), tiny_policy(tokenizer), tokenizer, PROMPTS, reward_fn=starts_with_a)
    policy_before, reference_before = parameters(trainer.policy), parameters(trainer.ref_model)
    metrics = trainer.step()
    policy_after, reference_after = parameters(trainer.policy), parameters(trainer.ref_model)
    assert any(not torch.equal(policy_before[name], policy_after[name]) for name in policy_before)
    assert all(torch.equal(reference_before[name], reference_after[name]) for name in reference_before)
    assert not any(parameter.requires_grad for parameter in trainer.ref_model.parameters())
    assert trainer.state.step == 1 and len(trainer.state.history) == 1
    for key in ("objective/scores", "loss/policy", "loss/value", "policy/entropy", "policy/clip_fraction"):
        assert key in metrics
    phases = [f"time/{name}" for name in ("generation", "policy_and_value", "reference", "reward", "update")]
    assert sorted(key for key in metrics if key.startswith("time/")) == sorted(phases)
    assert all(metrics[key] > 0 for key in phases)
    step_seconds = metrics["episodes"] / metrics["episodes_per_second"]  # one step, 8 episodes
    assert sum(metrics[key] for key in phases) <= step_seconds


def test_lora_step_changes_only_the_adapter(tmp_path, tokenizer):
    base = tiny_policy(tokenizer)
    probe = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        base_logits = base(probe).logits
    policy = lora(base)
    trainer = PPOTrainer(make_config(tmp_path), policy, tokenizer, PROMPTS, reward_fn=starts_with_a)
    assert trainer.ref_model is None  # the reference is the same model with the adapter disabled
    before = parameters(trainer.policy)
    head_before = trainer.unwrapped_model.value_head.weight.detach().clone()
    trainer.step()
    after = parameters(trainer.policy)
    adapter = [name for name in before if "lora_" in name]
    frozen = [name for name in before if "lora_" not in name]
    assert adapter and frozen
    assert any(not torch.equal(before[name], after[name]) for name in adapter)
    assert all(torch.equal(before[name], after[name]) for name in frozen)
    assert not torch.equal(head_before, trainer.unwrapped_model.value_head.weight)
    with torch.no_grad(), trainer.reference() as reference:
        torch.testing.assert_close(reference(probe).logits, base_logits, atol=0, rtol=0)


def test_truncate_after_eos():
    eos, pad = 9, 10
    responses = torch.tensor([[1, 9, 3, 4], [1, 2, 3, 4], [9, 5, 9, 6]])
    truncated, mask, has_eos = truncate_after_eos(responses, eos, pad)
    assert truncated.tolist() == [[1, 9, 10, 10], [1, 2, 3, 4], [9, 10, 10, 10]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert has_eos.tolist() == [True, False, True]


def test_missing_eos_penalty_and_decoded_responses(tmp_path, tokenizer):
    seen = []

    def constant_reward(prompts, responses):
        seen.append((prompts, responses))
        return [1.0] * len(responses)

    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    ids = tokenizer(["ab", "abcd", "h"], add_special_tokens=False)["input_ids"]
    responses = torch.tensor([ids[0] + [eos, pad], ids[1], [eos, pad, pad, pad]])
    responses, response_mask, has_eos = truncate_after_eos(responses, eos, pad)
    queries, query_mask = left_pad([[0], [1], [2]], pad)
    for penalty, expected in ((None, [1.0, 1.0, 1.0]), (2.0, [1.0, -1.0, 1.0])):
        config = make_config(tmp_path, missing_eos_penalty=penalty)
        trainer = PPOTrainer(config, tiny_policy(tokenizer), tokenizer, PROMPTS, reward_fn=constant_reward)
        scores = trainer.score_responses([0, 1, 2], queries, query_mask, responses, response_mask, has_eos)
        assert scores.tolist() == expected
    assert seen[-1] == (["ab", "cde", "h"], ["ab", "abcd", ""])


@pytest.mark.parametrize("architecture", ["gpt2", "ours"])
def test_logprobs_with_temperature_and_left_padding_equal_a_hand_computation(architecture):
    vocab, pad, temperature = 40, 0, 0.7
    torch.manual_seed(0)
    if architecture == "gpt2":
        # GPT-2 does not derive positions from the attention mask: left padding needs explicit position ids.
        model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=32, vocab_size=vocab)).eval()
    else:
        model = GPTForCausalLM(
            GPTConfig(
                vocab_size=vocab,
                max_position_embeddings=32,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
            )
        ).eval()
    g = torch.Generator().manual_seed(1)
    queries = [torch.randint(1, vocab, (n,), generator=g).tolist() for n in (2, 6, 4)]
    responses = torch.randint(1, vocab, (3, 5), generator=g)
    query_ids, query_mask = left_pad(queries, pad)
    input_ids = torch.cat([query_ids, responses], dim=1)
    attention_mask = torch.cat([query_mask, torch.ones_like(responses)], dim=1)
    with torch.no_grad():
        batched = response_logprobs(model, input_ids, attention_mask, query_ids.shape[1], temperature)
        for row, query in enumerate(queries):
            alone = torch.tensor([query + responses[row].tolist()])  # no padding at all
            logits = model(alone).logits[0, len(query) - 1 : -1] / temperature  # (R, V): predicts the response
            log_probs = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
            expected = log_probs[torch.arange(5), responses[row]]
            torch.testing.assert_close(batched[row], expected, atol=1e-5, rtol=0)


def test_reward_model_tokenizer_must_match_the_policy(tmp_path, tokenizer):
    other = build_char_tokenizer("abcdefghij ")
    with pytest.raises(
        ValueError, match=r"reward model's tokenizer .*14 tokens.*differs from the policy's tokenizer .*12 tokens"
    ):
        PPOTrainer(
            make_config(tmp_path),
            tiny_policy(tokenizer),
            tokenizer,
            PROMPTS,
            reward_model=tiny_reward_model(tokenizer),
            reward_tokenizer=other,
        )


def test_query_plus_response_longer_than_the_context_is_an_error(tmp_path, tokenizer):
    prompts = ["ab", "a" * 30]
    with pytest.raises(ValueError, match=r"Prompt 1 has 30 tokens.*36 positions.*policy's context is 32"):
        PPOTrainer(make_config(tmp_path), tiny_policy(tokenizer), tokenizer, prompts, reward_fn=starts_with_a)
    short_reward_model = GPTForSequenceClassification(gpt_config(tokenizer, num_labels=1, max_position_embeddings=8))
    with pytest.raises(ValueError, match="reward model's context is 8"):
        PPOTrainer(make_config(tmp_path), tiny_policy(tokenizer), tokenizer, PROMPTS, reward_model=short_reward_model)


def test_a_policy_or_value_model_with_nothing_to_train_is_an_error(tmp_path, tokenizer):
    frozen = tiny_policy(tokenizer).requires_grad_(False)
    with pytest.raises(ValueError, match="policy has no trainable parameters"):
        PPOTrainer(make_config(tmp_path), frozen, tokenizer, PROMPTS, reward_fn=starts_with_a)
    frozen_value = tiny_reward_model(tokenizer).requires_grad_(False)
    with pytest.raises(ValueError, match="value_model has no trainable parameters"):
        PPOTrainer(
            make_config(tmp_path),
            tiny_policy(tokenizer),
            tokenizer,
            PROMPTS,
            reward_model=tiny_reward_model(tokenizer),
            value_model=frozen_value,
        )


def test_gpt2_with_pad_equal_to_eos_scores_at_the_eos_token(tmp_path, tokenizer):
    """GPT-2's usual setup reuses EOS as the pad token: masks, not pad ids, must tell padding from a final EOS."""
    gpt2_tokenizer = deepcopy(tokenizer)
    gpt2_tokenizer.pad_token = gpt2_tokenizer.eos_token
    eos = gpt2_tokenizer.eos_token_id
    config = dict(n_layer=2, n_head=2, n_embd=32, n_positions=32, vocab_size=len(tokenizer), eos_token_id=eos)
    torch.manual_seed(0)
    policy = GPT2LMHeadModel(GPT2Config(**config))
    reward_model = GPT2ForSequenceClassification(GPT2Config(**config, num_labels=1, pad_token_id=eos)).eval()
    trainer = PPOTrainer(
        make_config(tmp_path, max_new_tokens=12),
        policy,
        gpt2_tokenizer,
        PROMPTS,
        reward_model=reward_model,
        reward_tokenizer=gpt2_tokenizer,
    )
    rollout = trainer.rollout(trainer.prompt_indices(0))
    assert rollout.has_eos.any()
    for row in range(len(PROMPTS)):
        query = rollout.queries[row][rollout.query_mask[row].bool()]
        response = rollout.responses[row][rollout.response_mask[row].bool()]
        alone = torch.cat([query, response])[None]  # ends with EOS when the response stopped
        with torch.no_grad():
            expected = reward_model.score(reward_model.transformer(alone).last_hidden_state)[0, -1, 0]
        torch.testing.assert_close(rollout.scores[row], expected, atol=1e-5, rtol=0)


def test_token_values_at_the_last_token_equal_the_reward_model_score(tokenizer):
    reward_model = tiny_reward_model(tokenizer).eval()
    input_ids, attention_mask = left_pad([[1, 2, 3], [4, 5, 6, 7, 8]], tokenizer.pad_token_id)
    with torch.no_grad():
        pooled = reward_model(input_ids=input_ids, attention_mask=attention_mask).logits.squeeze(-1)
        per_token = TokenValueModel(reward_model)(input_ids, attention_mask)
    torch.testing.assert_close(per_token[:, -1], pooled, atol=1e-6, rtol=0)
    torch.testing.assert_close(sequence_scores(reward_model, input_ids, attention_mask), pooled, atol=1e-6, rtol=0)


def test_dropout_is_off_in_every_model(tmp_path, tokenizer):
    policy = tiny_policy(tokenizer, dropout=0.5, attention_dropout=0.5)
    trainer = PPOTrainer(make_config(tmp_path), policy, tokenizer, PROMPTS, reward_fn=starts_with_a)
    probe = torch.tensor([[1, 2, 3, 4, 5, 6]])
    trainer.policy.train()
    with torch.no_grad():
        assert torch.equal(trainer.policy(probe).logits, trainer.policy(probe).logits)


def test_reward_fn_receives_the_other_dataset_columns(tmp_path, tokenizer):
    dataset = datasets.Dataset.from_dict({"prompt": ["ab", "cd", "ef", "gh"], "answer": ["a", "b", "c", "d"]})
    calls = []

    def exact_match(prompts, responses, answer):
        calls.append(list(zip(prompts, answer)))
        return [float(response.strip() == gold) for response, gold in zip(responses, answer)]

    config = make_config(
        tmp_path, per_device_train_batch_size=4, gradient_accumulation_steps=1, num_mini_batches=1, max_steps=1
    )
    PPOTrainer(config, tiny_policy(tokenizer), tokenizer, dataset, reward_fn=exact_match).step()
    gold = dict(zip(dataset["prompt"], dataset["answer"]))
    assert sorted(calls[0]) == sorted(gold.items())


def test_checkpoint_and_resume_continue_with_identical_state(tmp_path, tokenizer):
    def trainer():
        config = make_config(tmp_path, adaptive_kl=True, kl_target=0.01, kl_horizon=100, kl_estimator="k3")
        return PPOTrainer(
            config,
            tiny_policy(tokenizer),
            tokenizer,
            PROMPTS,
            reward_model=tiny_reward_model(tokenizer),
            value_model=tiny_reward_model(tokenizer),
            reward_tokenizer=tokenizer,
        )

    first = trainer()
    first.step()
    checkpoint = first.save_checkpoint()
    assert checkpoint.name == "checkpoint-1"
    assert (checkpoint / "policy" / "config.json").is_file() and (checkpoint / "value" / "config.json").is_file()
    first.step()
    first.step()

    resumed = trainer()
    resumed.load_checkpoint(checkpoint)
    assert resumed.state.step == 1
    resumed.step()
    resumed.step()

    assert resumed.kl_controller.value == first.kl_controller.value != 0.05
    assert resumed.scheduler.get_last_lr() == first.scheduler.get_last_lr()
    expected, actual = parameters(first.unwrapped_model), parameters(resumed.unwrapped_model)
    assert all(torch.equal(expected[name], actual[name]) for name in expected)

    def without_timing(history):
        return [
            {key: value for key, value in metrics.items() if not key.startswith(("episodes_per_second", "time/"))}
            for metrics in history
        ]

    assert without_timing(resumed.state.history) == without_timing(first.state.history)


def test_train_saves_every_save_steps_and_resumes_from_a_checkpoint(tmp_path, tokenizer):
    def trainer(output_dir):
        config = make_config(tmp_path, output_dir=str(output_dir), max_steps=3, save_steps=2)
        return PPOTrainer(config, tiny_policy(tokenizer), tokenizer, PROMPTS, reward_fn=starts_with_a)

    first = trainer(tmp_path / "first")
    first.train()
    checkpoint = tmp_path / "first" / "checkpoint-2"
    assert (checkpoint / "policy" / "model.safetensors").is_file()
    resumed = trainer(tmp_path / "resumed")
    history = resumed.train(resume_from_checkpoint=checkpoint)
    assert [metrics["step"] for metrics in history] == [1, 2, 3]
    assert len((tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()) == 3
    expected, actual = parameters(first.unwrapped_model), parameters(resumed.unwrapped_model)
    assert all(torch.equal(expected[name], actual[name]) for name in expected)


DISTRIBUTED_SCRIPT = """
import json, sys, torch
from toolkit import GPTConfig, GPTForCausalLM
from toolkit.rlhf import PPOConfig, PPOTrainer
from toolkit.tokenization import build_char_tokenizer

tokenizer = build_char_tokenizer("abcdefgh ")
torch.manual_seed(0)
policy = GPTForCausalLM(GPTConfig(vocab_size=len(tokenizer), max_position_embeddings=32, hidden_size=32,
                                  num_hidden_layers=2, num_attention_heads=2))
scores = []
def length_reward(prompts, responses):
    scores.append([float(len(response)) for response in responses])
    return scores[-1]
config = PPOConfig(output_dir=sys.argv[1], per_device_train_batch_size=1, gradient_accumulation_steps=2,
                   num_mini_batches=2, num_ppo_epochs=1, max_steps=2, learning_rate=1e-3, max_new_tokens=5,
                   disable_tqdm=True, report_to="none", use_cpu=True)
prompts = ["ab", "cde", "h", "fgh", "abc", "d", "ee", "gha"]
trainer = PPOTrainer(config, policy, tokenizer, prompts, reward_fn=length_reward)
history = trainer.train()
result = {
    "prompt_indices": [trainer.prompt_indices(step) for step in range(2)],
    "scores": scores,
    "history": history,
    "parameter_sum": sum(parameter.double().sum().item() for parameter in trainer.unwrapped_model.parameters()),
}
with open(f"{sys.argv[1]}/rank{trainer.accelerator.process_index}.json", "w") as file:
    json.dump(result, file)
"""


@pytest.mark.slow
def test_two_processes_split_prompts_sync_weights_and_average_metrics_per_example(tmp_path):
    script = tmp_path / "ppo_two_processes.py"
    script.write_text(DISTRIBUTED_SCRIPT)
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script), str(tmp_path)]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=300)
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for step in range(2):
        # The step's global batch is 8 distinct prompts: 4 per process.
        assert sorted(ranks[0]["prompt_indices"][step] + ranks[1]["prompt_indices"][step]) == list(range(8))
        all_scores = ranks[0]["scores"][step] + ranks[1]["scores"][step]
        for result in ranks:
            assert result["history"][step]["objective/scores"] == pytest.approx(sum(all_scores) / 8)
    assert ranks[0]["parameter_sum"] == ranks[1]["parameter_sum"]


def test_training_raises_a_verifiable_reward(tmp_path, tokenizer):
    config = make_config(
        tmp_path,
        per_device_train_batch_size=4,
        num_mini_batches=2,
        num_ppo_epochs=4,
        max_steps=25,
        learning_rate=3e-3,
        temperature=1.0,
        kl_coef=0.01,
        sample_steps=10,
    )
    trainer = PPOTrainer(config, tiny_policy(tokenizer), tokenizer, PROMPTS * 2, reward_fn=starts_with_a)
    history = trainer.train()
    scores = [metrics["objective/scores"] for metrics in history]
    # Chance of starting with "a" is about 1/12; after 25 steps most responses should.
    assert sum(scores[:3]) / 3 < 0.3
    assert sum(scores[-5:]) / 5 > 0.7
    assert history[-1]["objective/kl"] > 0
    output = tmp_path / "ppo"
    assert (output / "training_curves.png").stat().st_size > 0
    assert len((output / "metrics.jsonl").read_text().splitlines()) == 25
    assert json.loads((output / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 25
    assert (output / "policy" / "config.json").is_file() and (output / "value_head.safetensors").is_file()
    table = trainer.sample_table(trainer.last_rollout)
    assert table.splitlines()[0].split() == ["query", "|", "response", "|", "score"]


def test_lora_policy_with_a_value_model_learns(tmp_path, tokenizer):
    """A LoRA policy with a separate (sequence-classification) value model, k3 and adaptive KL: the reward rises."""
    config = make_config(
        tmp_path,
        per_device_train_batch_size=4,
        num_mini_batches=2,
        num_ppo_epochs=4,
        max_steps=30,
        learning_rate=1e-2,
        temperature=1.0,
        kl_coef=0.01,
        kl_estimator="k3",
        adaptive_kl=True,
        kl_target=2.0,
        kl_horizon=1000,
    )
    # LoRA leaves the tied embeddings frozen, and at the usual init (std 0.02) they bound a tiny model's logits to
    # about +-0.6: no adapter could make one token likely. A larger init gives the frozen LM head room.
    policy = lora(tiny_policy(tokenizer, initializer_range=0.2))
    trainer = PPOTrainer(
        config, policy, tokenizer, PROMPTS * 2, reward_fn=starts_with_a, value_model=tiny_reward_model(tokenizer)
    )
    scores = [metrics["objective/scores"] for metrics in trainer.train()]
    assert sum(scores[:5]) / 5 < 0.3
    assert sum(scores[-5:]) / 5 > 0.7


def test_activation_checkpointing_changes_memory_not_the_numbers(tmp_path, tokenizer):
    trained = {}
    for checkpointing in (False, True):
        config = make_config(tmp_path, max_steps=1, activation_checkpointing=checkpointing)
        trainer = PPOTrainer(config, lora(tiny_policy(tokenizer)), tokenizer, PROMPTS, reward_fn=starts_with_a)
        trainer.step()
        trained[checkpointing] = parameters(trainer.policy)
    assert trained[True].keys() == trained[False].keys()
    for name, tensor in trained[False].items():
        assert torch.allclose(trained[True][name], tensor, atol=1e-6), name


def test_save_total_limit_keeps_the_newest_checkpoints(tmp_path, tokenizer):
    config = make_config(tmp_path, max_steps=4, save_steps=1, save_total_limit=2)
    PPOTrainer(config, tiny_policy(tokenizer), tokenizer, PROMPTS, reward_fn=starts_with_a).train()
    assert sorted(path.name for path in (tmp_path / "ppo").glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"per_device_train_batch_size": 0}, "--per_device_train_batch_size must be at least 1"),
        ({"num_mini_batches": 0}, "--num_mini_batches must be at least 1"),
        ({"num_ppo_epochs": 0}, "--num_ppo_epochs must be at least 1"),
        ({"max_steps": 0}, "--max_steps 0 trains nothing"),
        ({"temperature": 0.0}, "temperature must be > 0"),
    ],
)
def test_settings_that_cannot_train_are_refused_by_name(tmp_path, setting, message):
    with pytest.raises(ValueError, match=message):
        make_config(tmp_path, **setting)


def test_processes_launched_together_that_each_set_up_alone_are_refused(tmp_path, tokenizer, monkeypatch):
    """Each would run the whole job (N copies writing one folder): launched by torchrun without --use_cpu on CPU."""
    config = make_config(tmp_path)  # (TrainingArguments resets accelerate's state as it is made)
    accelerator = Accelerator(cpu=True)  # one process, as each of them sees itself
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="launched as 2 processes, but each one set itself up alone .*--use_cpu true"):
        PPOTrainer(
            config, tiny_policy(tokenizer), tokenizer, PROMPTS, reward_fn=starts_with_a, accelerator=accelerator
        )


class Payload:
    """What a crafted checkpoint could hold: unpickling it runs code (here, it creates a file)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_resuming_never_unpickles_what_a_checkpoint_holds(tmp_path, tokenizer):
    config = make_config(tmp_path, max_steps=2, save_steps=1)
    PPOTrainer(config, tiny_policy(tokenizer), tokenizer, PROMPTS, reward_fn=starts_with_a).train()
    checkpoint = tmp_path / "ppo" / "checkpoint-1"
    assert not list(checkpoint.glob("*.pkl"))  # nothing pickled is written
    ran = tmp_path / "payload-ran"
    (checkpoint / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(Payload(ran)))  # what accelerate would load
    torch.save({"state": Payload(ran)}, checkpoint / "optimizer.pt")
    resumed = PPOTrainer(config, tiny_policy(tokenizer), tokenizer, PROMPTS, reward_fn=starts_with_a)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        resumed.load_checkpoint(checkpoint)
    assert not ran.exists()


FAULTS_AFTER_PPO_TRAINER = """
import resource, sys
import torch
from toolkit import GPTConfig, GPTForCausalLM
from toolkit.rlhf import PPOConfig, PPOTrainer
from toolkit.tokenization import build_char_tokenizer

tokenizer = build_char_tokenizer("abc")
policy = GPTForCausalLM(GPTConfig(vocab_size=len(tokenizer), max_position_embeddings=16, hidden_size=16,
                                  num_hidden_layers=1, num_attention_heads=1))
config = PPOConfig(output_dir=sys.argv[1], per_device_train_batch_size=2, num_mini_batches=1, max_new_tokens=2,
                   report_to="none", disable_tqdm=True, reuse_freed_memory=sys.argv[2] == "true")
PPOTrainer(config, policy, tokenizer, ["ab", "c"], reward_fn=lambda prompts, responses: [0.0] * len(prompts))

def faults_of_four_blocks():
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        block = torch.ones(2**24)  # 64 MB: above glibc's largest mmap threshold (32 MB)
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

for _ in range(2):  # the first blocks may grow the heap (under load, not always on the first round)
    faults_of_four_blocks()
print(faults_of_four_blocks())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator settings")
def test_a_cpu_trainer_reuses_freed_memory_instead_of_faulting_it_in_again(tmp_path):
    def faults(reuse: str) -> int:
        command = [sys.executable, "-c", FAULTS_AFTER_PPO_TRAINER, str(tmp_path / reuse), reuse]
        finished = subprocess.run(command, capture_output=True, text=True, check=True)
        return int(finished.stdout.split()[-1])

    # 4 x 64 MB of 4 KiB pages is 65,536 faults when every free goes back to the OS.
    assert faults("false") > 30_000
    assert faults("true") < 1_000


def test_a_ppo_run_whose_training_diverges_fails_naming_the_step(tmp_path, tokenizer):
    trainer = PPOTrainer(
        make_config(tmp_path, learning_rate=1e30), tiny_policy(tokenizer), tokenizer, PROMPTS, reward_fn=starts_with_a
    )
    with pytest.raises(TrainingDiverged, match=r"Training diverged: the loss (policy|value) is nan at step \d"):
        trainer.train()
    assert not (tmp_path / "ppo" / "policy").exists()  # nothing saved as the trained policy
