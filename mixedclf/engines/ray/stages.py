"""The Ray Data stage callables: number rows, preprocess, infer, postprocess, and the actor they report to.

Each callable runs one step of the stage contract (core.pipeline: `to_sequences`, `StagePipeline.infer`,
`OutputStep.table`) on Arrow batches, after the local reader's row check (`text_problem`), measures its own busy
time and reports it (with its worker and device) to the `Collector` actor. Invalid rows travel with the data in
the PROBLEM column.

Ray pickles these classes by module path, so they stay at this module's top level. Their names also show up in Ray
Data's operator names, which `ray_stats` matches: rename them together.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from typing import Any

import numpy as np
import pyarrow as pa

from mixedclf.core.answers import text_digest
from mixedclf.core.pipeline import DeviceWork, OutputStep, StagePipeline
from mixedclf.core.preprocess import make_tokenizer
from mixedclf.core.sequences import keyed_sequences, sequences_without_tokens, to_sequences
from mixedclf.engines.ray.cache import KeeperAnswers
from mixedclf.errors import RowError
from mixedclf.io.readers import text_problem
from mixedclf.models.spec import ModelSpec, resolve_model

# Internal columns: prefixed so they never collide with a user's columns; none reaches the output.
ROW = "__mixedclf_row"
PROBLEM = "__mixedclf_problem"
TOKENS = "__mixedclf_tokens"
LENGTH = "__mixedclf_length"
TRUNCATED = "__mixedclf_truncated"
WORDS = "__mixedclf_words"
SENTENCES = "__mixedclf_sentences"
CHARS = "__mixedclf_chars"
LOGITS = "__mixedclf_logits"
TEXT_KEY = "__mixedclf_text_key"  # core.answers.text_digest of the cleaned text: dedup and the cache key, no text
INTERNAL = (ROW, PROBLEM, TOKENS, LENGTH, TRUNCATED, WORDS, SENTENCES, CHARS, LOGITS, TEXT_KEY)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Collector:
    """Per-stage clocks fed by the stage callables (wall clock: comparable across processes and nodes)."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, Any]] = {}
        self.actors: dict[str, dict[str, Any]] = {}
        self.rows_done = 0
        self.files: list[tuple[str, int]] = []  # (file path, first row) of each run of rows from one input file
        self.cache_lost: str | None = None  # why an inference actor stopped asking the prediction cache, if one did

    def add(self, stage: str, start: float, end: float, items: int, worker: str, rows_in: int = 0,
            device: str | None = None, stats: dict | None = None) -> None:
        s = self.stages.setdefault(stage, {"items": 0, "busy_s": 0.0, "first": start, "last": end,
                                           "workers": set(), "devices": set(), "rows_in": 0, "calls": 0})
        s["items"] += items
        s["rows_in"] += rows_in
        s["busy_s"] += end - start
        s["first"] = min(s["first"], start)
        s["last"] = max(s["last"], end)
        s["workers"].add(worker)
        s["calls"] += 1
        if device:
            s["devices"].add(device)
        if stats is not None:
            a = self.actors[worker]
            a["last_end"] = max(a["last_end"] or end, end)
            for key, value in stats.items():
                a["stats"][key] = a["stats"].get(key, 0) + value
        if stage == "postprocess":
            self.rows_done += rows_in

    def numbered(self, runs: list[tuple[str, int]]) -> None:
        self.files.extend(runs)

    def loaded(self, worker: str, device: str, start: float, end: float, precision: str = "",
               precision_reason: str = "", backend: str = "") -> None:
        self.actors[worker] = {"device": device, "load_start": start, "load_end": end, "last_end": None, "stats": {},
                               "precision": precision, "precision_reason": precision_reason, "backend": backend}

    def lost_cache(self, why: str) -> None:
        self.cache_lost = self.cache_lost or why

    def progress(self) -> int:
        return self.rows_done

    def snapshot(self) -> dict:
        stages = {k: {**v, "workers": sorted(v["workers"]), "devices": sorted(v["devices"])}
                  for k, v in self.stages.items()}
        return {"stages": stages, "actors": self.actors, "rows_done": self.rows_done, "files": self.files,
                "cache_lost": self.cache_lost}


class RowNumberer:
    """Adds the input row number. One actor, blocks in input order (preserve_order): numbers are dense.

    It reports the rows it numbered, so the merge can prove the output holds each number exactly once (a
    restarted numberer or a part written where the driver cannot see it fails the run instead of corrupting it).
    """

    def __init__(self, collector, paths: bool = False) -> None:
        self.next = 0
        self.collector = collector
        self.paths = paths  # the reader added Ray's `path` column: report which rows came from which file

    def __call__(self, table: pa.Table) -> pa.Table:
        import ray

        start = time.time()
        n = table.num_rows
        if self.paths and "path" in table.column_names:
            values = table.column("path").to_pylist()
            runs = [(p, self.next + i) for i, p in enumerate(values) if i == 0 or p != values[i - 1]]
            ray.get(self.collector.numbered.remote(runs))
            table = table.drop_columns(["path"])
        table = table.append_column(ROW, pa.array(np.arange(self.next, self.next + n, dtype=np.int64)))
        self.next += n
        ray.get(self.collector.add.remote("number", start, time.time(), n, _worker_name(), rows_in=n))
        return table


_TOKENIZERS: dict[str, Any] = {}


def _cached_tokenizer(tokenizer_json: str, max_length: int):
    """One tokenizer per worker process: Ray reuses task workers, so it is built once, not once per task."""
    key = hashlib.sha1(tokenizer_json.encode("utf-8")).hexdigest() + f":{max_length}"
    tokenizer = _TOKENIZERS.get(key)
    if tokenizer is None:
        # One worker is one core: the tokenizer's own thread pool would only fight its siblings.
        os.environ["RAYON_NUM_THREADS"] = "1"
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        tokenizer = _TOKENIZERS[key] = make_tokenizer(tokenizer_json, max_length)
    return tokenizer


def _column_numpy(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).combine_chunks().to_numpy(zero_copy_only=False)


class Preprocess:
    """CPU stage, as Ray tasks: validate each row (like the local reader), then the contract's `to_sequences`."""

    def __init__(self, tokenizer_json: str, max_length: int, clean: str, text_field: str, id_field: str,
                 line_offset: int, on_error: str, input_name: str, keep_text: bool, dedup: bool,
                 collector) -> None:
        self.tokenizer_json, self.max_length, self.clean = tokenizer_json, max_length, clean
        self.keep_text, self.dedup = keep_text, dedup
        self.text_field, self.id_field, self.line_offset = text_field, id_field, line_offset
        self.on_error, self.input_name, self.collector = on_error, input_name, collector

    def __call__(self, table: pa.Table) -> pa.Table:
        import ray

        start = time.time()
        tokenizer = _cached_tokenizer(self.tokenizer_json, self.max_length)
        n = table.num_rows
        rows = _column_numpy(table, ROW)
        has_text = self.text_field in table.column_names
        values = table.column(self.text_field).to_pylist() if has_text else [None] * n
        ids = table.column(self.id_field).to_pylist() if self.id_field in table.column_names else None
        texts, keep, problems = [], [], [None] * n
        for i, value in enumerate(values):
            reason = text_problem(value) if has_text else f"missing text field {self.text_field!r}"
            if reason is None:
                texts.append(value)
                keep.append(i)
                continue
            row = int(rows[i])
            problem = {"row": row, "line": row + self.line_offset, "id": ids[i] if ids is not None else row,
                       "reason": reason}
            if self.on_error == "fail":
                raise RowError(f"{self.input_name}: row {row} (line {problem['line']}): {reason}",
                               hint="fix the row, or use --on-error skip")
            problems[i] = json.dumps(problem, ensure_ascii=False, default=str)
        prep = to_sequences(texts, tokenizer, self.clean).batch
        keep_idx = np.asarray(keep, dtype=np.int64)

        def spread(values: np.ndarray, dtype, fill=0) -> np.ndarray:
            out = np.full(n, fill, dtype=dtype)
            out[keep_idx] = values
            return out

        lengths = spread(prep.lengths, np.int32)
        offsets = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64))).astype(np.int32)
        tokens = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(prep.token_ids, pa.int32()))
        out = table.drop_columns([self.text_field]) if has_text and not self.keep_text else table
        for name, array in (
            (TOKENS, tokens),
            (LENGTH, pa.array(lengths, pa.int32())),
            (TRUNCATED, pa.array(spread(prep.truncated, bool, False), pa.bool_())),
            (WORDS, pa.array(spread(prep.word_count, np.int32), pa.int32())),
            (SENTENCES, pa.array(spread(prep.sentence_count, np.int32), pa.int32())),
            (CHARS, pa.array(spread(prep.char_count, np.int32), pa.int32())),
            (PROBLEM, pa.array(problems, pa.string())),
        ):
            out = out.append_column(name, array)
        # Always: the inference stage counts repeated texts (the report's duplicate_fraction) even without dedup.
        # With the prediction cache, the inference actor makes each row's key of it (core.answers.answer_keys).
        keys = [b""] * n
        for i, digest in zip(keep, map(text_digest, prep.cleaned), strict=True):
            keys[i] = digest
        out = out.append_column(TEXT_KEY, pa.array(keys, pa.binary()))
        ray.get(self.collector.add.remote("preprocess", start, time.time(), len(keep), _worker_name(), rows_in=n))
        return out


def _valid_rows(table: pa.Table) -> np.ndarray:
    return np.flatnonzero(_column_numpy(table, PROBLEM) == None)  # noqa: E711 - elementwise on an object array


class Infer:
    """Device stage, one per actor: the model is loaded once in __init__, then the contract's
    `StagePipeline.infer` (dedup scoped to each batch, as the local engine scopes it to a chunk). With `keeper`
    (engines/ray/cache.py) rows the prediction cache holds never reach the device, as on the local engine: the
    run key is this actor's own (the precision it resolved, its device type), made with `clean` and the tokenizer."""

    def __init__(self, model: str, device: str, precision: str, torch_threads: int | None, pad_id: int,
                 batch_size: int, max_batch_tokens: int, dedup: bool, collector, backend: str | None = None,
                 keeper=None, clean: str = "standard", tokenizer_json: str = "") -> None:
        start = time.time()  # the model-load stage includes importing torch, as a fresh GPU worker would
        import ray
        import torch

        from mixedclf.models.backend import answer_run_key, load_model, resolve_backend
        from mixedclf.models.device import resolve_device

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.spec = resolve_model(model)
        self.device = resolve_device(device, resolve_backend(precision, backend, self.spec))
        model = load_model(self.spec, self.device, precision, backend)
        self.answers = KeeperAnswers(keeper) if keeper is not None else None
        key = answer_run_key(self.spec, model, clean, tokenizer_json) if self.answers is not None else b""
        self.pipeline = StagePipeline(model.module, self.device, self.spec, pad_id, batch_size=batch_size,
                                      max_batch_tokens=max_batch_tokens, dedup=dedup, answers=self.answers,
                                      run_key=key)
        self.lost_told = False
        self.collector = collector
        self.worker = _worker_name()
        self.device_name = str(self.device) if self.device.type != "cuda" else f"cuda:{torch.cuda.current_device()}"
        choice = model.precision  # what runs here, as the local engine reports it
        ray.get(collector.loaded.remote(self.worker, self.device_name, start, time.time(), choice.name, choice.reason,
                                        model.backend))

    def __call__(self, table: pa.Table) -> pa.Table:
        import ray

        n = table.num_rows
        idx = _valid_rows(table)
        tokens = table.column(TOKENS).combine_chunks()
        if len(idx) < n:
            tokens = tokens.take(pa.array(idx))
        lengths = _column_numpy(table, LENGTH)[idx].astype(np.int32)
        seqs = keyed_sequences(_column_numpy(table, TEXT_KEY)[idx].tolist(),
                               tokens.flatten().to_numpy(zero_copy_only=False).astype(np.int32, copy=False), lengths,
                               _column_numpy(table, TRUNCATED)[idx])
        start = time.time()
        logits, work = None, DeviceWork()
        if len(idx):
            inferred = self.pipeline.infer(seqs)
            logits, work = inferred.logits, inferred.work
        end = time.time()
        labels = len(self.spec.labels)
        full = np.zeros((n, labels), dtype=np.float32)
        if logits is not None:
            full[idx] = logits
        out = table.drop_columns([c for c in (TOKENS, TEXT_KEY) if c in table.column_names]).append_column(
            LOGITS, pa.FixedSizeListArray.from_arrays(pa.array(full.ravel(), pa.float32()), labels)
        )
        if self.answers is not None and self.answers.lost is not None and not self.lost_told:
            self.lost_told = True
            ray.get(self.collector.lost_cache.remote(self.answers.lost))
        ray.get(self.collector.add.remote("inference", start, end, len(idx), self.worker, rows_in=n,
                                          device=self.device_name, stats=work.totals()))
        return out


class Postprocess:
    """CPU stage, as Ray tasks: the contract's `OutputStep.table`, the output rows as the local engine makes them."""

    def __init__(self, spec: ModelSpec, text_field: str, id_field: str, keep_text: bool, all_scores: bool,
                 collector, prefix: str = "") -> None:
        self.spec, self.text_field, self.id_field = spec, text_field, id_field
        self.keep_text, self.collector = keep_text, collector
        self.output = OutputStep(spec, all_scores, prefix)

    def __call__(self, table: pa.Table) -> pa.Table:
        import ray

        start = time.time()
        n = table.num_rows
        idx = _valid_rows(table)
        bad = np.setdiff1d(np.arange(n), idx)
        labels = len(self.spec.labels)
        logits = np.asarray(table.column(LOGITS).combine_chunks().flatten().to_numpy(zero_copy_only=False))
        logits = logits.reshape(n, labels)[idx]
        seqs = sequences_without_tokens(
            _column_numpy(table, LENGTH)[idx], _column_numpy(table, TRUNCATED)[idx].astype(bool),
            _column_numpy(table, WORDS)[idx], _column_numpy(table, SENTENCES)[idx], _column_numpy(table, CHARS)[idx],
        )
        valid = table.take(pa.array(idx)) if len(idx) < n else table
        rows = _column_numpy(valid, ROW)
        # As the local reader: id column first (the row number when the input has none), then every other
        # input column but the text, then the text (--keep-text), then the classifier's columns.
        names = [c for c in valid.column_names if c not in INTERNAL and c not in (self.text_field, self.id_field)]
        id_column = (valid.column(self.id_field) if self.id_field in valid.column_names
                     else pa.array(rows, pa.int64()))
        passthrough = pa.table([id_column] + [valid.column(c) for c in names], names=[self.id_field] + names)
        text = (self.text_field, valid.column(self.text_field).cast(pa.string())) if self.keep_text else None
        out, _ = self.output.table(seqs, logits, passthrough, text)
        out = out.append_column(ROW, pa.array(rows, pa.int64()))
        out = out.append_column(PROBLEM, pa.nulls(len(idx), pa.string()))
        if len(bad):
            invalid = pa.table({ROW: pa.array(_column_numpy(table, ROW)[bad], pa.int64()),
                                PROBLEM: table.column(PROBLEM).take(pa.array(bad))})
            out = pa.concat_tables([out, invalid], promote_options="default")
        ray.get(self.collector.add.remote("postprocess", start, time.time(), len(idx), _worker_name(), rows_in=n))
        return out

