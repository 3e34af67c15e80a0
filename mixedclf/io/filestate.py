"""What a checkpoint vouches for in a file: its size and the sha256 of its first `size` bytes, so --resume can
tell a partial output exactly as the checkpoint left it from one that was deleted, cut or rewritten."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel

READ_BLOCK = 1 << 20
SAMPLE_BLOCKS = 64  # blocks of READ_BLOCK hashed from a large input: first, last and evenly spaced between


def sample_sha256(handle: BinaryIO, size: int) -> str:
    """sha256 of a seekable file's bytes, whole up to SAMPLE_BLOCKS blocks, else of that many evenly spaced
    blocks: catches an edit that keeps the size (and even the mtime) without reading a large input twice."""
    digest = hashlib.sha256()
    if size <= READ_BLOCK * SAMPLE_BLOCKS:
        while block := handle.read(READ_BLOCK):
            digest.update(block)
    else:
        for i in range(SAMPLE_BLOCKS):
            handle.seek((size - READ_BLOCK) * i // (SAMPLE_BLOCKS - 1))
            digest.update(handle.read(READ_BLOCK))
    return digest.hexdigest()


class FileState(BaseModel):
    name: str  # relative to the output's folder (a Parquet part: "<parts folder>/<part file>")
    size: int
    sha256: str


class RunningHash:
    """sha256 of a growing file's bytes, caught up from where it stopped: each byte is read back once."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.upto = 0

    def catch_up(self, path: Path, position: int) -> None:
        if position <= self.upto:
            return
        with open(path, "rb") as f:
            f.seek(self.upto)
            while self.upto < position:
                block = f.read(min(READ_BLOCK, position - self.upto))
                if not block:
                    raise OSError(f"{path} is shorter than {position} bytes")
                self.digest.update(block)
                self.upto += len(block)

    def state(self, name: str) -> FileState:
        return FileState(name=name, size=self.upto, sha256=self.digest.hexdigest())


def file_state(path: Path, name: str, size: int | None = None) -> FileState:
    """The state of path's first `size` bytes (all of it when None)."""
    running = RunningHash()
    running.catch_up(path, path.stat().st_size if size is None else size)
    return running.state(name)


def matches(path: Path, state: FileState, whole: bool) -> bool:
    """path holds state's bytes: exactly (whole) or as a prefix that later writes extended."""
    try:
        if not path.is_file() or path.is_symlink():
            return False
        size = path.stat().st_size
        if size < state.size or (whole and size != state.size):
            return False
        return file_state(path, state.name, state.size).sha256 == state.sha256
    except OSError:
        return False
