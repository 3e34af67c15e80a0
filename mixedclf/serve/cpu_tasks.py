"""Tasks the server sends to its CPU worker processes, besides `mixedclf.engines.workers.preprocess_task`.

Imported by the workers, so it imports no torch and no FastAPI. The workers are started with
`mixedclf.engines.workers.init_worker`, which keeps the tokenizer in that module's `_state`.
"""

from __future__ import annotations

import os
import time

from mixedclf.engines import workers
from mixedclf.stages.preprocess import PreprocessedBatch, preprocess_texts


def tokenize_task(texts: list[str]) -> tuple[PreprocessedBatch, float, float, int]:
    """Like preprocess_task, without cleaning: for `/gpu_worker/runsync`, whose text arrives already cleaned."""
    start = time.monotonic()
    batch = preprocess_texts(texts, workers._state["tokenizer"], "none")
    return batch, start, time.monotonic(), os.getpid()


def warm_task(_: int) -> int:
    """Forces a worker process to start (and build its tokenizer) before the first request needs it."""
    workers._state["tokenizer"].encode("warm up")
    return os.getpid()
