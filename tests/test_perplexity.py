"""Corpus perplexity: against brute-force per-token scoring, a uniform model, edge cases, errors, and end to end."""

import math

import pytest
import torch
from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from toolkit import GPTConfig, GPTForCausalLM
from toolkit.evaluation import perplexity_of_dataset, perplexity_of_file, perplexity_of_texts

MODEL_CONTEXT = 32


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """One token per UTF-8 byte plus `<|endoftext|>` (id 256), built offline; tokens = bytes, which makes
    byte-level numbers easy to check by hand."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {char: index for index, char in enumerate(alphabet)} | {"<|endoftext|>": len(alphabet)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")


def tiny_gpt(context: int = MODEL_CONTEXT, width: int = 32, seed: int = 0) -> GPTForCausalLM:
    torch.manual_seed(seed)
    config = GPTConfig(
        vocab_size=257,
        max_position_embeddings=context,
        hidden_size=width,
        num_hidden_layers=2,
        num_attention_heads=2,
    )
    return GPTForCausalLM(config).eval()


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer()


@pytest.fixture(scope="module")
def model():
    return tiny_gpt()


@torch.no_grad()
def next_token_log_prob(model, context: list[int], target: int) -> float:
    """log p(target | context): one forward pass on exactly `context`, read at its last position."""
    logits = model(torch.tensor([context])).logits[0, -1].double()
    return torch.log_softmax(logits, dim=-1)[target].item()


def brute_force_log_likelihood(model, tokens: list[int], window: int, stride: int) -> float:
    """Score each token on its own, with the context the protocol promises it.

    `tokens` starts with the start token. Window ends are `window`, `window + stride`, ... (clipped to the
    last position); a token is scored by the first window ending at or after it, which reads the `window`
    tokens before that end. So token j sees tokens[max(0, end - window) : j].
    """
    last = len(tokens) - 1
    window_ends = list(range(min(window, last), last, stride)) + [last]
    total = 0.0
    for j in range(1, len(tokens)):
        end = next(end for end in window_ends if end >= j)
        total += next_token_log_prob(model, tokens[max(0, end - window) : j], tokens[j])
    return total


def with_start(tokenizer, text: str) -> list[int]:
    return [tokenizer.eos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]


TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\nAll: Speak, speak."  # 79 bytes


@pytest.mark.parametrize("num_tokens", [5, 16, 32, 79])
@pytest.mark.parametrize("window, stride", [(16, 16), (16, 5), (32, 32), (32, 7)])
def test_matches_brute_force(model, tokenizer, num_tokens, window, stride):
    # Byte-level: num_tokens bytes of ASCII text are num_tokens tokens. This covers texts shorter than one
    # window, exactly one or several windows, and a final partial window.
    text = TEXT[:num_tokens]
    result = perplexity_of_texts(
        model, tokenizer, [text], context_length=window, stride=stride, batch_size=3, show_progress=False
    )
    expected = brute_force_log_likelihood(model, with_start(tokenizer, text), window, stride)
    assert result.num_tokens == num_tokens
    assert result.document_log_likelihoods[0] == pytest.approx(expected, rel=1e-5)
    assert result.loss == pytest.approx(-expected / num_tokens, rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(-expected / num_tokens), rel=1e-5)


def test_full_prefix_context_when_text_fits_in_one_window(model, tokenizer):
    # Independent of any window bookkeeping: each token conditioned on everything before it.
    tokens = with_start(tokenizer, TEXT[:20])
    expected = sum(next_token_log_prob(model, tokens[:j], tokens[j]) for j in range(1, len(tokens)))
    result = perplexity_of_texts(model, tokenizer, [TEXT[:20]], context_length=32, show_progress=False)
    assert result.document_log_likelihoods[0] == pytest.approx(expected, rel=1e-5)


def test_stride_one_is_a_fully_sliding_window(model, tokenizer):
    # With stride 1 every token sees exactly the `window` tokens before it (fewer at the start).
    window, tokens = 8, with_start(tokenizer, TEXT[:40])
    expected = sum(
        next_token_log_prob(model, tokens[max(0, j - window) : j], tokens[j]) for j in range(1, len(tokens))
    )
    result = perplexity_of_texts(model, tokenizer, [TEXT[:40]], context_length=window, stride=1, show_progress=False)
    assert result.document_log_likelihoods[0] == pytest.approx(expected, rel=1e-5)


def test_without_start_token_the_first_token_is_not_scored(model, tokenizer):
    tokens = tokenizer(TEXT[:20], add_special_tokens=False)["input_ids"]
    expected = sum(next_token_log_prob(model, tokens[:j], tokens[j]) for j in range(1, len(tokens)))
    result = perplexity_of_texts(model, tokenizer, [TEXT[:20]], add_start_token=False, show_progress=False)
    assert result.num_tokens == 19
    assert result.document_log_likelihoods[0] == pytest.approx(expected, rel=1e-5)
    assert "not scored" in result.protocol


def test_corpus_perplexity_over_documents_of_different_lengths(model, tokenizer):
    texts = [TEXT[:3], TEXT[:70], "", TEXT[10:41]]
    expected = [brute_force_log_likelihood(model, with_start(tokenizer, text), 16, 16) for text in texts if text]
    results = [
        perplexity_of_texts(model, tokenizer, texts, context_length=16, batch_size=size, show_progress=False)
        for size in (1, 4, 64)  # padding must not change anything
    ]
    num_tokens = 3 + 70 + 31
    for result in results:
        assert result.num_documents == 3  # the empty text has nothing to score and is skipped
        assert result.num_tokens == num_tokens
        assert result.document_log_likelihoods == pytest.approx(expected, rel=1e-5)
        assert result.perplexity == pytest.approx(math.exp(-sum(expected) / num_tokens), rel=1e-5)
    mean_of_document_perplexities = sum(
        math.exp(-log_likelihood / n) for log_likelihood, n in zip(expected, (3, 70, 31))
    ) / len(expected)
    assert results[0].perplexity != pytest.approx(mean_of_document_perplexities, rel=1e-3)


def test_uniform_model_scores_the_vocabulary_size(tokenizer):
    uniform = tiny_gpt()
    with torch.no_grad():
        for parameter in uniform.parameters():
            parameter.zero_()  # every logit is 0: p = 1/257 for every token
    text = "It is a truth universally acknowledged,\n that a single man..."
    words = len(text.split())  # no whitespace at either end: the same count as re.split(r"\s+", text)
    result = perplexity_of_texts(uniform, tokenizer, [text], stride=8, show_progress=False)
    vocabulary = 257
    num_bytes = len(text.encode("utf-8"))
    assert result.num_tokens == num_bytes == result.num_bytes
    assert result.num_words == words
    assert result.perplexity == pytest.approx(vocabulary, rel=1e-5)
    assert result.loss == pytest.approx(math.log(vocabulary), rel=1e-5)
    assert result.byte_perplexity == pytest.approx(vocabulary, rel=1e-5)
    assert result.bits_per_byte == pytest.approx(math.log2(vocabulary), rel=1e-5)
    assert result.word_perplexity == pytest.approx(vocabulary ** (num_bytes / words), rel=1e-5)
    one_long_word = perplexity_of_texts(uniform, tokenizer, ["a" * 200], show_progress=False)
    assert one_long_word.word_perplexity == math.inf  # 257 ** 200 overflows a float: reported, not raised


def test_word_count_follows_the_harness_definition(model, tokenizer):
    # re.split(r"\s+") on the original text: leading/trailing whitespace yields empty strings that count.
    result = perplexity_of_texts(model, tokenizer, [" two words\n"], show_progress=False)
    assert result.num_words == 4
    assert result.num_bytes == 11


def test_protocol_is_printed_with_every_number(model, tokenizer):
    result = perplexity_of_texts(model, tokenizer, [TEXT], context_length=16, stride=8, show_progress=False)
    printed = str(result)
    assert "window 16 tokens, stride 8" in result.protocol
    assert f"{result.num_tokens} tokens" in result.protocol
    for line in printed.splitlines()[:3]:
        assert "token" in line or "word" in line or "byte" in line
    assert f"perplexity {result.perplexity:.4f}" in printed
    assert f"{result.num_words} words" in printed and f"{result.num_bytes} bytes" in printed
    assert result.to_dict()["protocol"] == result.protocol
    default = perplexity_of_texts(model, tokenizer, [TEXT], show_progress=False)
    assert "loglikelihood_rolling" in default.protocol and f"window {MODEL_CONTEXT} tokens" in default.protocol


def test_dataset_file_and_path_inputs_agree(model, tokenizer, tmp_path):
    texts = [TEXT[:40], TEXT[40:]]
    expected = perplexity_of_texts(model, tokenizer, texts, show_progress=False)
    from_dataset = perplexity_of_dataset(
        model, tokenizer, Dataset.from_dict({"line": texts}), text_column="line", show_progress=False
    )
    assert from_dataset.perplexity == pytest.approx(expected.perplexity, rel=1e-6)

    (tmp_path / "doc.txt").write_text(TEXT, encoding="utf-8")
    from_file = perplexity_of_file(model, tokenizer, tmp_path / "doc.txt", show_progress=False)
    single = perplexity_of_texts(model, tokenizer, [TEXT], show_progress=False)
    assert from_file.perplexity == pytest.approx(single.perplexity, rel=1e-6)

    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    from_path = perplexity_of_texts(tmp_path / "model", None, texts, show_progress=False)
    assert from_path.perplexity == pytest.approx(expected.perplexity, rel=1e-5)


def test_bad_input_gives_a_clear_error(model, tokenizer, tmp_path):
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        perplexity_of_file(model, tokenizer, tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="No text to score"):
        perplexity_of_texts(model, tokenizer, [])
    with pytest.raises(ValueError, match="No text to score"):
        perplexity_of_texts(model, tokenizer, ["", ""])
    with pytest.raises(ValueError, match=r"context_length=64 is larger than the model's context .* = 32"):
        perplexity_of_texts(model, tokenizer, [TEXT], context_length=64)
    with pytest.raises(ValueError, match=r"stride=0 must be between 1 and context_length=16"):
        perplexity_of_texts(model, tokenizer, [TEXT], context_length=16, stride=0)
    with pytest.raises(ValueError, match=r"stride=17 must be between 1 and context_length=16"):
        perplexity_of_texts(model, tokenizer, [TEXT], context_length=16, stride=17)
    with pytest.raises(ValueError, match="without a tokenizer. Pass tokenizer="):
        perplexity_of_texts(model, None, [TEXT])
    with pytest.raises(ValueError, match="has no column 'text'"):
        perplexity_of_dataset(model, tokenizer, Dataset.from_dict({"line": [TEXT]}))
    model.save_pretrained(tmp_path / "no-tokenizer")
    with pytest.raises(
        ValueError, match=r"No tokenizer could be loaded from .*no-tokenizer.*tokenizer.save_pretrained"
    ):
        perplexity_of_texts(tmp_path / "no-tokenizer", None, [TEXT])


def test_trained_on_shakespeare_evaluated_on_wikitext(shared_data, tokenizer, tmp_path):
    shakespeare = (shared_data / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    data = torch.tensor(tokenizer(shakespeare[:200_000], add_special_tokens=False)["input_ids"])
    model = tiny_gpt(context=64, width=64, seed=1)
    wikitext = "".join((shared_data / "wikitext2" / "wiki.test.raw").open(encoding="utf-8").readlines()[:20])
    (tmp_path / "wiki.txt").write_text(wikitext, encoding="utf-8")
    before = perplexity_of_file(model, tokenizer, tmp_path / "wiki.txt", batch_size=16, show_progress=False)

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        starts = torch.randint(0, len(data) - 64, (8,), generator=generator)
        batch = torch.stack([data[start : start + 64] for start in starts])
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    after = perplexity_of_file(model, tokenizer, tmp_path / "wiki.txt", batch_size=16, show_progress=False)
    numbers = [after.loss, after.perplexity, after.word_perplexity, after.byte_perplexity, after.bits_per_byte]
    assert all(math.isfinite(number) for number in numbers)
    assert after.num_tokens == after.num_bytes == len(wikitext.encode("utf-8"))
    assert after.num_words == len(wikitext.split()) + 2  # the text starts with " = " and ends with "\n"
    assert after.perplexity < before.perplexity  # learning English-ish bytes from Shakespeare helps on Wikipedia
    assert "window 64 tokens, stride 64" in str(after)
