"""The model's fast tokenizer as a JSON string: what CPU workers rebuild without importing transformers."""

from __future__ import annotations

import os

from mixedclf.errors import ModelError
from mixedclf.models.spec import ModelSpec


def tokenizer_json_and_pad_id(spec: ModelSpec) -> tuple[str, int]:
    """Loading through AutoTokenizer applies tokenizer_config.json exactly as transformers' pipeline does."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.encoder_path, use_fast=True, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a tokenizer from {spec.encoder_path}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{spec.encoder_path} has no fast tokenizer", hint="save one with tokenizer.json")
    return tokenizer.backend_tokenizer.to_str(), int(tokenizer.pad_token_id or 0)
