"""Corpus BLEU / chrF via sacreBLEU: WMT17 reference scores, hand-computed cases, generation, errors."""

import math

import pytest
import torch
from transformers import GPT2TokenizerFast

from toolkit import GPTConfig, GPTForCausalLM
from toolkit.evaluation import bleu_score, bleu_score_files, generate_and_score_bleu
from toolkit.generation import generate_greedy

SIGNATURE_13A = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"


@pytest.mark.parametrize(
    "system, bleu, chrf, precisions",
    [("uedin-nmt", 28.30, 57.72, [59.9, 34.0, 21.8, 14.4]), ("online-B", 26.65, 56.26, [58.8, 32.5, 20.2, 13.1])],
)
def test_wmt17_systems_match_published_sacrebleu_scores(shared_data, system, bleu, chrf, precisions):
    # Reference values: shared/data/README.md (sacreBLEU 2.6.0 defaults; BLEU also equals mteval-v13a.pl).
    mt = shared_data / "mt"
    result = bleu_score_files(mt / f"newstest2017-ende.{system}.de", mt / "newstest2017-ende.ref.de")
    assert round(result.bleu, 2) == bleu
    assert round(result.chrf, 2) == chrf
    assert [round(precision, 1) for precision in result.precisions] == precisions
    assert result.bleu_signature == SIGNATURE_13A
    assert result.chrf_signature.startswith("nrefs:1|case:mixed|") and "nc:6|nw:0" in result.chrf_signature
    assert result.num_segments == 3004 and result.reference_length == 61287
    assert f"BLEU {bleu:.2f}" in str(result) and SIGNATURE_13A in str(result) and f"chrF {chrf:.2f}" in str(result)


def test_hand_computed_bleu_with_brevity_penalty():
    # 13a tokens: hyp "the cat sat on the mat" (6), ref "the cat sat on a red mat" (7).
    # Clipped n-gram matches: 1-grams 5/6 (the second "the" is unmatched), 2-grams 3/5 (the cat, cat sat, sat on),
    # 3-grams 2/4, 4-grams 1/3; brevity penalty exp(1 - 7/6).
    result = bleu_score(["the cat sat on the mat"], ["the cat sat on a red mat"])
    geometric_mean = (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** (1 / 4)
    assert result.bleu == pytest.approx(100 * math.exp(1 - 7 / 6) * geometric_mean, abs=1e-9)
    assert result.precisions == pytest.approx([100 * 5 / 6, 100 * 3 / 5, 100 * 2 / 4, 100 * 1 / 3])
    assert result.brevity_penalty == pytest.approx(math.exp(1 - 7 / 6))
    assert (result.hypothesis_length, result.reference_length) == (6, 7)


def test_tokenize_options():
    # char: "abcde" vs "abcdf" match 4/5 1-grams, 3/4 2-grams, 2/3 3-grams, 1/2 4-grams.
    char = bleu_score(["abcde"], ["abcdf"], tokenize="char")
    assert char.bleu == pytest.approx(100 * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** (1 / 4), abs=1e-9)
    assert "tok:char" in char.bleu_signature
    # zh splits Chinese characters; 13a sees one 7-character word, too short for any 2-gram, so BLEU 0.
    sentence = "我爱北京天安门"
    assert bleu_score([sentence], [sentence], tokenize="zh").bleu == pytest.approx(100.0)
    assert bleu_score([sentence], [sentence], tokenize="13a").bleu == 0.0
    intl = bleu_score(["Hello, world!"], ["Hello, world!"], tokenize="intl")
    assert intl.bleu == pytest.approx(100.0) and "tok:intl" in intl.bleu_signature
    assert "case:lc" in bleu_score(["A"], ["a"], lowercase=True).bleu_signature


def test_several_references():
    # A hypothesis equal to one of its references matches every n-gram; the closest reference length is used.
    result = bleu_score(["the cat sat on the mat"], [["a dog", "the cat sat on the mat"]])
    assert result.bleu == pytest.approx(100.0)
    assert "nrefs:2" in result.bleu_signature
    # Two segments with different numbers of references: brevity penalty from 7 hypothesis vs 6 + 4 reference
    # tokens, all n-grams matched.
    varying = bleu_score(["the cat sat on the mat", "x"], [["a", "the cat sat on the mat"], ["x y z w"]])
    assert varying.bleu == pytest.approx(100 * math.exp(1 - 10 / 7))
    assert "nrefs:var" in varying.bleu_signature


def test_several_reference_files(tmp_path):
    (tmp_path / "hyp.txt").write_text("the cat sat on the mat\nhello there\n", encoding="utf-8")
    (tmp_path / "ref1.txt").write_text("a cat\nhello there\n", encoding="utf-8")
    (tmp_path / "ref2.txt").write_text("the cat sat on the mat\nhi\n", encoding="utf-8")
    from_files = bleu_score_files(tmp_path / "hyp.txt", [tmp_path / "ref1.txt", tmp_path / "ref2.txt"])
    from_lists = bleu_score(
        ["the cat sat on the mat", "hello there"], [["a cat", "the cat sat on the mat"], ["hello there", "hi"]]
    )
    assert from_files == from_lists
    assert "nrefs:2" in from_files.bleu_signature


def test_bad_input_gives_a_clear_error(tmp_path):
    (tmp_path / "hyp.txt").write_text("one\ntwo\nthree\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("one\ntwo\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=r"hyp.txt has 3 lines but the reference file .*ref.txt has 2 lines"):
        bleu_score_files(tmp_path / "hyp.txt", tmp_path / "ref.txt")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        bleu_score_files(tmp_path / "empty.txt", tmp_path / "ref.txt")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        bleu_score_files(tmp_path / "hyp.txt", tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        bleu_score(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="No hypotheses to score"):
        bleu_score([], [])
    with pytest.raises(ValueError, match="tokenize='moses' is not a sacreBLEU tokenizer"):
        bleu_score(["a"], ["a"], tokenize="moses")


@pytest.fixture
def gpt2_tokenizer(shared_data):
    tokenizer_dir = shared_data / "gpt2-tokenizer"
    return GPT2TokenizerFast(vocab=str(tokenizer_dir / "encoder.json"), merges=str(tokenizer_dir / "vocab.bpe"))


def test_generate_and_score(gpt2_tokenizer):
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=len(gpt2_tokenizer),
        max_position_embeddings=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
    )
    model = GPTForCausalLM(config)
    prompts = ["English: Good morning.\nGerman:", "English: Thank you very much for the help.\nGerman:", "English:"]
    references = ["Guten Morgen.", "Vielen Dank für die Hilfe.", "Hallo"]

    result, hypotheses = generate_and_score_bleu(
        model, gpt2_tokenizer, prompts, references, max_new_tokens=12, batch_size=2, show_progress=False
    )
    assert len(hypotheses) == 3 and all("\n" not in hypothesis for hypothesis in hypotheses)
    assert result == bleu_score(hypotheses, references)
    assert gpt2_tokenizer.pad_token is None and gpt2_tokenizer.padding_side == "right"  # the caller's is untouched

    # Left padding must not change what a prompt generates: batched and one-by-one greedy outputs agree.
    one_by_one = generate_greedy(model, gpt2_tokenizer, prompts, max_new_tokens=12, batch_size=1, show_progress=False)
    batched = generate_greedy(model, gpt2_tokenizer, prompts, max_new_tokens=12, batch_size=3, show_progress=False)
    assert batched == one_by_one
    with pytest.raises(ValueError, match="3 prompts but 2 references"):
        generate_and_score_bleu(model, gpt2_tokenizer, prompts, references[:2])
