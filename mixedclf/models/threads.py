"""How many intra-op threads the model runs with when `--torch-threads` is not set, without importing torch.

The onnxruntime backend takes torch's default, so the option means the same on either backend: the threads
MKL_NUM_THREADS or else OMP_NUM_THREADS ask for, at most the CPUs this process may run on; without either, the
physical cores among those CPUs (hyper-threads share a core's arithmetic units, so torch does not count them).
"""

from __future__ import annotations

import os
from pathlib import Path


def allowed_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows: no affinity call
        return set(range(os.cpu_count() or 1))


def physical_cores(cpus: set[int]) -> int:
    """Distinct (package, core) pairs among `cpus` from /proc/cpuinfo; len(cpus) where it cannot tell."""
    cores, processor, package = set(), None, "0"
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return max(1, len(cpus))
    for line in [*lines, ""]:
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            processor = int(value) if value.isdigit() else None
        elif key == "physical id":
            package = value
        elif key == "core id" and processor in cpus:
            cores.add((package, value))
    return len(cores) if cores else max(1, len(cpus))


def _env_threads() -> int | None:
    for name in ("MKL_NUM_THREADS", "OMP_NUM_THREADS"):  # torch lets MKL's setting win over OpenMP's
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def default_intra_op_threads() -> int:
    cpus = allowed_cpus()
    asked = _env_threads()
    if asked is not None:
        return max(1, min(asked, len(cpus)))
    return physical_cores(cpus)
