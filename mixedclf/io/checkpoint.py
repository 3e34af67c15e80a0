"""Checkpoints of an interrupted run: which chunks are safely written, so --resume can continue after them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

CHECKPOINT_VERSION = 1


def checkpoint_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.checkpoint.json")


def run_fingerprint(input_path: Path, settings: dict[str, Any]) -> str:
    """Identifies the input file (path, size, mtime) and every option that changes the output bytes."""
    stat = input_path.stat()
    payload = {"input": str(input_path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, **settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class Checkpoint(BaseModel):
    version: int = CHECKPOINT_VERSION
    fingerprint: str
    chunks_done: int
    rows_in: int
    rows_out: int
    rows_errored: int
    output_bytes: int  # JSONL/CSV: bytes of the partial output that are complete; Parquet: parts written
    errors_bytes: int
    tally: dict[str, Any]
    spent_usd: float = 0.0  # the job's provisioned bill so far, every process up to its last checkpoint (--max-cost)

    def save(self, output: Path) -> None:
        path = checkpoint_path(output)
        temp = path.with_name(path.name + ".tmp")
        temp.write_text(self.model_dump_json(), encoding="utf-8")
        os.replace(temp, path)

    @classmethod
    def load(cls, output: Path) -> "Checkpoint | None":
        path = checkpoint_path(output)
        if not path.exists():
            return None
        try:
            checkpoint = cls.model_validate_json(path.read_text(encoding="utf-8"))
        except ValueError:
            return None
        return checkpoint if checkpoint.version == CHECKPOINT_VERSION else None
