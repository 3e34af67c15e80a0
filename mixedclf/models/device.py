"""Which device a run uses, answered without importing torch wherever the answer is already known.

Importing torch costs about a second on a small machine, billed on every cold start. The CPU needs no torch to
be named: `--device cpu`, a backend that runs only on the CPU (onnxruntime), and `auto` on a machine with no
accelerator driver at all. Anything else (a driver is present, or an accelerator is asked for by name) is
torch's question, as before.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from mixedclf.errors import ModelError

# Where a GPU driver shows itself: NVIDIA (the kernel module's proc folder, its device nodes), AMD ROCm (kfd),
# and WSL's paravirtualised GPU. Without any of them, torch finds no CUDA or ROCm device either.
_DRIVER_PATHS = ("proc/driver/nvidia", "dev/nvidiactl", "dev/kfd", "dev/dxg")
_DRIVER_GLOBS = (("dev", "nvidia[0-9]*"),)
# Backends that run on the CPU only (they refuse any other device when loading).
CPU_ONLY_BACKENDS = ("onnxruntime",)


@dataclass(frozen=True)
class Device:
    """A device's kind and index, duck-typed like `torch.device` (`.type`, `.index`, `str()`)."""

    type: str
    index: int | None = None

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


CPU = Device("cpu")


def accelerator_driver_present(root: Path = Path("/")) -> bool:
    """Whether torch could find an accelerator here: a GPU driver's files, or macOS (MPS needs no driver file)."""
    if sys.platform == "darwin":
        return True
    if any((root / p).exists() for p in _DRIVER_PATHS):
        return True
    return any(next((root / folder).glob(pattern), None) is not None for folder, pattern in _DRIVER_GLOBS)


def resolve_device(device: str = "auto", backend: str | None = None) -> Device:
    """The device a run uses. `backend` is the resolved backend: a CPU-only one makes `auto` the CPU."""
    if device == "cpu" or (device == "auto" and (backend in CPU_ONLY_BACKENDS or not accelerator_driver_present())):
        return CPU
    if backend in CPU_ONLY_BACKENDS:
        return _parse(device)  # not probed: loading refuses it with the reason (this backend is CPU only)
    return _ask_torch(device)


def _parse(device: str) -> Device:
    kind, _, index = device.partition(":")
    if not kind or (index and not index.isdigit()):
        raise ModelError(f"unknown device {device!r}", hint="use auto, cuda, mps or cpu")
    return Device(kind, int(index) if index else None)


def _ask_torch(device: str) -> Device:
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return Device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return Device("mps")
        return CPU
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for but no CUDA device is visible", hint="use --device auto or cpu")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError("--device mps was asked for but MPS is not available", hint="use --device auto or cpu")
    try:
        found = torch.device(device)
    except RuntimeError as exc:
        raise ModelError(f"unknown device {device!r}", hint="use auto, cuda, mps or cpu") from exc
    return Device(found.type, found.index)


def as_torch(device):
    """The torch.device for a Device (or a torch.device, returned as is); imports torch."""
    import torch

    return device if isinstance(device, torch.device) else torch.device(str(device))
