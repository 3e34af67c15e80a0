"""The same pipeline on Ray Data, for inputs that outgrow one machine.

    read (Ray Data reader, tasks) -> number rows (one tiny actor) -> preprocess (tasks on CPUs)
      -> inference (fixed actor pool: model loaded once per actor, one GPU each when there are GPUs)
      -> postprocess (tasks on CPUs) -> write Parquet parts (Ray Data writer, tasks)
      -> driver: merge the parts in row order into OUTPUT (atomic) and OUTPUT.errors.jsonl

The stage functions are the local engine's own (`preprocess_texts`, `InferenceRunner.logits`, `label_columns`,
`text_problem`); only the orchestration differs. Order: Ray Data runs with `preserve_order`, a single actor
numbers the rows as they come off the reader, and the merge sorts the parts by that number, so the output is in
input order whatever the cluster does. Invalid rows travel with the data (a problem column) and end up in
OUTPUT.errors.jsonl exactly as with the local engine.

Timings: each stage callable measures its own busy time and reports it (with its worker and device) to a small
collector actor; read and write come from Ray Data's per-operator statistics. They map onto the same
StageMeasurements as the local engine's, so the cost report has the same shape.

Sizing (see docs/ray.md): with GPUs, one inference actor per GPU (`num_gpus=1`, one CPU to feed it) and every
other CPU preprocesses; without, one CPU inference actor holding the CPUs the preprocessing pool leaves, never a
whole node, so read and write tasks always find a CPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mixedclf.config import chunk_rows_for
from mixedclf.costs import RunMeasurements, StageMeasurement
from mixedclf.engines.local import RunResult, StageClock, logits_with_dedup
from mixedclf.errors import InputError, MixedclfError, ModelError, RowError
from mixedclf.io.formats import check_paths
from mixedclf.io.readers import text_problem
from mixedclf.io.writers import ChunkWriter, ErrorLog
from mixedclf.models.spec import ModelSpec, resolve_model
from mixedclf.stages.postprocess import LabelTally, label_columns
from mixedclf.stages.preprocess import PreprocessedBatch, make_tokenizer, preprocess_texts

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
TEXT_KEY = "__mixedclf_text_key"  # 64-bit digest of the cleaned text: what dedup compares, without the text
INTERNAL = (ROW, PROBLEM, TOKENS, LENGTH, TRUNCATED, WORDS, SENTENCES, CHARS, LOGITS, TEXT_KEY)

# 1-based line of data row r: JSONL line r+1, CSV line r+2 (after the header); Parquet as the local reader says.
LINE_OFFSET = {"jsonl": 1, "csv": 2, "parquet": 0}
# Blocks queued per inference actor: the next batches are fetched while the current one runs, so the device
# does not wait on the object store between batches.
TASKS_IN_FLIGHT_PER_ACTOR = 4
PROGRESS_POLL_S = 0.5
# Heap each inference actor reserves. Besides being honest about the model's footprint, it keeps Ray Data from
# fusing the preprocessing tasks into the inference actors (it fuses task->actor maps whose remote arguments
# match), which would run the CPU stage inside the device's process, one batch after another.
INFERENCE_ACTOR_MEMORY = 512 * 1024**2


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# ------------------------------------------------------------------------------------------ stage callables


class _Collector:
    """Per-stage clocks fed by the stage callables (wall clock: comparable across processes and nodes)."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, Any]] = {}
        self.actors: dict[str, dict[str, Any]] = {}
        self.rows_done = 0

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

    def loaded(self, worker: str, device: str, start: float, end: float) -> None:
        self.actors[worker] = {"device": device, "load_start": start, "load_end": end, "last_end": None, "stats": {}}

    def progress(self) -> int:
        return self.rows_done

    def snapshot(self) -> dict:
        stages = {k: {**v, "workers": sorted(v["workers"]), "devices": sorted(v["devices"])}
                  for k, v in self.stages.items()}
        return {"stages": stages, "actors": self.actors, "rows_done": self.rows_done}


class _RowNumberer:
    """Adds the input row number. One actor, blocks in input order (preserve_order): numbers are dense.

    It reports the rows it numbered, so the merge can prove the output holds each number exactly once (a
    restarted numberer or a part written where the driver cannot see it fails the run instead of corrupting it).
    """

    def __init__(self, collector) -> None:
        self.next = 0
        self.collector = collector

    def __call__(self, table: pa.Table) -> pa.Table:
        import ray

        start = time.time()
        n = table.num_rows
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


class _Preprocess:
    """CPU stage, as Ray tasks: validate each row (like the local reader), then `preprocess_texts`."""

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
        prep = preprocess_texts(texts, tokenizer, self.clean)
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
        if self.dedup:
            keys = np.zeros(n, dtype=np.int64)
            keys[keep_idx] = [int.from_bytes(hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8)
                                             .digest(), "little", signed=True) for t in prep.cleaned]
            out = out.append_column(TEXT_KEY, pa.array(keys, pa.int64()))
        ray.get(self.collector.add.remote("preprocess", start, time.time(), len(keep), _worker_name(), rows_in=n))
        return out


def _valid_rows(table: pa.Table) -> np.ndarray:
    return np.flatnonzero(_column_numpy(table, PROBLEM) == None)  # noqa: E711 - elementwise on an object array


class _Infer:
    """Device stage, one per actor: the model is loaded once in __init__, then `InferenceRunner.logits`."""

    def __init__(self, model: str, device: str, precision: str, torch_threads: int | None, pad_id: int,
                 batch_size: int, max_batch_tokens: int, dedup: bool, collector) -> None:
        start = time.time()  # the model-load stage includes importing torch, as a fresh GPU worker would
        import ray
        import torch

        from mixedclf.models.loading import load_model, resolve_device
        from mixedclf.stages.inference import InferenceRunner

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.spec = resolve_model(model)
        self.device = resolve_device(device)
        module = load_model(self.spec, self.device, precision)
        self.runner = InferenceRunner(module, self.device, len(self.spec.labels), pad_id)
        self.batch_size, self.max_batch_tokens, self.dedup = batch_size, max_batch_tokens, dedup
        self.collector = collector
        self.worker = _worker_name()
        self.device_name = str(self.device) if self.device.type != "cuda" else f"cuda:{torch.cuda.current_device()}"
        ray.get(collector.loaded.remote(self.worker, self.device_name, start, time.time()))

    def __call__(self, table: pa.Table) -> pa.Table:
        import ray

        n = table.num_rows
        idx = _valid_rows(table)
        tokens = table.column(TOKENS).combine_chunks()
        if len(idx) < n:
            tokens = tokens.take(pa.array(idx))
        lengths = _column_numpy(table, LENGTH)[idx].astype(np.int32)
        zeros = np.zeros(len(idx), np.int32)  # counts are not needed here; select_rows wants full-length arrays
        keys = _column_numpy(table, TEXT_KEY)[idx].tolist() if self.dedup else [None] * len(idx)
        prep = PreprocessedBatch(keys, tokens.flatten().to_numpy(zero_copy_only=False).astype(np.int32, copy=False),
                                 lengths, np.zeros(len(idx), bool), zeros, zeros, zeros)
        before = self.runner.stats
        snapshot = (before.batches, before.rows, before.real_tokens, before.padded_tokens, before.oom_splits,
                    before.busy_s)
        start = time.time()
        logits, hits = None, 0
        if len(idx):
            infer = lambda p: self.runner.logits(p, self.batch_size, self.max_batch_tokens)  # noqa: E731
            # The local engine's dedup, scoped to this batch as the local engine scopes it to a chunk.
            logits, hits = logits_with_dedup(prep, infer) if self.dedup else (infer(prep), 0)
        end = time.time()
        labels = len(self.spec.labels)
        full = np.zeros((n, labels), dtype=np.float32)
        if logits is not None:
            full[idx] = logits
        out = table.drop_columns([c for c in (TOKENS, TEXT_KEY) if c in table.column_names]).append_column(
            LOGITS, pa.FixedSizeListArray.from_arrays(pa.array(full.ravel(), pa.float32()), labels)
        )
        s = self.runner.stats
        stats = {"batches": s.batches - snapshot[0], "rows": s.rows - snapshot[1],
                 "real_tokens": s.real_tokens - snapshot[2], "padded_tokens": s.padded_tokens - snapshot[3],
                 "oom_splits": s.oom_splits - snapshot[4], "device_busy_s": s.busy_s - snapshot[5],
                 "dedup_hits": hits, "dedup_lookups": len(idx)}
        ray.get(self.collector.add.remote("inference", start, end, len(idx), self.worker, rows_in=n,
                                          device=self.device_name, stats=stats))
        return out


class _Postprocess:
    """CPU stage, as Ray tasks: `label_columns`, then the output row as the local engine builds it."""

    def __init__(self, spec: ModelSpec, text_field: str, id_field: str, keep_text: bool, all_scores: bool,
                 collector) -> None:
        self.spec, self.text_field, self.id_field = spec, text_field, id_field
        self.keep_text, self.all_scores, self.collector = keep_text, all_scores, collector

    def __call__(self, table: pa.Table) -> pa.Table:
        import ray

        start = time.time()
        n = table.num_rows
        idx = _valid_rows(table)
        bad = np.setdiff1d(np.arange(n), idx)
        labels = len(self.spec.labels)
        logits = np.asarray(table.column(LOGITS).combine_chunks().flatten().to_numpy(zero_copy_only=False))
        logits = logits.reshape(n, labels)[idx]
        empty = np.zeros(0, np.int32)
        prep = PreprocessedBatch(
            [], empty, _column_numpy(table, LENGTH)[idx], _column_numpy(table, TRUNCATED)[idx].astype(bool),
            _column_numpy(table, WORDS)[idx], _column_numpy(table, SENTENCES)[idx], _column_numpy(table, CHARS)[idx],
        )
        columns = label_columns(logits, self.spec.labels, self.spec.activation, prep, self.spec.name,
                                self.all_scores)
        valid = table.take(pa.array(idx)) if len(idx) < n else table
        rows = _column_numpy(valid, ROW)
        # As the local reader: id column first (the row number when the input has none), then every other
        # input column but the text, then the text (--keep-text), then the classifier's columns.
        names = [c for c in valid.column_names if c not in INTERNAL and c not in (self.text_field, self.id_field)]
        id_column = (valid.column(self.id_field) if self.id_field in valid.column_names
                     else pa.array(rows, pa.int64()))
        out = pa.table([id_column] + [valid.column(c) for c in names], names=[self.id_field] + names)
        if self.keep_text:
            out = out.append_column(self.text_field, valid.column(self.text_field).cast(pa.string()))
        for name, values in columns.items():
            if name in out.column_names:
                out = out.drop_columns([name])  # the classifier's columns win over same-named input columns
            out = out.append_column(name, values)
        out = out.append_column(ROW, pa.array(rows, pa.int64()))
        out = out.append_column(PROBLEM, pa.nulls(len(idx), pa.string()))
        if len(bad):
            invalid = pa.table({ROW: pa.array(_column_numpy(table, ROW)[bad], pa.int64()),
                                PROBLEM: table.column(PROBLEM).take(pa.array(bad))})
            out = pa.concat_tables([out, invalid], promote_options="default")
        ray.get(self.collector.add.remote("postprocess", start, time.time(), len(idx), _worker_name(), rows_in=n))
        return out


# -------------------------------------------------------------------------------------------------- engine


def _find_cause(exc: BaseException, kind: type) -> BaseException | None:
    """The first exception of `kind` in a chain of Ray wrappers (RayTaskError.cause, __cause__, __context__)."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        cause = getattr(e, "cause", None)
        if isinstance(e, kind):
            # Ray re-raises a task's error as a subclass of it whose text is a whole traceback: the original
            # exception, with its own one-line message, is its `cause`.
            return cause if isinstance(cause, kind) else e
        todo += [cause, e.__cause__, e.__context__]
    return None


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception behind Ray's wrappers."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        nxt = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(nxt, BaseException):
            break
        exc = nxt
    return exc


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(exc: BaseException) -> str:
    lines = [_ANSI.sub("", ln).strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds on a HOST:PORT nobody answers (ray.init would retry for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # "auto", ray://..., or something ray.init knows better
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InputError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
                         hint="start its head with `ray start --head` and pass HEAD_IP:6379") from None


def size_pools(resources: dict, nodes: list[dict], device: str = "auto", cpu_workers: int | None = None,
               torch_threads: int | None = None) -> dict[str, Any]:
    """Pool sizes from what the cluster has (ray.cluster_resources(), alive ray.nodes()); docs/ray.md explains.

    GPUs: one inference actor per GPU (num_gpus=1 and one CPU to feed it); every other CPU preprocesses.
    CPU only: a quarter of the CPUs preprocess (the model needs the rest, as in the local engine); inference
    actors hold the rest, at most a node's CPUs minus one each, so every node keeps a CPU for its read and
    write tasks (an actor holding every CPU starves them, and the pipeline stalls).
    """
    total_cpus = max(1, int(resources.get("CPU", 1)))
    gpus = int(resources.get("GPU", 0))
    node_cpus = max([int(n.get("Resources", {}).get("CPU", 0)) for n in nodes] or [total_cpus]) or 1
    if device == "cuda" and gpus == 0:
        raise ModelError("--device cuda was asked for but the Ray cluster has no GPU",
                         hint="use --device auto or cpu, or add a GPU node")
    use_gpu = gpus > 0 and device in ("auto", "cuda")
    if use_gpu:
        actors, actor_cpus, device = gpus, 1.0, "cuda"
        cpu_workers = cpu_workers or max(1, total_cpus - actors)
    else:
        device = "cpu" if device in ("auto", "cuda") else device
        cpu_workers = cpu_workers or max(1, total_cpus // 4)
        spare = max(1, total_cpus - cpu_workers)
        actor_cpus = float(max(1, min(spare, node_cpus - 1)))
        actors = max(1, int(spare // actor_cpus))
    task_cpus = 1.0
    if node_cpus < 2:  # a one-CPU node: halves, or the actor and the tasks could never run side by side
        actor_cpus, task_cpus = 0.5, 0.5
        actors = actors if use_gpu else 1
    # Ray's CPU counts are for scheduling. On a CPU the model also runs on the CPU it leaves free, as the local
    # engine's model shares the cores with its pool: reading and tokenizing take ~1% of the model's time.
    threads = torch_threads or (None if use_gpu else max(1, min(node_cpus, int(actor_cpus) + 1)))
    return {"use_gpu": use_gpu, "device": device, "gpus": gpus, "total_cpus": total_cpus, "nodes": len(nodes),
            "cpu_workers": cpu_workers, "actors": actors, "actor_cpus": actor_cpus, "task_cpus": task_cpus,
            "torch_threads": threads}


class RayEngine:
    """Runs a classify job on a Ray cluster (or a Ray it starts on this machine); returns the local RunResult."""

    def __init__(self, opts, on_rows: Callable[[int], None] | None = None):
        self.opts = opts
        self.on_rows = on_rows or (lambda n: None)

    # --- set-up -------------------------------------------------------------------------------------------
    def _check(self) -> tuple[str, str]:
        o = self.opts
        if o.mode != "mixed":
            raise InputError("--mode gpu-only runs every stage in one process", hint="use it with --engine local")
        if o.resume:
            raise InputError("--resume is not supported with --engine ray", hint="rerun the job, or use --engine local")
        return check_paths(o)  # the local engine's file-level checks, before any work

    def _csv_header(self) -> pa.Schema:
        try:
            return pacsv.open_csv(self.opts.input, read_options=pacsv.ReadOptions(block_size=1 << 20)).schema
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{self.opts.input}: cannot read as csv: {_first_line(exc)}") from exc

    def _connect(self) -> bool:
        """Join the cluster (or start a local Ray); True when this call started it, so it is ours to stop."""
        import ray

        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.ERROR, "configure_logging": True}
        address = self.opts.ray_address or None
        if address is None:
            kwargs["num_cpus"] = os.cpu_count() or 1
        else:
            _check_reachable(address)
        # Ray's C++ core logs notices on stderr that are not errors of this run (real failures reach us as
        # exceptions); a user who wants them sets RAY_BACKEND_LOG_LEVEL.
        quiet_backend = "RAY_BACKEND_LOG_LEVEL" not in os.environ
        if quiet_backend:
            os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            hint = "start it with `ray start --head`, or leave --ray-address unset"
            if address and os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
                hint = ("if the cluster uses token authentication (Ray's default), export RAY_AUTH_MODE=token "
                        "with the head's ~/.ray/auth_token copied here or its value in RAY_AUTH_TOKEN")
            raise InputError(f"cannot start or join {where}: {_first_line(exc)}", hint=hint) from exc
        finally:
            if quiet_backend:
                os.environ.pop("RAY_BACKEND_LOG_LEVEL", None)
        return True

    def _plan(self) -> dict[str, Any]:
        import ray

        o = self.opts
        return size_pools(ray.cluster_resources(), [n for n in ray.nodes() if n.get("Alive")], o.device,
                          o.cpu_workers, o.torch_threads)

    # --- the dataset --------------------------------------------------------------------------------------
    def _read(self, ray_data, fmt: str):
        o = self.opts
        path = str(o.input.resolve())
        common = {"partitioning": None, "file_extensions": None}
        if fmt == "jsonl":
            # pyarrow's JSON reader reads JSON lines with stable types ("0001" stays a string); Ray's lines=True
            # path goes through pandas, which turns such strings into numbers.
            return ray_data.read_json(path, **common)
        if fmt == "parquet":
            return ray_data.read_parquet(path, **common)
        header = self._csv_header()
        types = {o.text_field: pa.string()}
        if o.id_field in header.names:
            kind = header.field(o.id_field).type
            types[o.id_field] = kind if not pa.types.is_null(kind) else pa.string()
        return ray_data.read_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=4 << 20),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            **common,
        )

    def _build(self, ray_data, fmt: str, spec: ModelSpec, tokenizer_json: str, pad_id: int, plan: dict, collector):
        from ray.data import ActorPoolStrategy, TaskPoolStrategy

        o = self.opts
        rows = chunk_rows_for(o)
        ds = self._read(ray_data, fmt)
        ds = ds.map_batches(_RowNumberer, fn_constructor_kwargs={"collector": collector},
                            compute=ActorPoolStrategy(size=1, max_tasks_in_flight_per_actor=1),
                            num_cpus=0, batch_size=None, batch_format="pyarrow", zero_copy_batch=True)
        ds = ds.map_batches(
            _Preprocess(tokenizer_json, spec.max_length, o.clean, o.text_field, o.id_field, LINE_OFFSET[fmt],
                        o.on_error, str(o.input), o.keep_text, o.dedup, collector),
            compute=TaskPoolStrategy(size=plan["cpu_workers"]), num_cpus=plan["task_cpus"], batch_size=rows,
            batch_format="pyarrow",
        )
        ds = ds.map_batches(
            _Infer,
            fn_constructor_kwargs={"model": o.model, "device": plan["device"], "precision": o.precision,
                                   "torch_threads": plan["torch_threads"], "pad_id": pad_id,
                                   "batch_size": o.batch_size, "max_batch_tokens": o.max_batch_tokens,
                                   "dedup": o.dedup, "collector": collector},
            compute=ActorPoolStrategy(size=plan["actors"], max_tasks_in_flight_per_actor=TASKS_IN_FLIGHT_PER_ACTOR),
            num_gpus=1 if plan["use_gpu"] else None, num_cpus=plan["actor_cpus"], memory=INFERENCE_ACTOR_MEMORY,
            batch_size=rows, batch_format="pyarrow",
        )
        ds = ds.map_batches(
            _Postprocess(spec, o.text_field, o.id_field, o.keep_text, o.all_scores, collector),
            compute=TaskPoolStrategy(size=plan["cpu_workers"]), num_cpus=plan["task_cpus"], batch_size=None,
            batch_format="pyarrow",
        )
        return ds

    # --- run ------------------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

        t_start = time.time()
        o = self.opts
        in_fmt, out_fmt = self._check()
        spec = resolve_model(o.model)
        tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
        started = self._connect()
        try:
            return self._run(t_start, in_fmt, out_fmt, spec, tokenizer_json, pad_id)
        finally:
            if started:
                import ray

                ray.shutdown()

    def _run(self, t_start, in_fmt, out_fmt, spec, tokenizer_json, pad_id) -> RunResult:
        import ray
        import ray.data as ray_data
        from ray.data import DataContext

        o = self.opts
        plan = self._plan()
        collector = ray.remote(num_cpus=0)(_Collector).remote()
        parts = o.output.resolve().parent / f".{o.output.name}.ray-{uuid.uuid4().hex[:8]}"
        ctx = DataContext.get_current()
        saved = {name: getattr(ctx, name) for name in ("enable_progress_bars", "print_on_execution_start",
                                                       "per_stage_map_timing", "raise_original_map_exception")
                 if hasattr(ctx, name)}
        saved_order = ctx.execution_options.preserve_order
        data_logger = logging.getLogger("ray.data")
        saved_level = data_logger.level
        stop = threading.Event()
        poller = threading.Thread(target=self._poll_progress, args=(collector, stop), daemon=True)
        try:
            ctx.execution_options.preserve_order = True
            ctx.enable_progress_bars = False
            if "print_on_execution_start" in saved:
                ctx.print_on_execution_start = False
            if "per_stage_map_timing" in saved:
                ctx.per_stage_map_timing = True  # a fused operator's time split per stage
            if "raise_original_map_exception" in saved:
                ctx.raise_original_map_exception = True  # our errors (RowError) reach the driver as themselves
            # Our progress bar, report and one-line errors replace Ray Data's own messages and tracebacks.
            data_logger.setLevel(logging.CRITICAL)
            ds = self._build(ray_data, in_fmt, spec, tokenizer_json, pad_id, plan, collector)
            poller.start()
            exec_start = time.time()
            try:
                ds.write_parquet(str(parts))
            except Exception as exc:  # noqa: BLE001 - mapped to one clear line
                raise self._user_error(exc, in_fmt) from None
            exec_end = time.time()
            stop.set()
            poller.join(timeout=5)
            snap = ray.get(collector.snapshot.remote())
            self._report_remaining_progress(snap)
            try:
                summary = ds.get_stats_summary()
            except Exception:  # noqa: BLE001 - statistics are best effort
                summary = None
            merge_start = time.time()
            tally, counts, n_parts = self._merge(parts, out_fmt, snap)
            merge_end = time.time()
        finally:
            stop.set()
            ctx.execution_options.preserve_order = saved_order
            for name, value in saved.items():
                setattr(ctx, name, value)
            data_logger.setLevel(saved_level)
            shutil.rmtree(parts, ignore_errors=True)
            try:
                ray.kill(collector)
            except Exception:  # noqa: BLE001
                pass
        t_end = time.time()
        return self._result(spec, plan, snap, summary, tally, counts, n_parts, in_fmt, out_fmt, t_start, exec_start,
                            exec_end, merge_start, merge_end, t_end)

    def _poll_progress(self, collector, stop: threading.Event) -> None:
        import ray

        self._reported = 0
        while not stop.wait(PROGRESS_POLL_S):
            try:
                done = ray.get(collector.progress.remote(), timeout=5)
            except Exception:  # noqa: BLE001 - progress is cosmetic
                continue
            if done > self._reported:
                self.on_rows(done - self._reported)
                self._reported = done

    def _report_remaining_progress(self, snap: dict) -> None:
        done = snap["rows_done"]
        reported = getattr(self, "_reported", 0)
        if done > reported:
            self.on_rows(done - reported)
            self._reported = done

    def _user_error(self, exc: BaseException, fmt: str) -> BaseException:
        """One clear line for what went wrong inside the Ray job (Ray wraps task errors several times)."""
        mine = _find_cause(exc, MixedclfError)
        if mine is not None:
            return mine
        missing = _find_cause(exc, FileNotFoundError)
        if missing is not None:
            return InputError(f"{self.opts.input}: not found on a Ray worker: {_first_line(missing)}",
                              hint="on a cluster, input and output must be on storage every node mounts at one path")
        parse = _find_cause(exc, pa.ArrowInvalid) or _find_cause(exc, json.JSONDecodeError)
        if parse is not None:
            hint = ("the local engine reads JSONL line by line and skips malformed rows: --engine local"
                    if fmt == "jsonl" else "check the file, or try --engine local")
            return InputError(f"{self.opts.input}: Ray Data cannot read it as {fmt}: {_first_line(parse)}", hint=hint)
        root = _root_cause(exc)
        return MixedclfError(f"the Ray job failed: {type(root).__name__}: {_first_line(root)}",
                             hint="Ray's own logs are under /tmp/ray/session_latest/logs on each node")

    # --- merge ----------------------------------------------------------------------------------------------
    def _merge(self, parts: Path, out_fmt: str, snap: dict):
        """Parts in row order -> OUTPUT (atomically) + OUTPUT.errors.jsonl; returns the tally and counts."""
        o = self.opts
        files = sorted(parts.glob("*.parquet")) if parts.is_dir() else []
        ranges = []
        for f in files:
            rows = pq.read_table(f, columns=[ROW]).column(ROW).to_numpy()
            if len(rows):
                ranges.append((int(rows.min()), int(rows.max()), f))
        ranges.sort(key=lambda r: r[0])
        disjoint = all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))
        expected = snap["stages"].get("number", {}).get("rows_in", 0)
        writer = ChunkWriter(o.output, out_fmt)
        errors = ErrorLog(o.output)
        tally = LabelTally()
        counts: dict[str, Any] = {"in": 0, "out": 0, "errored": 0, "id_hashes": [], "next_row": 0}
        try:
            if disjoint:
                for _, _, f in ranges:
                    self._merge_table(pq.read_table(f), writer, errors, tally, counts)
            elif ranges:
                # Parts overlap (never seen with preserve_order): sort everything at once.
                table = pa.concat_tables([pq.read_table(f) for _, _, f in ranges], promote_options="default")
                self._merge_table(table, writer, errors, tally, counts)
            if counts["in"] != expected:
                raise MixedclfError(
                    f"the Ray job wrote {counts['in']:,} of {expected:,} rows where this machine can see them",
                    hint="on a cluster, put the output on storage every node mounts at the same path",
                )
            writer.commit()
            errors.commit()
        except BaseException:
            writer.abort()
            errors.abort()
            raise
        hashes = np.concatenate(counts["id_hashes"]) if counts["id_hashes"] else np.zeros(0, np.int64)
        counts["duplicate_ids"] = int(len(hashes) - len(np.unique(hashes)))
        return tally, counts, len(files)

    def _merge_table(self, table: pa.Table, writer: ChunkWriter, errors: ErrorLog, tally: LabelTally,
                     counts: dict) -> None:
        rows = table.column(ROW).to_numpy()
        if len(rows) > 1 and not np.all(rows[1:] > rows[:-1]):
            table = table.sort_by(ROW)
            rows = table.column(ROW).to_numpy()
        # Every row number exactly once, in order: 0, 1, 2, ... across all parts.
        if len(rows) and not (rows[0] == counts["next_row"] and rows[-1] == counts["next_row"] + len(rows) - 1
                              and np.all(np.diff(rows) == 1)):
            raise MixedclfError("the Ray job's output has missing or repeated rows (a Ray worker was restarted "
                                "part-way?); nothing was written", hint="rerun the job")
        counts["next_row"] += len(rows)
        problems = table.column(PROBLEM)
        valid = table.filter(pc.is_null(problems))
        bad = table.filter(pc.is_valid(problems))
        if valid.num_rows:
            valid = valid.drop_columns([c for c in INTERNAL if c in valid.column_names])
            tally.add({k: valid.column(k).combine_chunks() for k in ("label", "confidence", "score", "truncated")})
            ids = valid.column(self.opts.id_field).to_pylist()
            counts["id_hashes"].append(np.fromiter((hash(str(i)) for i in ids), dtype=np.int64, count=len(ids)))
            writer.write(valid)
        if bad.num_rows:
            errors.write([json.loads(p) for p in bad.column(PROBLEM).to_pylist()])
        counts["in"] += table.num_rows
        counts["out"] += valid.num_rows
        counts["errored"] += bad.num_rows

    # --- report ---------------------------------------------------------------------------------------------
    def _result(self, spec, plan, snap, summary, tally, counts, n_parts, in_fmt, out_fmt, t_start, exec_start,
                exec_end, merge_start, merge_end, t_end) -> RunResult:
        o = self.opts
        rows_in, rows_out, rows_errored = counts["in"], counts["out"], counts["errored"]
        duplicate_ids = counts["duplicate_ids"]
        stages = snap["stages"]
        actors = snap["actors"]
        device = ", ".join(sorted({a["device"] for a in actors.values()})) or plan["device"]
        ops = _operator_stats(summary)

        def clock(name: str, billing: str, dev: str, workers: int) -> StageMeasurement:
            s = stages.get(name)
            c = StageClock(name, billing, dev, workers=workers)
            if s:
                c.add(s["first"], s["last"], s["items"])
                c.busy_s = s["busy_s"]
            return c.measurement()

        loads = [(a["load_start"], a["load_end"]) for a in actors.values()]
        load_wall = (max(e for _, e in loads) - min(b for b, _ in loads)) if loads else 0.0
        load = StageMeasurement(name="model_load", billing="gpu", device=device, items=0,
                                busy_s=sum(e - b for b, e in loads), wall_s=load_wall, workers=max(1, len(loads)))
        read_busy = sum(op["busy_s"] for op in ops if op["stage"] == "read")
        read_first = min((op["first"] for op in ops if op["stage"] == "read" and op["first"]), default=None)
        read_last = max((op["last"] for op in ops if op["stage"] == "read" and op["last"]), default=None)
        read = StageMeasurement(
            name="read", billing="cpu", device="cpu", items=rows_in, busy_s=read_busy,
            wall_s=(read_last - read_first) if read_first and read_last else read_busy,
            workers=1,  # Ray Data reads one file with one task (it splits the output, not the reading)
        )
        write_busy = sum(op["busy_s"] for op in ops if op["stage"] == "write")
        write_first = min((op["first"] for op in ops if op["stage"] == "write" and op["first"]), default=None)
        write_last = max((op["last"] for op in ops if op["stage"] == "write" and op["last"]), default=None)
        merge_s = merge_end - merge_start
        write = StageMeasurement(
            name="write", billing="cpu", device="cpu", items=rows_out, busy_s=write_busy + merge_s,
            wall_s=((write_last - write_first) if write_first and write_last else write_busy) + merge_s, workers=1,
        )
        cpu_workers = plan["cpu_workers"]
        def processes(stage: str) -> int:  # distinct worker processes that ran the stage
            return max(1, len(stages.get(stage, {}).get("workers", [])))

        pre = clock("preprocess", "cpu", "cpu", min(cpu_workers, processes("preprocess")))
        inf = clock("inference", "gpu", device, max(1, len(actors)))
        post = clock("postprocess", "cpu", "cpu", processes("postprocess"))
        measurements = RunMeasurements(
            mode="mixed", items=rows_out, stages=[load, read, pre, inf, post, write], wall_s=t_end - t_start,
            gpu_held_s=sum(max(0.0, (a["last_end"] or a["load_end"]) - a["load_start"]) for a in actors.values()),
            cpu_pool_held_s=exec_end - exec_start, cpu_pool_workers=cpu_workers,
        )
        st: dict[str, float] = {}
        for a in actors.values():
            for key, value in a["stats"].items():
                st[key] = st.get(key, 0) + value
        first_inference = stages.get("inference", {}).get("first")
        dedup_rate = st.get("dedup_hits", 0) / st["dedup_lookups"] if st.get("dedup_lookups") else 0.0
        settings = {
            "mode": o.mode, "device": device, "precision": o.precision, "cpu_workers": cpu_workers,
            "torch_threads": plan["torch_threads"], "batch_size": o.batch_size,
            "max_batch_tokens": o.max_batch_tokens, "chunk_rows": chunk_rows_for(o), "clean": o.clean,
            "dedup": o.dedup, "input_format": in_fmt, "output_format": out_fmt,
            "engine": "ray", "ray_address": o.ray_address, "inference_workers": plan["actors"],
            "inference_worker_cpus": plan["actor_cpus"], "inference_worker_gpus": 1 if plan["use_gpu"] else 0,
        }
        extra = {
            "micro_batches": int(st.get("batches", 0)),
            "mean_batch_rows": (st.get("rows", 0) / st["batches"]) if st.get("batches") else 0.0,
            "padding_fraction": 1 - st["real_tokens"] / st["padded_tokens"] if st.get("padded_tokens") else 0.0,
            "tokens": int(st.get("real_tokens", 0)),
            "truncated_rows": tally.truncated,
            "oom_splits": int(st.get("oom_splits", 0)),
            "device_busy_s": float(st.get("device_busy_s", 0.0)),
            "pool_restarts": 0,
            "duplicate_fraction": dedup_rate,
            "dedup_hit_rate": dedup_rate,
            "duplicate_ids": duplicate_ids,
            "resumed_from_chunk": 0,
            "startup_s": (first_inference - t_start) if first_inference else None,
            "ray_nodes": plan["nodes"], "ray_cluster_cpus": plan["total_cpus"], "ray_cluster_gpus": plan["gpus"],
            "ray_parts": n_parts, "ray_merge_s": merge_s, "ray_execution_s": exec_end - exec_start,
            "ray_operators": [{k: op[k] for k in ("name", "tasks", "busy_s", "wall_s", "rows")} for op in ops],
            "inference_devices": sorted({a["device"] for a in actors.values()}),
            # Seconds after the Ray job started: where its start-up time goes.
            "ray_timeline": {
                "model_load": [round(min(s for s, _ in loads) - exec_start, 3),
                               round(max(e for _, e in loads) - exec_start, 3)] if loads else None,
                **{k: [round(v["first"] - exec_start, 3), round(v["last"] - exec_start, 3)] for k, v in stages.items()},
                "end": round(exec_end - exec_start, 3),
            },
        }
        return RunResult(spec, device, measurements, tally, rows_in, rows_out, rows_errored, settings, extra)


_OWN_STAGES = ("_Preprocess", "_Infer", "_Postprocess")


def _sub_stage(name: str) -> str | None:
    """Which report stage a Ray Data (sub-)operator belongs to; None for those the callables time themselves."""
    if name.startswith("Read") or "_RowNumberer" in name or name.startswith("SplitBlocks"):
        return "read"
    if name.startswith("Write"):
        return "write"
    return None


def _operator_stats(summary) -> list[dict]:
    """Ray Data's per-operator statistics, fused operators split per stage when Ray measured them so."""
    out: list[dict] = []
    summaries, todo, seen = [], [summary], set()
    while todo:  # the write's summary holds the upstream operators as parents
        s = todo.pop()
        if s is None or id(s) in seen:
            continue
        seen.add(id(s))
        summaries.append(s)
        todo += list(getattr(s, "parents", None) or [])
    ops = [op for s in reversed(summaries) for op in (getattr(s, "operators_stats", None) or [])]
    for op in ops:
        subs = op.operator_name.split("->")
        wall = op.wall_time.sum if op.wall_time else 0.0
        tasks = int(op.wall_time.count) if op.wall_time else 0
        rows = int(op.output_num_rows.sum) if op.output_num_rows else 0
        per_stage = op.stage_time if getattr(op, "stage_time", None) and len(op.stage_time) == len(subs) else None
        first, last = op.earliest_start_time, op.latest_end_time
        for i, sub in enumerate(subs):
            stage = _sub_stage(sub)
            if per_stage is not None:
                busy = float(per_stage[i].sum)
            elif len(subs) == 1:
                busy = float(wall)
            else:
                # Fused without a split: Ray's part of the time goes to the Ray stage, ours is timed by the callable.
                busy = float(wall) if stage is not None and not any(s in op.operator_name for s in _OWN_STAGES) else 0.0
            out.append({"name": sub, "op": op.operator_name, "stage": stage, "tasks": tasks, "busy_s": busy,
                        "wall_s": (last - first) if first and last else 0.0, "first": first, "last": last,
                        "rows": rows})
    return out
