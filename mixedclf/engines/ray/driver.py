"""The same pipeline on Ray Data, for inputs that outgrow one machine.

    read (Ray Data reader, tasks) -> number rows (one tiny actor) -> preprocess (tasks on CPUs)
      -> inference (fixed actor pool: model loaded once per actor, one GPU each when there are GPUs)
      -> postprocess (tasks on CPUs) -> write Parquet parts (Ray Data writer, tasks)
      -> driver: merge the parts in row order into OUTPUT (atomic) and OUTPUT.errors.jsonl

The stages are the stage contract every runtime drives (core.pipeline: `to_sequences`, `StagePipeline.infer`,
`OutputStep.table`; and the reader's `text_problem`); only the orchestration differs. Order: Ray Data runs with
`preserve_order`, a single actor numbers the rows as they come off the reader, and the merge sorts the parts by
that number, so the output is in input order whatever the cluster does. Invalid rows travel with the data (a
problem column) and end up in OUTPUT.errors.jsonl exactly as with the local engine.

Timings: each stage callable measures its own busy time and reports it (with its worker and device) to a small
collector actor; read and write come from Ray Data's per-operator statistics. They map onto the same
StageMeasurements as the local engine's, so the cost report has the same shape.

Sizing (see docs/ray.md): with GPUs, one inference actor per GPU (`num_gpus=1`, one CPU to feed it) and every
other CPU preprocesses; without, one CPU inference actor holding the CPUs the preprocessing pool leaves, never a
whole node, so read and write tasks always find a CPU.

The parts live beside this module: connect (joining the cluster), stages (the stage callables and their collector),
sizing (pool sizes), merge (the ordered merge of the parts), report (the RunResult from the job's statistics) and
stats (Ray Data's operator statistics for the report) and cache (the prediction cache: one actor on the driver's
node holds the file, the inference actors ask it before their device sees a row).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from typing import Any, Callable

import pyarrow as pa

from mixedclf.core.columns import check_option_names
from mixedclf.core.options import chunk_rows_for
from mixedclf.engines.ray.cache import finish_keeper, start_keeper
from mixedclf.engines.ray.connect import connect
from mixedclf.engines.ray.errors import first_line, user_error
from mixedclf.engines.ray.merge import merge_parts
from mixedclf.engines.ray.report import RayRun, Timeline, ray_result
from mixedclf.engines.ray.sizing import PoolPlan, size_pools
from mixedclf.engines.ray.stages import Collector, Infer, Postprocess, Preprocess, RowNumberer
from mixedclf.engines.result import RunResult
from mixedclf.errors import InputError
from mixedclf.io.formats import spec as format_spec
from mixedclf.io.prediction_cache import PredictionCache
from mixedclf.io.readers import column_in_file
from mixedclf.io.runio import resolve_io
from mixedclf.models.spec import ModelSpec, resolve_model

RAY_PATH = "path"  # the column Ray Data fills with each row's file when it reads with include_paths
# Blocks queued per inference actor: the next batches are fetched while the current one runs, so the device
# does not wait on the object store between batches.
TASKS_IN_FLIGHT_PER_ACTOR = 4
PROGRESS_POLL_S = 0.5
# Heap each inference actor reserves. Besides being honest about the model's footprint, it keeps Ray Data from
# fusing the preprocessing tasks into the inference actors (it fuses task->actor maps whose remote arguments
# match), which would run the CPU stage inside the device's process, one batch after another.
INFERENCE_ACTOR_MEMORY = 512 * 1024**2


class RayEngine:
    """Runs a classify job on a Ray cluster (or a Ray it starts on this machine); returns the local RunResult."""

    def __init__(self, opts, on_rows: Callable[[int], None] | None = None, answers: PredictionCache | None = None,
                 warn: Callable[[str], None] | None = None):
        self.opts = opts
        self.on_rows = on_rows or (lambda n: None)
        self.answers = answers  # the prediction cache the driver opened; its counts are this run's when it ends
        self.warn = warn or (lambda line: None)

    # --- set-up -------------------------------------------------------------------------------------------
    def _check(self) -> tuple[str, str]:
        o = self.opts
        if o.mode != "mixed":
            raise InputError("--mode gpu-only runs every stage in one process", hint="use it with --engine local")
        if o.resume:
            raise InputError("--resume is not supported with --engine ray", hint="rerun the job, or use --engine local")
        self.io = resolve_io(o)  # the local engine's file-level checks, before any work
        if self.io.source.stdin or self.io.out_kind == "stdout":
            raise InputError("--engine ray reads and writes files, not stdin or stdout", hint="use --engine local")
        files = self.io.source.files
        if any(not f.fs.equals(files[0].fs) for f in files[1:]):
            raise InputError("--engine ray reads every input file through one filesystem",
                             hint="put the files in one place, or use --engine local")
        if self.io.source.many:  # Ray Data fills its own `path` column in each row (see _read)
            for f in files:
                if column_in_file(f, self.io.in_fmt, RAY_PATH):
                    raise InputError(f"{f.name}: has a column named {RAY_PATH!r}, which Ray Data replaces with each "
                                     "row's file path when it reads several files", hint="use --engine local")
        return self.io.in_fmt, self.io.out_fmt

    def _header(self) -> pa.Schema:
        from mixedclf.io.format_csv import column_names

        first = self.io.source.files[0]
        try:
            return pa.schema([pa.field(n, pa.string()) for n in column_names(first)])
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{first.name}: cannot read as {self.io.in_fmt}: {first_line(exc)}") from exc

    def _plan(self) -> PoolPlan:
        import ray

        o = self.opts
        return size_pools(ray.cluster_resources(), [n for n in ray.nodes() if n.get("Alive")], o.device,
                          o.cpu_workers, o.torch_threads)

    # --- the dataset --------------------------------------------------------------------------------------
    def _read(self, ray_data, fmt: str):
        source = self.io.source
        # Files in the input's order; pyarrow's input streams decompress .gz/.bz2/.zst by extension. With several
        # files, each row's file path comes along (Ray's `path` column) so the merge can lay parts out by file.
        path = [f.path for f in source.files]
        common = {"partitioning": None, "file_extensions": None, "filesystem": source.files[0].fs,
                  "include_paths": source.many}
        # A format with a header is read with every column as the text it holds, as the local reader reads it (a
        # type guessed from the first block fails a later block that disagrees).
        names = self._header().names if format_spec(fmt).header_lines else None
        return format_spec(fmt).ray_read(ray_data, path, names, **common)

    def _build(self, ray_data, fmt: str, spec: ModelSpec, tokenizer_json: str, pad_id: int, plan: PoolPlan, collector,
               keeper=None):
        from ray.data import ActorPoolStrategy, TaskPoolStrategy

        o = self.opts
        rows = chunk_rows_for(o)
        ds = self._read(ray_data, fmt)
        ds = ds.map_batches(RowNumberer, fn_constructor_kwargs={"collector": collector,
                                                                "paths": self.io.source.many},
                            compute=ActorPoolStrategy(size=1, max_tasks_in_flight_per_actor=1),
                            num_cpus=0, batch_size=None, batch_format="pyarrow", zero_copy_batch=True)
        ds = ds.map_batches(
            Preprocess(tokenizer_json, spec.max_length, o.clean, o.text_field, o.id_field,
                       format_spec(fmt).first_line, o.on_error, self.io.source.spec, o.keep_text, o.dedup, collector),
            compute=TaskPoolStrategy(size=plan.cpu_workers), num_cpus=plan.task_cpus, batch_size=rows,
            batch_format="pyarrow",
        )
        ds = ds.map_batches(
            Infer,
            fn_constructor_kwargs={"model": o.model, "device": plan.device, "precision": o.precision,
                                   "backend": o.backend,
                                   "torch_threads": plan.torch_threads, "pad_id": pad_id,
                                   "batch_size": o.batch_size, "max_batch_tokens": o.max_batch_tokens,
                                   "dedup": o.dedup, "collector": collector, "keeper": keeper, "clean": o.clean,
                                   "tokenizer_json": tokenizer_json if keeper is not None else ""},
            compute=ActorPoolStrategy(size=plan.actors, max_tasks_in_flight_per_actor=TASKS_IN_FLIGHT_PER_ACTOR),
            num_gpus=plan.actor_gpus or None, num_cpus=plan.actor_cpus, memory=INFERENCE_ACTOR_MEMORY,
            batch_size=rows, batch_format="pyarrow",
        )
        ds = ds.map_batches(
            Postprocess(spec, o.text_field, o.id_field, o.keep_text, o.all_scores, collector, o.output_prefix),
            compute=TaskPoolStrategy(size=plan.cpu_workers), num_cpus=plan.task_cpus, batch_size=None,
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
        check_option_names(o.id_field, o.text_field, o.keep_text, spec.labels, o.all_scores, o.output_prefix)
        tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
        started = connect(o.ray_address)
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
        collector = ray.remote(num_cpus=0)(Collector).remote()
        parts = o.output.absolute().parent / f".{o.output.name}.ray-{uuid.uuid4().hex[:8]}"
        ctx = DataContext.get_current()
        saved = {name: getattr(ctx, name) for name in ("enable_progress_bars", "print_on_execution_start",
                                                       "per_stage_map_timing", "raise_original_map_exception")
                 if hasattr(ctx, name)}
        saved_order = ctx.execution_options.preserve_order
        data_logger = logging.getLogger("ray.data")
        saved_level = data_logger.level
        stop = threading.Event()
        poller = threading.Thread(target=self._poll_progress, args=(collector, stop), daemon=True)
        keeper = start_keeper(self.answers, self.warn) if self.answers is not None else None
        snap: dict[str, Any] | None = None
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
            ds = self._build(ray_data, in_fmt, spec, tokenizer_json, pad_id, plan, collector, keeper)
            poller.start()
            exec_start = time.time()
            try:
                ds.write_parquet(str(parts))
            except Exception as exc:  # noqa: BLE001 - mapped to one clear line
                raise user_error(exc, self.io.source.spec, in_fmt) from None
            for file in self.io.source.files:  # as the local reader does, before anything is committed
                file.check_unchanged()
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
            tally, counts, n_parts = merge_parts(parts, o.output, out_fmt, o.id_field,
                                                 snap["stages"].get("number", {}).get("rows_in", 0),
                                                 kind=self.io.out_kind, rows_per_file=self.io.rows_per_file,
                                                 file_starts=self._file_ranges(snap),
                                                 line_offset=format_spec(in_fmt).first_line)
            merge_end = time.time()
        finally:
            stop.set()
            ctx.execution_options.preserve_order = saved_order
            for name, value in saved.items():
                setattr(ctx, name, value)
            data_logger.setLevel(saved_level)
            shutil.rmtree(parts, ignore_errors=True)
            if self.answers is not None:
                self._finish_cache(keeper, snap)
            try:
                ray.kill(collector)
            except Exception:  # noqa: BLE001
                pass
        t_end = time.time()
        return ray_result(o, RayRun(spec, plan, snap, summary, tally, counts, n_parts, in_fmt, out_fmt),
                          Timeline(t_start, exec_start, exec_end, merge_start, merge_end, t_end))

    def _finish_cache(self, keeper, snap: dict | None) -> None:
        """The run's cache counts, from every inference actor's figures (none when the job failed) and the keeper's.
        A cache that served no part of the run (it could not be opened) missed every row, as on the local engine."""
        assert self.answers is not None
        totals: dict[str, float] = {}
        for actor in (snap or {}).get("actors", {}).values():
            for name in ("answer_hits", "answer_misses", "sequences"):
                totals[name] = totals.get(name, 0) + actor["stats"].get(name, 0)
        if keeper is None:
            self.answers.stats.misses = int(totals.get("sequences", 0))
            return
        finish_keeper(keeper, self.answers, int(totals.get("answer_hits", 0)), int(totals.get("answer_misses", 0)),
                      (snap or {}).get("cache_lost"), self.warn)

    def _file_ranges(self, snap: dict) -> list[tuple[int, int, str]] | None:
        """(first row, source index, file name) for each run of rows the numberer saw from one file."""
        source = self.io.source
        if not source.many:
            return None
        index = {f.path: i for i, f in enumerate(source.files)}
        ranges = []
        for path, first in snap.get("files", []):
            number = index.get(path, index.get(path.lstrip("/"), index.get("/" + path)))
            if number is None:
                raise InputError(f"Ray read a file the input does not name: {path}")
            ranges.append((first, number, source.files[number].name))
        return sorted(ranges)

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
