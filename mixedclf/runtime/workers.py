"""What runs inside a CPU worker process. Imports no torch, so a worker starts in a fraction of a second."""

from __future__ import annotations

import os
import signal
import time

from mixedclf.core.answers import AnswerReader
from mixedclf.core.preprocess import make_tokenizer
from mixedclf.core.sequences import Sequences, to_sequences
from mixedclf.runtime.parent_watch import exit_with_parent

_state: dict = {}
# Test-only hook (tests/test_process_safety.py): a worker given this exact text dies as a crashing tokenizer
# would, so the tests can exercise the poison-row path; no real text is known to crash it.
_TEST_KILL_ON_TEXT = os.environ.get("MIXEDCLF_TEST_KILL_ON_TEXT")


def init_worker(tokenizer_path: str, max_length: int, clean: str, parent_pid: int) -> None:
    exit_with_parent(parent_pid)
    # One process is one worker: the tokenizer's own thread pool would only fight its siblings for cores.
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    # Ctrl-C reaches the whole process group; the parent decides how to stop, so workers ignore it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(tokenizer_path, encoding="utf-8") as handle:
        _state["tokenizer"] = make_tokenizer(handle.read(), max_length)
    _state["clean"] = clean


def preprocess_task(texts: list[str], clean: str | None = None, reader: AnswerReader | None = None
                    ) -> tuple[Sequences, float, float, int, float]:
    """The stage contract's rows -> sequences step in a worker: (sequences, start, end, pid, cpu_s). Monotonic
    clock readings are comparable across processes on one machine; cpu_s is this worker process's CPU time for the
    task (all its threads: the tokenizer may run its own). `clean` overrides the pool's cleaning mode (the server
    tokenizes already-cleaned text with "none"); rows `reader` (a prediction cache's) answers are not tokenized."""
    if _TEST_KILL_ON_TEXT is not None and _TEST_KILL_ON_TEXT in texts:
        os.kill(os.getpid(), signal.SIGKILL)
    cpu0, start = time.process_time(), time.monotonic()
    if reader is not None:  # one connection per worker: the reader that came with the first task is kept
        reader = _state.setdefault("readers", {}).setdefault(getattr(reader, "identity", id(reader)), reader)
    seqs = to_sequences(texts, _state["tokenizer"], clean or _state["clean"], reader)
    return seqs, start, time.monotonic(), os.getpid(), time.process_time() - cpu0


def warm_task(_: int) -> int:
    """Forces a worker to start and build its tokenizer before the first piece of work needs it."""
    _state["tokenizer"].encode("warm up")
    return os.getpid()
