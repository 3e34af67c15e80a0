"""The tokenizer cache (models/tokenizer.py): a damaged entry is rebuilt, never handed to the workers."""

import json

import pytest
from conftest import build_tiny_classifier

from mixedclf.core.preprocess import make_tokenizer
from mixedclf.models.spec import resolve_model
from mixedclf.models.tokenizer import tokenizer_json_and_pad_id


def _entry(cache):
    (entry,) = (cache / "converted").glob("tokenizer-*")
    return entry


@pytest.mark.parametrize("tokenizer_text", [
    '{"broken',  # a torn write or a disk error
    "",
    # Valid JSON, a valid tokenizer, not this model's: it would tokenize every text into [UNK]s.
    json.dumps({"version": "1.0", "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}}),
])
@pytest.mark.parametrize("pad_text", [None, "[1]", '{"pad_token_id": "x"}', "garbage"])
def test_a_damaged_cache_entry_is_rebuilt(tmp_path, monkeypatch, tokenizer_text, pad_text):
    monkeypatch.setenv("MIXEDCLF_CACHE_DIR", str(tmp_path / "cache"))
    spec = resolve_model(build_tiny_classifier(tmp_path / "m"))
    expected = tokenizer_json_and_pad_id(spec)
    entry = _entry(tmp_path / "cache")
    (entry / "tokenizer.json").write_text(tokenizer_text, encoding="utf-8")
    if pad_text is not None:
        (entry / "pad.json").write_text(pad_text, encoding="utf-8")
    assert tokenizer_json_and_pad_id(spec) == expected
    make_tokenizer(expected[0], spec.max_length)
    # The entry is repaired, so the next run reads it instead of building again.
    assert (_entry(tmp_path / "cache") / "tokenizer.json").read_text(encoding="utf-8") == expected[0]
    assert tokenizer_json_and_pad_id(spec) == expected


def test_a_damaged_pad_id_alone_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXEDCLF_CACHE_DIR", str(tmp_path / "cache"))
    spec = resolve_model(build_tiny_classifier(tmp_path / "m"))
    expected = tokenizer_json_and_pad_id(spec)
    (_entry(tmp_path / "cache") / "pad.json").write_text("[1]", encoding="utf-8")
    assert tokenizer_json_and_pad_id(spec) == expected


@pytest.mark.parametrize("name", ["vocab.txt", "tokenizer_config.json", "spm.model", "tokenizer.model",
                                  "sentencepiece.bpe.model", "spiece.model", "source.spm", "bpe.codes"])
def test_the_cache_key_follows_every_file_a_fast_tokenizer_may_be_built_from(tmp_path, name):
    # DeBERTa-v2/v3 (spm.model) and Llama-style (tokenizer.model) folders often ship no tokenizer.json: the fast
    # tokenizer is converted from that file, so editing it in place must not reuse the old conversion.
    from mixedclf.models.tokenizer import _cache_key

    folder = build_tiny_classifier(tmp_path / "m")
    path = folder / name
    path.write_bytes((path.read_bytes() if path.exists() else b"") + b"a")
    before = _cache_key(folder)
    path.write_bytes(path.read_bytes()[:-1] + b"b")  # same size, other bytes
    assert _cache_key(folder) != before
