"""One store for the Parquet parts a run stages (a Parquet file's per-chunk parts, a folder output's chunks).

Each part is written whole and durably (to a temporary name, fsynced, renamed) and hashed once, from the bytes
written: the store's state is a fixed-size record (how many parts, their bytes, one sha256 chained over each
part's name, size and sha256), so a checkpoint costs the same at part 3 and at part 300,000, and --resume
verifies every part by reading it once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from mixedclf.io.filestate import READ_BLOCK


class PartsState(BaseModel):
    """What a checkpoint vouches for in a part store: its first `count` parts, in name order."""

    kind: Literal["parts"] = "parts"
    folder: str  # relative to the output's folder
    prefix: str  # part k's name starts with <prefix><k:06d>, and ends with .parquet
    count: int
    size: int  # bytes of those parts together
    sha256: str  # chained: sha256 over "<name> <size> <sha256>\n" of each part in order


def _link(name: str, size: int, sha256: str) -> bytes:
    return f"{name} {size} {sha256}\n".encode()


def _file_sha256(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(READ_BLOCK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


class PartStore:
    """Parquet parts in `folder`: part k is <prefix><k:06d>[-<tag>].parquet, so name order is write order."""

    def __init__(self, folder: Path, name: str, prefix: str, resume_at: int | None = None):
        """name: the folder as a checkpoint names it (relative to the output's folder); resume_at: keep that many
        parts of an earlier run (hashed once here) and drop the rest."""
        self.folder, self.name, self.prefix = folder, name, prefix
        self.pattern = f"{prefix}*.parquet"
        if resume_at is None:
            for stale in folder.glob(self.pattern) if folder.is_dir() else []:
                stale.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        existing = self.paths()
        for extra in existing[resume_at or 0 :]:
            extra.unlink()
        self._chain = hashlib.sha256()
        self.count = self.size = 0
        for path in existing[: resume_at or 0]:
            self._record(path.name, *_file_sha256(path))

    def _record(self, name: str, size: int, sha256: str) -> None:
        self._chain.update(_link(name, size, sha256))
        self.count += 1
        self.size += size

    def paths(self) -> list[Path]:
        """The parts on disk, in name (= write) order."""
        return sorted(self.folder.glob(self.pattern))

    def add(self, table: pa.Table, tag: str = "") -> Path:
        """Write `table` as the next part, durably, and hash the bytes written (never read back)."""
        name = f"{self.prefix}{self.count:06d}{'-' + tag if tag else ''}.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        data = sink.getvalue()
        path = self.folder / name
        temp = path.with_name(f".{name}.tmp")
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
        self._record(name, data.size, hashlib.sha256(data).hexdigest())
        return path

    def state(self) -> PartsState:
        return PartsState(folder=self.name, prefix=self.prefix, count=self.count, size=self.size,
                          sha256=self._chain.hexdigest())


def parts_mismatch(base: Path, state: PartsState) -> str | None:
    """None when the store under `base` still holds the checkpoint's first `state.count` parts byte for byte
    (later parts may follow: a resume drops them); else what is wrong, in words."""
    folder = base / state.folder
    try:
        paths = sorted(folder.glob(f"{state.prefix}*.parquet"))[: state.count] if folder.is_dir() else []
        for k in range(state.count):
            if k >= len(paths) or not paths[k].name.startswith(f"{state.prefix}{k:06d}"):
                return f"part {k + 1} of {state.count} ({folder / state.prefix}{k:06d}*.parquet) is missing"
        chain, size = hashlib.sha256(), 0
        for path in paths:
            if path.is_symlink() or not path.is_file():
                return f"{path} is not a regular file"
            n, sha = _file_sha256(path)
            chain.update(_link(path.name, n, sha))
            size += n
    except OSError as exc:
        return f"{folder} cannot be read ({exc.strerror or exc})"
    if size != state.size or chain.hexdigest() != state.sha256:
        return f"the parts in {folder} are not what the checkpoint recorded"
    return None
