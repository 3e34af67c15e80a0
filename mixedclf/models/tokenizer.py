"""The model's fast tokenizer as a JSON string: what CPU workers rebuild without importing transformers.

transformers builds it once per tokenizer (AutoTokenizer applies tokenizer_config.json exactly as its pipeline
does); the result is kept in the user cache, keyed by the tokenizer files' bytes and the transformers and
tokenizers versions, so later runs read one file instead of importing transformers (about a second per cold
start, billed on every serverless worker start).
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

from mixedclf.errors import ModelError
from mixedclf.models.spec import ModelSpec

# Every file AutoTokenizer may read from a model folder to build its fast tokenizer: without tokenizer.json it
# converts the slow tokenizer's vocabulary (spm.model for DeBERTa-v2/v3, tokenizer.model for Llama-style ones...).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                    "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model",
                    "spm.model", "tokenizer.model", "sentencepiece.model", "source.spm", "target.spm", "bpe.codes",
                    "config.json")
_CACHE_FORMAT = 2


def tokenizer_json_and_pad_id(spec: ModelSpec) -> tuple[str, int]:
    """The fast tokenizer's JSON and the pad token id, from the cache when this tokenizer was built before (an
    ONNX export carries its own)."""
    if spec.kind == "onnx":
        try:
            return (spec.path / "tokenizer.json").read_text(encoding="utf-8"), int(spec.head_config["pad_token_id"])
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{spec.path}: unreadable tokenizer.json or pad_token_id: {exc}") from exc
    key = _cache_key(spec.encoder_path)
    if key is None:
        return _build(spec.encoder_path)
    from mixedclf.models.cache import cached_folder, discard_folder

    def build(folder: Path) -> None:
        text, pad_id = _build(spec.encoder_path)
        (folder / "tokenizer.json").write_text(text, encoding="utf-8")
        (folder / "pad.json").write_text(json.dumps({"pad_token_id": pad_id, "tokenizer_sha256": _digest(text)}),
                                         encoding="utf-8")

    for _attempt in range(2):
        try:
            folder = cached_folder(key, build)
        except OSError:  # an unwritable cache only costs the build
            break
        cached = _read_entry(folder)
        if cached is not None:
            return cached
        discard_folder(folder)  # damaged (a torn write, a disk error, an edit): built again, once
    return _build(spec.encoder_path)


def _read_entry(folder: Path) -> tuple[str, int] | None:
    """The entry's JSON and pad id when its tokenizer.json still has the digest recorded beside it, else None:
    a damaged JSON would otherwise reach every worker, and one that still parses would mislabel every row."""
    try:
        text = (folder / "tokenizer.json").read_text(encoding="utf-8")
        meta = json.loads((folder / "pad.json").read_text(encoding="utf-8"))
        pad_id = meta["pad_token_id"]
        if type(pad_id) is not int or pad_id < 0 or meta["tokenizer_sha256"] != _digest(text):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return text, pad_id


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _cache_key(folder: Path) -> str | None:
    h = hashlib.sha256(f"format {_CACHE_FORMAT}\0".encode())
    try:
        for package in ("transformers", "tokenizers"):
            h.update(f"{package} {metadata.version(package)}\0".encode())
        for name in _TOKENIZER_FILES:
            path = folder / name
            if path.is_file():
                h.update(f"{name}\0".encode() + path.read_bytes() + b"\0")
    except (OSError, metadata.PackageNotFoundError):
        return None
    return f"tokenizer-{h.hexdigest()[:32]}"


def _build(folder: Path) -> tuple[str, int]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, use_fast=True, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a tokenizer from {folder}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{folder} has no fast tokenizer", hint="save one with tokenizer.json")
    return tokenizer.backend_tokenizer.to_str(), int(tokenizer.pad_token_id or 0)
