"""Defaults that depend on the device the model runs on."""

from __future__ import annotations

import os


def default_cpu_workers(device_type: str) -> int:
    """On an accelerator every core but the one feeding it preprocesses; on a CPU the model needs the cores."""
    cores = os.cpu_count() or 1
    return max(1, cores - 1) if device_type in ("cuda", "mps") else max(1, cores // 4)

