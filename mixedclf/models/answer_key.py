"""The run key of the prediction cache: every setting that decides a row's logits, for one loaded model."""

from __future__ import annotations

import hashlib

from mixedclf.core.answers import run_key
from mixedclf.models.cache import content_hash
from mixedclf.models.spec import ModelSpec


def answer_run_key(spec: ModelSpec, model_run: str, clean: str, tokenizer_json: str) -> bytes:
    """`model_run` names backend, precision and device kind ("torch bf16 on cpu"): each computes its own low bits,
    and a cached answer must be the bits this run would compute. The tokenizer is keyed by the exact JSON the CPU
    workers run, so an edited tokenizer file misses."""
    return run_key(
        model=content_hash(spec),
        labels=spec.labels,
        max_length=spec.max_length,
        model_run=model_run,
        clean=clean,
        tokenizer=hashlib.sha256(tokenizer_json.encode("utf-8")).hexdigest(),
    )
