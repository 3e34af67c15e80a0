"""One run per output: an exclusive lock on `.NAME.lock` beside it, held for the whole run, so two runs can
never share the hidden partial files or a checkpoint. The lock is released (and the file removed) when the
run ends; the kernel releases it when the process dies, so a killed run never leaves the output locked."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from mixedclf.errors import InputError, OutputBusy

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not guarded against each other
    fcntl = None


def lock_path_for(output: Path) -> Path:
    return output.with_name(f".{output.name}.lock")


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def _acquire(path: Path, output: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    while True:
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise InputError(f"{output}: cannot create the lock file {path}: {exc.strerror}",
                             hint="check the folder's permissions or pick another -o path") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputBusy(f"{output}: another mixedclf run{_holder(path)} is writing this output",
                             hint="wait for it to finish, or pick another -o path") from None
        # The holder before us removes the file as it releases it: a lock on that removed file guards nothing.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextmanager
def output_lock(output: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    path = lock_path_for(output)
    fd = _acquire(path, output)
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # the pid only makes the other run's message friendlier (a full disk must not stop the run here)
        yield
    finally:
        path.unlink(missing_ok=True)  # before the release, so a waiting run never locks a file about to vanish
        os.close(fd)
