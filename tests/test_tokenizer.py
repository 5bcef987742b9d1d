"""Tests of mambart.tokenizer: byte tokenizer, streaming decode, HF tokenizer wrapper, loading."""
import json
import os

import numpy as np
import pytest

from mambart.tokenizer import (
    ByteTokenizer,
    HFTokenizer,
    default_model_path,
    load_tokenizer,
)

TEXTS = [
    "",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "naïve café — Ünïcödé, 日本語のテキスト",
    "emoji 🐍🚀 and a family 👨‍👩‍👧 (ZWJ sequence)",
    "\x00\t\r\n control chars",
]


@pytest.mark.parametrize("text", TEXTS)
def test_byte_round_trip(text):
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert ids.dtype == np.int64 and ids.ndim == 1
    assert ids.tolist() == list(text.encode("utf-8"))
    assert tok.decode(ids) == text
    assert tok.decode(ids.tolist()) == text


def test_byte_eot_is_skipped_and_appended():
    tok = ByteTokenizer()
    ids = tok.encode("ab", add_eot=True)
    assert ids.tolist() == [97, 98, 256]
    assert tok.eos_token_id == 256 and tok.vocab_size == 257
    assert tok.decode([97, 256, 98, 300]) == "ab"


def test_byte_decode_invalid_utf8_replaces():
    tok = ByteTokenizer()
    assert tok.decode([0xFF, 97]) == "\ufffda"
    assert tok.decode([0xE6, 0x97]) == "\ufffd"  # truncated 3-byte character


def test_byte_decode_rejects_bad_ids():
    tok = ByteTokenizer()
    with pytest.raises(ValueError, match=">= 0"):
        tok.decode([-1])
    with pytest.raises(TypeError, match="integers"):
        tok.decode(np.array([1.5]))
    with pytest.raises(TypeError, match="str"):
        tok.encode(b"bytes")


@pytest.mark.parametrize("text", TEXTS[1:])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_byte_stream_decoder_random_chunks(text, seed):
    """Chunks split anywhere (inside multi-byte characters too) give back the text, and no
    chunk's output ever holds a replacement character."""
    tok = ByteTokenizer()
    ids = tok.encode(text, add_eot=True)
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, len(ids)), size=min(5, len(ids) - 1), replace=False))
    dec = tok.stream_decoder()
    pieces = [dec.push(chunk) for chunk in np.split(ids, cuts)]
    pieces.append(dec.flush())
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)


def test_byte_stream_decoder_one_byte_at_a_time():
    tok = ByteTokenizer()
    text = "é🐍x"
    dec = tok.stream_decoder()
    outs = [dec.push(int(i)) for i in tok.encode(text)]
    # 'é' is 2 bytes, '🐍' is 4: text appears exactly when a character completes
    assert outs == ["", "é", "", "", "", "🐍", "x"]
    assert dec.flush() == ""


def test_byte_stream_decoder_flush_incomplete():
    dec = ByteTokenizer().stream_decoder()
    assert dec.push([0xF0, 0x9F]) == ""
    assert dec.flush() == "\ufffd"
    assert dec.push([97]) == "a"  # usable after flush


@pytest.fixture(scope="module")
def hf_tokenizer_dir(tmp_path_factory):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    corpus = [t for t in TEXTS if t] * 20 + ["import os\nimport sys\n", "for i in range(10):\n    pass\n"] * 20
    tok.train_from_iterator(corpus, trainer=trainer)
    d = tmp_path_factory.mktemp("hf_tok")
    tok.save(str(d / "tokenizer.json"))
    (d / "config.json").write_text(json.dumps({"model_type": "mamba", "eos_token_id": 0}))
    assert tokenizers.__version__
    return d


@pytest.mark.parametrize("text", TEXTS)
def test_hf_round_trip(hf_tokenizer_dir, text):
    tok = HFTokenizer(hf_tokenizer_dir / "tokenizer.json")
    ids = tok.encode(text)
    assert ids.dtype == np.int64 and ids.ndim == 1
    assert tok.decode(ids) == text


@pytest.mark.parametrize("text", TEXTS[1:])
def test_hf_stream_decoder(hf_tokenizer_dir, text):
    """Token by token, the streamed pieces join to the text and never hold a half character
    (the byte-level BPE here splits emoji over several tokens)."""
    tok = HFTokenizer(hf_tokenizer_dir / "tokenizer.json")
    ids = tok.encode(text)
    dec = tok.stream_decoder()
    pieces = [dec.push(int(i)) for i in ids]
    pieces.append(dec.flush())
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)


def test_hf_skips_special_tokens(hf_tokenizer_dir):
    tok = HFTokenizer(hf_tokenizer_dir / "tokenizer.json")
    eot = tok.tokenizer.token_to_id("<|endoftext|>")
    ids = np.append(tok.encode("abc"), eot)
    assert tok.decode(ids) == "abc"
    assert "<|endoftext|>" in tok.decode(ids, skip_special_tokens=False)


def test_hf_missing_package_message(hf_tokenizer_dir, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "tokenizers" or name.startswith("tokenizers."):
            raise ImportError("No module named 'tokenizers'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    tok = HFTokenizer(hf_tokenizer_dir / "tokenizer.json")  # constructing needs no package
    with pytest.raises(ImportError, match=r"pip install tokenizers \(or mambart\[text\]\)"):
        tok.encode("x")


def test_load_tokenizer_kinds(hf_tokenizer_dir, tmp_path):
    hf = load_tokenizer(hf_tokenizer_dir)
    assert isinstance(hf, HFTokenizer) and hf.eos_token_id == 0
    assert load_tokenizer(tmp_path) is None
    (tmp_path / "mambart_tokenizer.json").write_text(json.dumps({"type": "bytes", "eot_token_id": 260}))
    bt = load_tokenizer(tmp_path)
    assert isinstance(bt, ByteTokenizer) and bt.eos_token_id == 260
    (tmp_path / "mambart_tokenizer.json").write_text(json.dumps({"type": "sentencepiece"}))
    with pytest.raises(ValueError, match="unknown tokenizer type"):
        load_tokenizer(tmp_path)


def test_embedded_model_folder():
    path = default_model_path()
    assert os.path.isdir(path), path
    for name in ("config.json", "model.safetensors", "mambart_tokenizer.json", "MODEL_CARD.md"):
        assert os.path.isfile(os.path.join(path, name)), name
    tok = load_tokenizer(path)
    assert isinstance(tok, ByteTokenizer)
    with open(os.path.join(path, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["model_type"] == "mamba"
    assert cfg["eos_token_id"] == tok.eos_token_id == 256
    assert cfg["vocab_size"] >= tok.vocab_size
    assert os.path.getsize(os.path.join(path, "model.safetensors")) <= 10 * 1024 * 1024
