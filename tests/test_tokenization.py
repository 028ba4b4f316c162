import json
import shutil
import subprocess

import datasets
import pytest
from transformers import AutoTokenizer

from toolkit import GPTConfig, GPTForCausalLM
from toolkit.data import token_stream, tokenize_texts
from toolkit.data.packing import LONG_TEXT, text_pieces
from toolkit.loading import load_gpt2_tokenizer, load_tokenizer
from toolkit.tokenization import (
    EOS_TOKEN,
    PAD_TOKEN,
    UNK_TOKEN,
    build_char_tokenizer,
    check_tokenizer_fits,
    train_bpe_tokenizer,
)
from toolkit.training.setup import corpus_texts

CORPUS = [
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n",
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n",
    "All:\nResolved. resolved.\n\n  Indented line,   with   runs of spaces.\tAnd a tab.\n",
]
SAMPLE = "First Citizen:\n  Speak,  speak!\n\nAll:\tResolved.\n"


def small_char_tokenizer(**kwargs):
    return build_char_tokenizer(CORPUS + [SAMPLE], **kwargs)


def small_bpe_tokenizer(**kwargs):
    return train_bpe_tokenizer(CORPUS, vocab_size=300, min_frequency=1, **kwargs)


def test_char_tokenizer_round_trips_text_with_newlines_and_spaces():
    tokenizer = small_char_tokenizer()
    ids = tokenizer(SAMPLE)["input_ids"]
    assert len(ids) == len(SAMPLE)  # one id per character
    assert tokenizer.decode(ids) == SAMPLE
    assert tokenizer.convert_ids_to_tokens(ids[:5]) == list("First")


def test_char_tokenizer_maps_unknown_characters_to_unk():
    tokenizer = small_char_tokenizer()
    ids = tokenizer("Speak é")["input_ids"]
    assert ids[-1] == tokenizer.unk_token_id
    assert tokenizer.decode(ids) == f"Speak {UNK_TOKEN}"
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Speak "


def test_char_tokenizer_on_tiny_shakespeare(shared_data):
    text = (shared_data / "tinyshakespeare" / "input.txt").read_text()
    tokenizer = build_char_tokenizer(text, model_max_length=256)
    assert len(tokenizer) == 65 + 3
    # nanoGPT's shakespeare_char ids: sorted characters, newline first; the special tokens come after them.
    assert tokenizer.convert_tokens_to_ids(["\n", " ", "A", "z"]) == [0, 1, 13, 64]
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token) == (EOS_TOKEN, PAD_TOKEN, UNK_TOKEN)
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id) == (65, 66, 67)
    excerpt = text[:3000]
    assert tokenizer.decode(tokenizer(excerpt)["input_ids"]) == excerpt
    assert tokenizer.model_max_length == 256
    assert len(tokenizer(excerpt, truncation=True)["input_ids"]) == 256


def test_bpe_round_trips_any_text():
    tokenizer = small_bpe_tokenizer()
    assert len(tokenizer) <= 300
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id) == (0, 1)
    # Byte-level: characters never seen in training still round-trip exactly.
    for text in (SAMPLE, "  leading spaces\n\n\ttabs and unicode: café, 日本\n", ""):
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(ids) == text
    assert len(tokenizer(SAMPLE)["input_ids"]) < len(SAMPLE)  # merges were learned
    assert tokenizer(f"Speak.{EOS_TOKEN}")["input_ids"][-1] == tokenizer.eos_token_id


def test_bpe_trains_from_files(tmp_path):
    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text("".join(CORPUS))
    tokenizer = train_bpe_tokenizer(files=[corpus_file], vocab_size=300, min_frequency=1)
    assert 256 < len(tokenizer) <= 300
    assert tokenizer.decode(tokenizer(SAMPLE)["input_ids"]) == SAMPLE
    with pytest.raises(ValueError, match="exactly one"):
        train_bpe_tokenizer(CORPUS, files=[corpus_file])


def test_gpt2_tokenizer_from_openai_files(shared_data):
    tokenizer = load_gpt2_tokenizer(shared_data / "gpt2-tokenizer")
    assert tokenizer("Hello world")["input_ids"] == [15496, 995]
    assert tokenizer(" Hello world")["input_ids"] == [18435, 995]
    assert tokenizer(f"a{EOS_TOKEN}")["input_ids"][-1] == 50256
    # Default pad reuses EOS, so the vocabulary still fits GPT-2's 50257 embeddings.
    assert len(tokenizer) == 50257
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == 50256
    assert tokenizer.model_max_length == 1024
    text = "Tokenizers: round trip?\n\n  Yes,  exactly. café 日本"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_gpt2_tokenizer_from_hugging_face_file_names_with_dedicated_pad(shared_data, tmp_path):
    shutil.copy(shared_data / "gpt2-tokenizer" / "encoder.json", tmp_path / "vocab.json")
    shutil.copy(shared_data / "gpt2-tokenizer" / "vocab.bpe", tmp_path / "merges.txt")
    tokenizer = load_gpt2_tokenizer(tmp_path, pad_token="<|pad|>", model_max_length=512)
    assert tokenizer("Hello world")["input_ids"] == [15496, 995]
    assert len(tokenizer) == 50258
    assert tokenizer.pad_token_id == 50257
    assert tokenizer.eos_token_id == 50256
    assert tokenizer.model_max_length == 512

    tokenizer.save_pretrained(tmp_path / "saved")
    reloaded = load_gpt2_tokenizer(tmp_path / "saved")  # keeps the saved dedicated pad token
    assert (reloaded.pad_token, reloaded.pad_token_id, len(reloaded)) == ("<|pad|>", 50257, 50258)


def test_gpt2_tokenizer_needs_tokenizer_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="encoder.json"):
        load_gpt2_tokenizer(tmp_path)


@pytest.mark.parametrize("kind", ["char", "bpe", "gpt2"])
def test_save_and_auto_tokenizer_load_give_identical_ids(kind, request, tmp_path):
    if kind == "gpt2":
        tokenizer = load_gpt2_tokenizer(request.getfixturevalue("shared_data") / "gpt2-tokenizer", padding_side="left")
    else:
        builder = small_char_tokenizer if kind == "char" else small_bpe_tokenizer
        tokenizer = builder(model_max_length=64, padding_side="left")
    tokenizer.save_pretrained(tmp_path)

    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded(SAMPLE)["input_ids"] == tokenizer(SAMPLE)["input_ids"]
    assert reloaded.decode(reloaded(SAMPLE)["input_ids"]) == SAMPLE
    assert len(reloaded) == len(tokenizer)
    for attribute in ("eos_token", "pad_token", "pad_token_id", "model_max_length", "padding_side"):
        assert getattr(reloaded, attribute) == getattr(tokenizer, attribute), attribute
    if kind == "gpt2":
        assert load_gpt2_tokenizer(tmp_path)("Hello world")["input_ids"] == [15496, 995]


def test_saved_tokenizers_load_in_a_fresh_interpreter_without_toolkit(python_without_toolkit, tmp_path):
    python, env = python_without_toolkit
    expected = {}
    for name, tokenizer in (("char", small_char_tokenizer()), ("bpe", small_bpe_tokenizer())):
        tokenizer.save_pretrained(tmp_path / name)
        expected[name] = tokenizer(SAMPLE)["input_ids"]
    script = (
        "import json, sys\n"
        "from transformers import AutoTokenizer\n"
        "ids = {}\n"
        "for name in ('char', 'bpe'):\n"
        "    tokenizer = AutoTokenizer.from_pretrained(sys.argv[1] + '/' + name)\n"
        "    ids[name] = tokenizer(sys.argv[2])['input_ids']\n"
        "    assert tokenizer.decode(ids[name]) == sys.argv[2]\n"
        "print(json.dumps(ids))\n"
    )
    result = subprocess.run(
        [*python, "-c", script, str(tmp_path), SAMPLE], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.parametrize("builder", [small_char_tokenizer, small_bpe_tokenizer])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_batched_padding(builder, padding_side):
    tokenizer = builder(padding_side=padding_side)
    texts = ["All:", "First Citizen:\nSpeak."]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    short = tokenizer(texts[0])["input_ids"]
    long = tokenizer(texts[1])["input_ids"]
    padding = [tokenizer.pad_token_id] * (len(long) - len(short))
    expected_short = short + padding if padding_side == "right" else padding + short
    expected_mask = [1] * len(short) + [0] * len(padding)
    if padding_side == "left":
        expected_mask.reverse()
    assert batch["input_ids"].tolist() == [expected_short, long]
    assert batch["attention_mask"].tolist() == [expected_mask, [1] * len(long)]


def test_check_tokenizer_fits_names_the_fix():
    tokenizer = small_char_tokenizer()
    check_tokenizer_fits(tokenizer, GPTConfig(vocab_size=len(tokenizer)))
    check_tokenizer_fits(tokenizer, GPTConfig(vocab_size=len(tokenizer) + 10))  # padded embeddings are fine

    too_small = GPTConfig.from_preset("tiny", vocab_size=len(tokenizer) - 1)
    with pytest.raises(ValueError, match=rf"resize_token_embeddings\(len\(tokenizer\)\).*vocab_size={len(tokenizer)}"):
        check_tokenizer_fits(tokenizer, too_small)

    model = GPTForCausalLM(too_small)
    with pytest.raises(ValueError, match="resize_token_embeddings"):
        check_tokenizer_fits(tokenizer, model)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    check_tokenizer_fits(tokenizer, model)


@pytest.mark.parametrize("kind", ["char", "bpe", "gpt2"])
def test_a_long_text_tokenized_in_pieces_gets_the_ids_of_the_whole_text(kind, request):
    """Packing tokenizes texts longer than LONG_TEXT in pieces (bounded memory); every cut must be invisible."""
    text = "".join(CORPUS + [SAMPLE, "Numbers 12,345 and 6.7e8; it's 'quoted' -- don't! café 日本 \n"]) * 40
    tokenizers = {
        "char": lambda: build_char_tokenizer(text),
        "bpe": small_bpe_tokenizer,
        "gpt2": lambda: load_gpt2_tokenizer(request.getfixturevalue("shared_data") / "gpt2-tokenizer"),
    }
    tokenizer = tokenizers[kind]()
    pieces = list(text_pieces(text, size=7))
    assert len(pieces) > 500 and "".join(pieces) == text
    whole = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert [token for piece in pieces for token in tokenizer(piece)["input_ids"]] == whole

    long_text = text * (LONG_TEXT // len(text) + 2)  # over LONG_TEXT: packing cuts it
    rows = datasets.Dataset.from_dict({"text": [long_text, SAMPLE]})
    stream = token_stream(tokenize_texts(rows, tokenizer, "text"))
    expected = [*tokenizer(long_text)["input_ids"], tokenizer.eos_token_id, *tokenizer(SAMPLE)["input_ids"]]
    assert stream.tolist() == [*expected, tokenizer.eos_token_id]


def test_a_bpe_built_from_long_documents_in_pieces_is_the_one_built_from_the_whole_documents():
    """Pretraining builds its BPE from the texts in packing's pieces (a 100 MB document whole took 8.9 GB)."""
    text = "".join(CORPUS + [SAMPLE, "Numbers 12,345 and 6.7e8; it's 'quoted' -- don't! café 日本 \n"])
    long_text = text * (3 * LONG_TEXT // len(text))
    rows = datasets.Dataset.from_dict({"text": [long_text, SAMPLE, text * 2]})
    assert len(list(corpus_texts(rows, "text"))) > 3  # the long document is cut
    pieces = train_bpe_tokenizer(corpus_texts(rows, "text"), vocab_size=400)
    whole = train_bpe_tokenizer(rows["text"], vocab_size=400)
    assert pieces.backend_tokenizer.to_str() == whole.backend_tokenizer.to_str()


def test_a_text_without_spaces_is_cut_anyway_and_says_so():
    text = "ACGT" * LONG_TEXT  # DNA on one line: no space between two words anywhere
    with pytest.warns(UserWarning, match="without a space between two words .* cut there anyway"):
        pieces = list(text_pieces(text))
    assert "".join(pieces) == text and max(map(len, pieces)) == 2 * LONG_TEXT


def test_load_tokenizer_pads_with_eos_only_when_asked_and_only_without_a_pad(tmp_path):
    bpe = train_bpe_tokenizer(["some text to learn from"] * 20, vocab_size=300)
    bpe.pad_token = None
    bpe.save_pretrained(tmp_path / "no-pad")
    assert load_tokenizer(str(tmp_path / "no-pad")).pad_token is None
    padded = load_tokenizer(str(tmp_path / "no-pad"), pad_with_eos=True)
    assert padded.pad_token == padded.eos_token is not None
    char = build_char_tokenizer("abc")  # has a dedicated pad, which stays
    char.save_pretrained(tmp_path / "char")
    assert (
        load_tokenizer(str(tmp_path / "char"), pad_with_eos=True).pad_token_id
        == char.pad_token_id
        != char.eos_token_id
    )
