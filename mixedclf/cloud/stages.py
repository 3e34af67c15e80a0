"""The three stages as JSON-in, JSON-out functions over a whole batch: what a Runpod job carries.

pre: {"texts": [...]} -> sequences; infer: sequences -> scored (logits beside the counts); post: scored ->
{"results": [...]} in the server's row shape. Each stage's output is the next one's input, so a caller (the
orchestrator, a batch client) only forwards. Each stage is a step of the stage contract (core/pipeline.py,
core/sequences.py), like every other runtime's: pre is `to_sequences`, infer is a `StagePipeline`'s `infer`, post
is an `OutputStep`'s `predictions`; their JSON form is core/wire.py's (`mixedclf serve` reads the same).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mixedclf.core.pipeline import OutputStep, StagePipeline
from mixedclf.core.preprocess import make_tokenizer
from mixedclf.core.sequences import Sequences, concat_sequences, to_sequences
from mixedclf.core.wire import StageInputError, decode_scored, decode_sequences, encode_scored, encode_sequences

# Runpod's /run takes bodies up to 10 MB: a job of this many texts of the model's length stays well under it.
MAX_TEXTS_PER_JOB = 4096


def texts_of(payload: Any) -> list[str]:
    """{"text": "..."} or {"texts": [...]}: the original routes' bodies."""
    if not isinstance(payload, dict):
        raise StageInputError('input must be an object: {"text": "..."} or {"texts": ["...", ...]}')
    if "texts" in payload:
        texts = payload["texts"]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise StageInputError("input.texts must be a list of strings")
    elif isinstance(payload.get("text"), str):
        texts = [payload["text"]]
    else:
        raise StageInputError('input needs "text" (a string) or "texts" (a list of strings)')
    if len(texts) > MAX_TEXTS_PER_JOB:
        raise StageInputError(f"input.texts has {len(texts)} texts; a job takes at most {MAX_TEXTS_PER_JOB}")
    return texts


@dataclass
class Stages:
    """What the stages of one worker hold: the tokenizer (pre), the stage pipeline (infer), the output step
    (post; it needs only the model's labels, so a CPU worker holds it without a model)."""

    output: OutputStep
    clean: str = "standard"
    tokenizer: Any = None
    pipeline: StagePipeline | None = None
    info: dict = field(default_factory=dict)

    def pre(self, payload: Any) -> dict:
        """`clean` = "none" in the input takes texts as already cleaned (the original GPU worker's contract)."""
        texts = texts_of(payload)
        clean = payload.get("clean", self.clean)
        if clean not in ("standard", "none"):
            raise StageInputError(f'input.clean must be "standard" or "none" (got {clean!r})')
        return {"sequences": encode_sequences(to_sequences(texts, self.tokenizer, clean))}

    @staticmethod
    def infer_input(payload: Any) -> Sequences:
        """A job's sequences, checked: a bad job fails alone, before it joins a device batch."""
        return decode_sequences(payload.get("sequences") if isinstance(payload, dict) else None)

    def logits_many(self, parts: list[Sequences]) -> list[np.ndarray]:
        """Several jobs' rows in one device call (length-planned micro-batches across all of them)."""
        assert self.pipeline is not None, "the infer stage was not loaded"
        logits = self.pipeline.infer(concat_sequences(parts)).logits
        bounds = np.cumsum([0] + [len(p) for p in parts])
        return [logits[a:b] for a, b in itertools.pairwise(bounds)]

    @staticmethod
    def scored(seqs: Sequences, logits: np.ndarray, jobs_in_batch: int) -> dict:
        return {"scored": encode_scored(seqs, logits), "device_batch_jobs": jobs_in_batch}

    def infer(self, payload: Any) -> dict:
        seqs = self.infer_input(payload)
        return self.scored(seqs, self.logits_many([seqs])[0], 1)

    def post(self, payload: Any) -> dict:
        scored = payload.get("scored") if isinstance(payload, dict) else None
        seqs, logits = decode_scored(scored, len(self.output.model.labels))
        return {"results": self.output.predictions(seqs, logits), "model": self.info}


def load_stages(stage: str, model: str = "default", precision: str = "auto", clean: str = "standard") -> Stages:
    """Load what `stage` (pre, infer, post or all) needs and nothing more: a CPU stage never imports torch."""
    from mixedclf.models.spec import resolve_model

    spec = resolve_model(model)
    stages = Stages(OutputStep(spec), clean=clean,
                    info={"name": spec.name, "labels": list(spec.labels), "max_length": spec.max_length})
    if stage in ("pre", "infer", "all"):
        from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

        tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
        if stage in ("pre", "all"):
            stages.tokenizer = make_tokenizer(tokenizer_json, spec.max_length)
        if stage in ("infer", "all"):
            from mixedclf.models.backend import load_model
            from mixedclf.models.device import resolve_device

            device = resolve_device("auto")
            stages.pipeline = StagePipeline(load_model(spec, device, precision).module, device, spec, pad_id)
            stages.info["device"] = str(device)
    return stages
