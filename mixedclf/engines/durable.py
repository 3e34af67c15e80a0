"""The local engine's durable output: the output and its error log written chunk by chunk, each written chunk
recorded in the checkpoint (when the output can be resumed), and the commit protocol at the end.

The commit seals both files, records that in the checkpoint, then renames them into place: a kill at any point
leaves either a checkpoint that resumes the chunks, or one that --resume finishes by renaming (never a shorter
output). A stop (a signal, the budget, a remote job that failed after its retries) suspends what is staged for
--resume; a failure throws it away (`ending`, around each engine's stream of chunks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict

import pyarrow as pa

from mixedclf.core.postprocess import LabelTally
from mixedclf.core.stats import RunCounts
from mixedclf.engines.writer_thread import WriterThread
from mixedclf.errors import Interrupted, MixedclfError
from mixedclf.io.checkpoint import Checkpoint, remove_checkpoint
from mixedclf.io.runio import RunIO
from mixedclf.io.sinks import open_error_log, open_writer, write_rows


class DurableOutput:
    """One run's output and error log, opened where `checkpoint` left them (a fresh start without one).

    `fingerprint` and `model_run` go into each checkpoint (what a resume must match); `spent` gives the job's
    spend so far for it.
    """

    def __init__(self, io: RunIO, checkpoint: Checkpoint | None, fingerprint: str, model_run: str,
                 spent: Callable[[], float] = lambda: 0.0, spent_s: Callable[[], float] = lambda: 0.0,
                 runs: int = 1, probe: Callable[[], float] = lambda: 0.0):
        self.io, self.output = io, io.output
        self.fingerprint, self.model_run, self.spent = fingerprint, model_run, spent
        self.spent_s, self.runs = spent_s, runs  # the job's process seconds so far; processes that worked on it
        self.probe = probe  # a process's bill at its first micro-batch (Checkpoint.probe_usd)
        self.writer = open_writer(io.output, io.out_fmt, io.out_kind, io.rows_per_file,
                                  resume_at=checkpoint.output_bytes if checkpoint else None)
        self.errors = open_error_log(io.output, io.out_kind,
                                     resume_at=checkpoint.errors.size if checkpoint else None)

    def write(self, table: pa.Table, source: int, problems: list[dict]) -> None:
        """One chunk's output rows (`source`: the input file they come from) and its row errors."""
        write_rows(self.writer, table, source)
        self.errors.write(problems)

    def save_checkpoint(self, tally: LabelTally, counts: RunCounts, committed: bool = False) -> None:
        """Flush both files and record what they hold: a resume starts after the last chunk recorded here."""
        if not self.io.resumable:
            return
        self.writer.flush()
        self.errors.flush()
        Checkpoint(fingerprint=self.fingerprint, model_run=self.model_run, chunks_done=counts.chunks_done,
                   chunk_rows_done=counts.chunk_rows_done, rows_in=counts.rows_in, rows_out=counts.rows_out,
                   rows_errored=counts.rows_errored,
                   output=self.writer.files(), errors=self.errors.state(), committed=committed,
                   tally=asdict(tally), spent_usd=self.spent(), spent_s=self.spent_s(),
                   runs=self.runs, probe_usd=self.probe()).save(self.output)

    def commit(self, tally: LabelTally, counts: RunCounts) -> None:
        """Seal, record the seal, rename into place, drop the checkpoint."""
        self.writer.seal()
        self.errors.seal()
        if self.io.out_kind == "file":  # a folder is renamed whole: its staged chunks resume it
            self.save_checkpoint(tally, counts, committed=True)
        self.errors.commit()
        self.writer.commit()
        if self.io.resumable:
            remove_checkpoint(self.output)

    def suspend(self) -> None:
        """Leave what is staged for --resume."""
        self.writer.suspend()
        self.errors.suspend()

    def abort(self) -> None:
        """Throw away what is staged, and the checkpoint that would resume it."""
        self.writer.abort()
        self.errors.abort()
        if self.io.resumable:
            remove_checkpoint(self.output)


def not_resumable(stop: MixedclfError) -> MixedclfError:
    """The stop's line for a run that read stdin or wrote stdout: no --resume can continue it."""
    line = str(stop).split(";")[0] + "; the run read stdin or wrote stdout, so it cannot be resumed"
    return Interrupted(line, stop.exit_code) if isinstance(stop, Interrupted) else type(stop)(line)


@contextmanager
def ending(sink: DurableOutput, writer: WriterThread, kept: Callable[[], bool],
           stops: tuple[type[MixedclfError], ...] = (Interrupted,)) -> Iterator[None]:
    """How a stream of chunks into `sink` (through `writer`) ends when it raises; the body commits when it does
    not. A stop (`stops`): the chunks handed to the writer before it are written and checkpointed, then what is
    staged is suspended for --resume, or thrown away where the run cannot be resumed (its line says so). Any other
    failure stops the writer and throws away what is staged, unless `kept()` (a stop came first: a second signal,
    the budget), which leaves it for --resume."""
    try:
        yield
    except stops as stop:
        try:
            writer.close()
        except BaseException:
            sink.abort()
            raise
        if sink.io.resumable:
            sink.suspend()
            raise
        sink.abort()
        raise not_resumable(stop) from None
    except BaseException:
        writer.stop()
        if not kept():
            sink.abort()
        raise
