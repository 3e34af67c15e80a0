"""The local engine's chunk feed: the input read chunk by chunk and each chunk preprocessed, in input order.

With a CPU pool, CHUNKS_AHEAD chunks are read and handed to the pool ahead of the one on the device; a pool
whose worker died is replaced, and rows that keep killing it are set aside as row errors (engines/poison.py).
Without one (gpu-only mode) each chunk is preprocessed in this process when it is asked for.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from mixedclf.core.answers import AnswerReader
from mixedclf.core.preprocess import MAX_TEXT_CHARS
from mixedclf.core.sequences import Sequences, concat_sequences, to_sequences
from mixedclf.core.stats import StageClock
from mixedclf.engines.plan import RunPlan
from mixedclf.engines.poison import RESTARTS_BEFORE_SPLIT, isolate, set_aside
from mixedclf.errors import RowError, StageTimeout
from mixedclf.io.chunks import InputChunk, chunk_piece
from mixedclf.io.readers import iter_chunks
from mixedclf.runtime.control import StopSignals
from mixedclf.runtime.pool import slices, start_worker_pool, stop_pool
from mixedclf.runtime.workers import preprocess_task

# Chunks read and handed to the pool ahead of the one on the device.
CHUNKS_AHEAD = 2


def refuse_bad_rows(chunk: InputChunk, on_error: str, source: str) -> None:
    """With --on-error fail, a chunk's first bad row ends the run (RowError, one line); with skip they go to the
    errors file as the chunk is written."""
    if chunk.problems and on_error == "fail":
        p = chunk.problems[0]
        where = f"row {p.row}" + (f" (line {p.line})" if p.line else "")
        raise RowError(f"{p.file or source}: {where}: {p.reason}", hint="fix the row, or use --on-error skip")


class ChunkFeed:
    """One run's chunks, from chunk `skip_chunks` on (those before it are in the checkpoint: read past, not
    classified again; of chunk `skip_chunks` itself, the first `skip_rows` rows, written as pieces), each with
    its preprocessed batch. Stops early once `signals` holds a signal."""

    def __init__(self, run: RunPlan, clocks: dict[str, StageClock], signals: StopSignals, skip_chunks: int = 0,
                 skip_rows: int = 0):
        self.opts, self.source, self.in_fmt, self.signals = run.opts, run.io.source, run.io.in_fmt, signals
        self.chunk_sizes = run.chunks
        self._read_clock, self._pre_clock = clocks["read"], clocks["preprocess"]
        self._skip_chunks, self._skip_rows, self._exhausted = skip_chunks, skip_rows, False
        self._chunks: Iterator[InputChunk] | None = None  # the reader, once the feed is open
        self._in_flight: deque | None = None  # [chunk, futures of its slices, or None until submitted]
        self._pool: ProcessPoolExecutor | None = None
        self._pool_args: tuple | None = None  # (workers, tokenizer JSON, max length); None in gpu-only mode
        self.restarts = 0  # pools started again after a worker died
        self.released: float | None = None  # time.monotonic() when the pool was let go, every chunk prepared
        # Rows it answers are not tokenized (a prediction cache's reader, set once the model's run key is known);
        # a callable, asked at each chunk, so a cache that stops serving the run stops being read.
        self.reader: Callable[[], AnswerReader | None] = lambda: None

    def start_pool(self, workers: int, tokenizer_json: str, max_length: int) -> None:
        """Start the CPU workers (they come up while the model loads); without this the feed works in process."""
        self._pool_args = (workers, tokenizer_json, max_length)
        self._start_pool()

    def close(self) -> None:
        if self._pool is not None:
            stop_pool(self._pool)

    def _start_pool(self) -> None:
        workers, tokenizer_json, max_length = self._pool_args
        self._pool, _ready = start_worker_pool(workers, tokenizer_json, max_length, self.opts.clean)

    def _open(self) -> None:
        o = self.opts
        # --keep-text writes each text back whole, so only then does the reader hand over huge texts whole.
        self._chunks = iter_chunks(self.source, self.in_fmt, o.text_field, o.id_field, self.chunk_sizes,
                                   max_text_chars=None if o.keep_text else MAX_TEXT_CHARS,
                                   text_as_read=o.keep_text or o.clean == "none")
        self._in_flight = deque()

    def _next_chunk(self) -> InputChunk | None:
        while True:
            start, cpu0 = time.monotonic(), time.thread_time()
            chunk = next(self._chunks, None)
            if chunk is None or chunk.index >= self._skip_chunks:
                break
        if chunk is not None and chunk.index == self._skip_chunks and self._skip_rows:
            chunk = chunk_piece(chunk, self._skip_rows, chunk.rows_in)  # the rest of a chunk cut in pieces
        if chunk is not None:
            self._read_clock.add(start, time.monotonic(), chunk.rows_in, time.thread_time() - cpu0)
        return chunk

    def fill(self) -> None:
        """Read up to CHUNKS_AHEAD chunks and hand each to the pool; waits for no worker."""
        if self._in_flight is None:
            self._open()
        workers = self._pool_args[0]
        while not self._exhausted and len(self._in_flight) < CHUNKS_AHEAD:
            chunk = self._next_chunk()
            if chunk is None:
                self._exhausted = True
            else:
                self._in_flight.append([chunk, None])
        for entry in self._in_flight:
            if entry[1] is None:
                reader = self.reader()
                entry[1] = [self._pool.submit(preprocess_task, part, None, reader)
                            for part in slices(entry[0].texts, workers)]

    def chunks(self) -> Iterator[InputChunk]:
        """The chunks as read, not preprocessed (an engine whose stages run elsewhere sends their texts)."""
        if self._in_flight is None:
            self._open()
        while self.signals.signum is None and (chunk := self._next_chunk()) is not None:
            yield chunk

    def prepared(self, tokenizer: Any = None) -> Iterator[tuple[InputChunk, Sequences]]:
        """(chunk, its sequences) in input order. With a pool, keeps a few chunks in flight ahead; without
        one, `tokenizer` (this process's) preprocesses each chunk here."""
        o = self.opts
        if self._in_flight is None:  # run() opens it before the model loads when there is a pool
            self._open()
        if self._pool_args is None:
            while self.signals.signum is None and (chunk := self._next_chunk()) is not None:
                start, cpu0 = time.monotonic(), time.thread_time()
                prep = to_sequences(chunk.texts, tokenizer, o.clean, self.reader())
                self._pre_clock.add(start, time.monotonic(), len(chunk.texts), time.thread_time() - cpu0)
                yield chunk, prep
            return

        in_flight = self._in_flight
        head_restarts = 0  # pool restarts since the chunk at the head of in_flight came in
        while self.signals.signum is None:
            try:
                self.fill()
                if not in_flight:
                    # Every chunk is preprocessed: let the workers go now, so their memory is not held while
                    # the last chunks are classified and the output is assembled.
                    self._pool.shutdown(wait=True)
                    self.released = time.monotonic()
                    return
                results = [future.result(timeout=o.stage_timeout_cpu) for future in in_flight[0][1]]
            except FutureTimeout:
                raise StageTimeout(f"preprocessing chunk {in_flight[0][0].index} took longer than "
                                   f"{o.stage_timeout_cpu:g}s", hint="raise --stage-timeout-cpu") from None
            except BrokenProcessPool:
                # A worker died (killed, out of memory): start a fresh pool and resubmit what was in flight.
                self._restart_pool()
                for entry in in_flight:
                    entry[1] = None
                head_restarts += 1
                if head_restarts < RESTARTS_BEFORE_SPLIT:
                    continue
                # The same chunk again: alone, halved down to the rows that kill a worker.
                chunk = in_flight.popleft()[0]
                chunk, results = self._isolate(chunk)
            else:
                chunk, _ = in_flight.popleft()
            head_restarts = 0
            for part, start, end, _pid, cpu_s in results:
                self._pre_clock.add(start, end, len(part), cpu_s)
            yield chunk, concat_sequences([r[0] for r in results])

    def _restart_pool(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.restarts += 1
        self._start_pool()

    def _isolate(self, chunk: InputChunk) -> tuple[InputChunk, list]:
        """The chunk preprocessed on the pool a piece at a time; rows that kill a worker become row errors."""
        timeout = self.opts.stage_timeout_cpu

        def run_piece(texts: list[str]):
            try:
                return self._pool.submit(preprocess_task, texts).result(timeout=timeout)
            except FutureTimeout:
                raise StageTimeout(f"preprocessing chunk {chunk.index} took longer than {timeout:g}s",
                                   hint="raise --stage-timeout-cpu") from None

        results, poison = isolate(chunk.texts, run_piece, self._restart_pool)
        return set_aside(chunk, poison, self.opts.id_field), results or [run_piece([])]  # [] if every row killed
