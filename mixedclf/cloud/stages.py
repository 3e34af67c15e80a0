"""The three stages as JSON-in, JSON-out functions over a whole batch: what a Runpod job carries.

pre: {"texts": [...]} -> sequences; infer: sequences -> scored (logits beside the counts); post: scored ->
{"results": [...]} in the server's row shape. Each stage's output is the next one's input, so a caller (the
orchestrator, a batch client) only forwards. Each stage is a step of the stage contract (core/pipeline.py,
core/sequences.py), like every other runtime's: pre is `to_sequences`, infer is a `StagePipeline`'s `infer`, post
is an `OutputStep`'s `predictions`; this file only turns their inputs and outputs into JSON and back.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mixedclf.core.pipeline import OutputStep, StagePipeline
from mixedclf.core.preprocess import PreprocessedBatch, make_tokenizer
from mixedclf.core.sequences import Sequences, concat_sequences, sequences_without_tokens, to_sequences

# Runpod's /run takes bodies up to 10 MB: a job of this many texts of the model's length stays well under it.
MAX_TEXTS_PER_JOB = 4096
_COUNTS = ("word_count", "sentence_count", "char_count")


class StageInputError(ValueError):
    """A job's input is not what the stage takes: the job fails with this one line, the worker lives on."""


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


def encode_sequences(seqs: Sequences) -> dict[str, list]:
    """One sequence per row on the wire (what `to_sequences` makes): a row of several would need its owner list."""
    prep = seqs.batch
    offsets = prep.offsets
    return {
        "ids": [prep.token_ids[offsets[i]:offsets[i + 1]].tolist() for i in range(len(prep))],
        "cleaned": list(prep.cleaned),
        "truncated": prep.truncated.tolist(),
        **{name: getattr(prep, name).tolist() for name in _COUNTS},
    }


def _column(payload: dict, name: str, rows: int) -> list:
    values = payload.get(name)
    if not isinstance(values, list) or len(values) != rows:
        raise StageInputError(f"sequences.{name} must be a list of {rows} values")
    return values


def decode_sequences(payload: Any) -> Sequences:
    """The pre stage's output back into the contract's sequences; every column checked against the row count."""
    if not isinstance(payload, dict) or not isinstance(payload.get("ids"), list):
        raise StageInputError('input needs "sequences": {"ids": [[...], ...], ...} (the pre stage\'s output)')
    ids = payload["ids"]
    rows = len(ids)
    try:
        lengths = np.fromiter((len(r) for r in ids), dtype=np.int32, count=rows)
        flat = np.fromiter((int(t) for r in ids for t in r), dtype=np.int32, count=int(lengths.sum()))
    except (TypeError, ValueError):
        raise StageInputError("sequences.ids must be lists of token ids (integers)") from None
    cleaned = payload.get("cleaned") or [""] * rows
    return Sequences(PreprocessedBatch(
        list(_column({"cleaned": cleaned}, "cleaned", rows)), flat, lengths,
        np.asarray(_column(payload, "truncated", rows), dtype=bool),
        *(np.asarray(_column(payload, name, rows), dtype=np.int32) for name in _COUNTS),
    ))


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
    def infer_input(payload: Any) -> tuple[dict, Sequences]:
        """A job's sequences, checked: a bad job fails alone, before it joins a device batch."""
        sequences = payload.get("sequences") if isinstance(payload, dict) else None
        seqs = decode_sequences(sequences)  # refuses anything but a dict of columns
        assert isinstance(sequences, dict)
        return sequences, seqs

    def logits_many(self, parts: list[Sequences]) -> list[np.ndarray]:
        """Several jobs' rows in one device call (length-planned micro-batches across all of them)."""
        assert self.pipeline is not None, "the infer stage was not loaded"
        logits = self.pipeline.infer(concat_sequences(parts)).logits
        bounds = np.cumsum([0] + [len(p) for p in parts])
        return [logits[a:b] for a, b in itertools.pairwise(bounds)]

    @staticmethod
    def scored(sequences: dict, seqs: Sequences, logits: np.ndarray, jobs_in_batch: int) -> dict:
        scored = {k: v for k, v in sequences.items() if k != "ids"}
        scored["token_count"] = seqs.rows().lengths.tolist()
        scored["logits"] = logits.tolist()
        return {"scored": scored, "device_batch_jobs": jobs_in_batch}

    def infer(self, payload: Any) -> dict:
        sequences, seqs = self.infer_input(payload)
        return self.scored(sequences, seqs, self.logits_many([seqs])[0], 1)

    def post(self, payload: Any) -> dict:
        scored = payload.get("scored") if isinstance(payload, dict) else None
        if not isinstance(scored, dict) or not isinstance(scored.get("logits"), list):
            raise StageInputError('input needs "scored": {"logits": [[...]], ...} (the infer stage\'s output)')
        rows = len(scored["logits"])
        logits = np.asarray(scored["logits"], dtype=np.float32).reshape(rows, len(self.output.model.labels))
        # the rows' counts, not their tokens: all the output step reads
        seqs = sequences_without_tokens(
            np.asarray(_column(scored, "token_count", rows), dtype=np.int32),
            np.asarray(_column(scored, "truncated", rows), dtype=bool),
            *(np.asarray(_column(scored, name, rows), dtype=np.int32) for name in _COUNTS),
        )
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
