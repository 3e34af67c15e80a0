"""The CPU worker pool, shared by the local engine and the server: spawned processes that start at once."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import tempfile
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from mixedclf.runtime.workers import init_worker, warm_task


def tokenizer_file(tokenizer_json: str) -> Path:
    """The tokenizer JSON saved once in this user's private temp folder, named by its content.

    Workers get this path, not the JSON itself: a spawned worker's start-up arguments go through a pipe, and
    ones larger than the pipe's buffer (a BERT vocabulary is ~700 kB) block the parent until the child has
    imported everything, which starts the workers one after another instead of all at once.
    """
    # A folder of this user's only (mode 0700): nobody else can plant a file under the name workers will read.
    uid = os.getuid() if hasattr(os, "getuid") else None
    folder = Path(tempfile.gettempdir()) / f"mixedclf-{uid if uid is not None else 'user'}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if uid is not None and folder.stat().st_uid != uid:
        folder = Path(tempfile.mkdtemp(prefix="mixedclf-"))  # someone else made that name: use a fresh one
    digest = hashlib.sha1(tokenizer_json.encode("utf-8")).hexdigest()[:16]
    path = folder / f"tokenizer-{digest}.json"
    if not path.exists():
        partial = folder / f".{path.name}.{os.getpid()}"
        partial.write_text(tokenizer_json, encoding="utf-8")
        partial.replace(path)  # atomic: a concurrent run never reads half a file
    return path


def start_worker_pool(workers: int, tokenizer_json: str, max_length: int, clean: str
                      ) -> tuple[ProcessPoolExecutor, list[Future]]:
    """(pool, futures that finish when each worker is up). The executor spawns a process per submitted task,
    not at construction, so one warm-up task per worker starts them all now (while the model loads)."""
    # spawn, not fork: the parent holds torch's thread pools, which a forked child would inherit broken.
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker, initargs=(str(tokenizer_file(tokenizer_json)), max_length, clean, os.getpid()),
    )
    return pool, [pool.submit(warm_task, i) for i in range(workers)]


def stop_pool(pool: ProcessPoolExecutor, timeout_s: float = 10.0) -> None:
    """End a pool that may have work in flight (a run failing mid-way) and wait until its manager thread is
    gone. shutdown(wait=False) alone leaves that thread running into interpreter exit, where concurrent.futures'
    exit hook races it on the wakeup pipe: now and then an `OSError: [Errno 9] Bad file descriptor` traceback
    after the run's one-line error. The workers are ended first, so a hung one cannot hold the wait."""
    # What shutdown() forgets: the worker processes and the manager thread (CPython's own attributes, read
    # defensively: without them this is the plain shutdown it was).
    processes = list((getattr(pool, "_processes", None) or {}).values())
    thread = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout_s)
    if thread is not None:
        thread.join(timeout_s)


def slices(texts: list[str], workers: int, min_rows: int = 512) -> list[list[str]]:
    """A chunk's texts cut into one piece per worker (none under min_rows), so a chunk is ready sooner."""
    pieces = max(1, min(workers, len(texts) // min_rows))
    size = max(1, -(-len(texts) // pieces))
    return [texts[i : i + size] for i in range(0, len(texts), size)] or [texts]  # a chunk of only bad rows: []
