"""Checkpoints of an interrupted run: which chunks are safely written, so --resume can continue after them.

A checkpoint vouches for the files it counts on (size and sha256 of the partial output and of the partial errors
log; for staged Parquet parts, one fixed-size record of the part store: io.partstore). --resume continues only
when each is exactly as recorded; anything else stops it before a byte is written, so a stale or foreign
checkpoint can never turn a complete output into a shorter one. Once a run has sealed its output, the
checkpoint says so (`committed`): the renames into place that follow can be finished by a later --resume,
whichever of them a kill interrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mixedclf.errors import ResumeError, validation_line
from mixedclf.io.filestate import FileState, matches, sample_sha256
from mixedclf.io.partstore import PartsState, parts_mismatch
from mixedclf.io.writers import errors_path_for, parts_dir_for, temp_path_for, writing

# 5: staged Parquet parts (Parquet and CSV output) as one PartsState record; folder inputs fingerprinted by content
# 6: chunk_rows_done, the written rows of a chunk cut in pieces near a --max-cost budget (a 5 would resume
#    after the whole chunk and lose its rest)
CHECKPOINT_VERSION = 6
START_OVER = "rerun without --resume to start over"


def checkpoint_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.checkpoint.json")


def _input_sample_sha256(path: Path, size: int) -> str:
    with open(path, "rb") as f:
        return sample_sha256(f, size)


def run_fingerprint(input_path: Path, settings: dict[str, Any]) -> str:
    """Identifies the input file (path, size, mtime, sampled content) and every option that changes the output."""
    stat = input_path.stat()
    payload = {"input": str(input_path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
               "sample_sha256": _input_sample_sha256(input_path, stat.st_size), **settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class Checkpoint(BaseModel):
    version: int = CHECKPOINT_VERSION
    fingerprint: str
    # What the model ran as ("torch bf16 on cpu"): `--precision auto` resolves per machine (CPU flags, a
    # calibration), so the options alone cannot promise a resumed run computes the rows the same way.
    model_run: str
    chunks_done: int
    # rows of chunk `chunks_done` already written (its first pieces, cut near a --max-cost budget): a resume
    # starts inside that chunk, after them; the reader's chunk boundaries never move
    chunk_rows_done: int = 0
    rows_in: int
    rows_out: int
    rows_errored: int
    # JSONL/CSV: the partial file's first bytes; Parquet and folders: the part store; committed: the file
    output: list[FileState | PartsState]
    errors: FileState
    committed: bool = False  # every chunk is written and the partial files are sealed: only renames remain
    tally: dict[str, Any]
    spent_usd: float = 0.0  # the job's provisioned bill so far, every process up to its last checkpoint (--max-cost)
    spent_s: float = 0.0  # the job's process seconds so far, every process up to its last checkpoint
    runs: int = 1  # processes that worked on the job up to this checkpoint
    # what the last process's bill was at its first micro-batch (start-up, model load and that micro-batch): what
    # a resumed process is expected to spend before it can write a row (--max-cost)
    probe_usd: float = 0.0

    @property
    def output_bytes(self) -> int:
        """Where the writer resumes: bytes of the partial output (JSONL/CSV) or parts (Parquet, folders)."""
        for state in self.output:
            if isinstance(state, PartsState):
                return state.count
        return self.output[0].size if self.output else 0

    def verify_model_run(self, model_run: str, output: Path) -> None:
        """Stop (ResumeError) when the rows left would be computed another way than the rows written."""
        if not self.committed and model_run != self.model_run:
            raise ResumeError(f"{output} was started with the model running as {self.model_run}; this run would "
                              f"run it as {model_run}, and one output holds one kind",
                              hint="resume on the same kind of machine with the same --precision, --backend and "
                                   "--device, or rerun without --resume")

    def save(self, output: Path) -> None:
        path = checkpoint_path(output)
        temp = path.with_name(path.name + ".tmp")
        with writing(path):
            try:
                temp.write_text(self.model_dump_json(), encoding="utf-8")
                os.replace(temp, path)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise

    @classmethod
    def load(cls, output: Path) -> "Checkpoint | None":
        """The checkpoint beside output; None when there is none. A corrupt one, or one another version of
        mixedclf wrote, stops the run: starting over silently would throw away the work it records."""
        path = checkpoint_path(output)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ResumeError(f"{path}: cannot read the checkpoint: {exc}", hint=START_OVER) from None
        try:
            version = json.loads(text).get("version")
        except (ValueError, AttributeError):
            raise ResumeError(f"{path}: the checkpoint is corrupt (not a JSON object)", hint=START_OVER) from None
        if version != CHECKPOINT_VERSION:
            raise ResumeError(f"{path}: checkpoint format {version!r} is not this mixedclf's ({CHECKPOINT_VERSION})",
                              hint=f"finish with the mixedclf that started the run, or {START_OVER}")
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise ResumeError(f"{path}: the checkpoint is corrupt ({validation_line(exc)})",
                              hint=START_OVER) from None


def _finals(output: Path) -> dict[str, Path]:
    """Partial file name -> the path a commit renames it to."""
    errors = errors_path_for(output)
    return {temp_path_for(output).name: output, temp_path_for(errors).name: errors}


def verify_resumable(checkpoint: Checkpoint, output: Path) -> None:
    """Stop (ResumeError) unless every file the checkpoint counts on is exactly as it recorded. Reads only."""
    folder, finals = output.parent, _finals(output)
    for state in [*checkpoint.output, checkpoint.errors]:
        if isinstance(state, PartsState):
            wrong = parts_mismatch(folder, state)
            if wrong is None:
                continue
            raise ResumeError(f"cannot resume: {wrong} ({checkpoint.chunks_done} chunks counted as done)",
                              hint=START_OVER)
        path = folder / state.name
        if not checkpoint.committed:
            if state.size == 0 or matches(path, state, whole="/" in state.name):
                continue
        else:
            final = finals.get(state.name)
            if matches(path, state, whole=True) or (final is not None and matches(final, state, whole=True)):
                continue
            if state is checkpoint.errors and state.size == 0:
                continue  # an empty errors log is removed, not renamed
        what = "is missing" if not path.exists() else "is not what the checkpoint recorded"
        if checkpoint.committed:
            what = f"and {finals.get(state.name, path)} are not what the finished run wrote"
        raise ResumeError(f"cannot resume: {path} {what} ({checkpoint.chunks_done} chunks counted as done)",
                          hint=START_OVER)


def finish_commit(checkpoint: Checkpoint, output: Path) -> None:
    """Complete a run that had sealed its output: rename what is still partial, then drop the leftovers.
    Call after verify_resumable; each step can be repeated after a kill."""
    folder = output.parent
    for name, final in _finals(output).items():
        files = [s for s in [*checkpoint.output, checkpoint.errors] if isinstance(s, FileState)]
        state = next((s for s in files if s.name == name), None)
        partial = folder / name
        if state is checkpoint.errors and state.size == 0:
            partial.unlink(missing_ok=True)
            final.unlink(missing_ok=True)
        elif state is not None and matches(partial, state, whole=True):
            with writing(final):
                os.replace(partial, final)
    checkpoint_path(output).unlink(missing_ok=True)
    shutil.rmtree(parts_dir_for(output), ignore_errors=True)


def remove_checkpoint(output: Path) -> None:
    path = checkpoint_path(output)
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".tmp").unlink(missing_ok=True)
