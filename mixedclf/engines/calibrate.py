"""A fixed micro-benchmark that prices work: how many seconds this machine needs per GFLOP.

Single-threaded fp32 matrix products on the calling thread's CPU clock: time the thread spends waiting for a core
(a busy machine) is not counted, so the figure moves far less with load than wall time does.
"""

from __future__ import annotations

import math
import time

from mixedclf.costs.work import Calibration

SIZE = 384  # square fp32 matrices
PRODUCTS = 12  # per repeat: 2 x 384^3 x 12 = 1.36 GFLOP
REPEATS = 3


def calibrate(size: int = SIZE, products: int = PRODUCTS, repeats: int = REPEATS) -> Calibration:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the product then runs on this thread, which thread_time measures
    try:
        generator = torch.Generator().manual_seed(0)
        a = torch.rand(size, size, generator=generator)
        b = torch.rand(size, size, generator=generator)
        torch.mm(a, b)  # warm-up: kernel selection, page faults
        best = math.inf
        for _ in range(repeats):
            start = time.thread_time()
            for _ in range(products):
                torch.mm(a, b)
            best = min(best, time.thread_time() - start)
    finally:
        torch.set_num_threads(threads)
    gflop = 2 * size**3 * products / 1e9
    best = max(best, 1e-9)
    return Calibration(method=f"fp32 {size}x{size} matrix product x{products}, 1 thread, thread CPU clock, "
                              f"best of {repeats}", gflop=gflop, seconds=best, repeats=repeats,
                       s_per_gflop=best / gflop)
