"""A fixed micro-benchmark that prices work: how many seconds this machine needs per GFLOP.

Single-threaded fp32 matrix products on the calling thread's CPU clock: time the thread spends waiting for a core
(a busy machine) is not counted, so the figure moves far less with load than wall time does.

The products run on torch where the run already imported it, else on numpy's BLAS held to one thread
(threadpoolctl), so a run on a torch-free backend stays torch-free. Both are fp32 BLAS products; on the machine
of benchmarks/README.md they measured within 2% of each other, and `mixedclf check` prices every report's work
at one rate anyway (the median calibration).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Callable

from mixedclf.costs.work import Calibration

SIZE = 384  # square fp32 matrices
PRODUCTS = 12  # per repeat: 2 x 384^3 x 12 = 1.36 GFLOP
REPEATS = 3


def calibrate(size: int = SIZE, products: int = PRODUCTS, repeats: int = REPEATS) -> Calibration:
    if sys.modules.get("torch") is None:
        try:
            return _numpy(size, products, repeats)
        except ImportError:  # threadpoolctl (the onnx extra) absent: torch can hold its BLAS to one thread
            pass
    return _torch(size, products, repeats)


def _torch(size: int, products: int, repeats: int) -> Calibration:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the product then runs on this thread, which thread_time measures
    try:
        generator = torch.Generator().manual_seed(0)
        a = torch.rand(size, size, generator=generator)
        b = torch.rand(size, size, generator=generator)
        best = _best_of(lambda: torch.mm(a, b), products, repeats)
    finally:
        torch.set_num_threads(threads)
    return _calibration("", size, products, repeats, best)


def _numpy(size: int, products: int, repeats: int) -> Calibration:
    import numpy as np
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = rng.random((size, size), dtype=np.float32), rng.random((size, size), dtype=np.float32)
    with threadpool_limits(limits=1, user_api="blas"):  # the product then runs on this thread
        best = _best_of(lambda: a @ b, products, repeats)
    return _calibration(" (numpy)", size, products, repeats, best)


def _best_of(product: Callable[[], object], products: int, repeats: int) -> float:
    product()  # warm-up: kernel selection, page faults
    best = math.inf
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(products):
            product()
        best = min(best, time.thread_time() - start)
    return max(best, 1e-9)


def _calibration(library: str, size: int, products: int, repeats: int, best: float) -> Calibration:
    gflop = 2 * size**3 * products / 1e9
    return Calibration(method=f"fp32 {size}x{size} matrix product x{products}{library}, 1 thread, thread CPU clock, "
                              f"best of {repeats}", gflop=gflop, seconds=best, repeats=repeats,
                       s_per_gflop=best / gflop)
