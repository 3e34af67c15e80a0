"""What `--precision auto` means on the machine it runs on, and why.

fp16 on CUDA. On a CPU, bf16 only where the processor computes it in hardware (AVX-512 BF16 or AMX) and a short
calibration confirms it is at least 1.2x faster than fp32 on this model; fp32 everywhere else. oneDNN runs bf16 on
any AVX-512 CPU, but without those instructions it emulates it: on an Ice Lake server that made the default model
2.9x slower end to end than fp32, so "oneDNN can run bf16" (`torch.ops.mkldnn._is_mkldnn_bf16_supported()`) is
not the test.

The calibration times alternating fp32/bf16 forward passes on this thread's CPU clock with one torch thread (a
wall clock flips the verdict on a shared machine), takes the median ratio of the pairs, and is remembered per
(CPU model, torch version, model content) in the user cache, so it is paid once, not on every run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

# torch is imported by the functions that use it: a model on another backend gets its PrecisionChoice without
# paying for torch's import.
if TYPE_CHECKING:
    import torch
    from torch import nn

# bf16 must beat fp32 by this much on the calibration batch to be chosen: below it, the rounding is not worth it.
BF16_MIN_SPEEDUP = 1.2
_CALIBRATION_SHAPE = (4, 32)  # rows x tokens: a few hundredths of a second per MiniLM forward on one core
_CALIBRATION_BUDGET_S = 0.4  # CPU seconds of timed passes, after the two warm-up passes
_CALIBRATION_PAIRS = (2, 5)  # at least, at most


@dataclass(frozen=True)
class PrecisionChoice:
    name: str  # fp32, fp16, bf16 or int8
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        import torch

        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "int8": torch.float32}[self.name]


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


#: torch.cpu's probes of native bf16 (private: an older torch lacks them, and then they answer False).
TORCH_CPU_PROBES = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")


def torch_cpu_probes() -> dict[str, bool]:
    """What torch's own CPU probes report, by name (the seam tests mock instead of torch's private functions)."""
    import torch

    cpu = getattr(torch, "cpu", None)
    return {name: _probe(cpu, name) for name in TORCH_CPU_PROBES}


def native_bf16() -> str | None:
    """The instruction set that computes bf16 in hardware here ("AVX512_BF16" or "AMX"), or None."""
    probes = torch_cpu_probes()
    flags = cpu_flags()
    if probes["_is_amx_tile_supported"] or "amx_bf16" in flags:
        return "AMX"
    if probes["_is_avx512_bf16_supported"] or "avx512_bf16" in flags:
        return "AVX512_BF16"
    return None


def _probe(cpu, name: str) -> bool:
    try:
        return bool(getattr(cpu, name)())
    except (AttributeError, RuntimeError, TypeError):
        return False


def explicit(precision: str, device: torch.device) -> PrecisionChoice:
    return PrecisionChoice(precision, f"{precision}: asked for (--precision {precision})")


def choose_without_model(device: torch.device, precision: str = "auto") -> PrecisionChoice:
    """The decision from the device and CPU flags alone (no calibration): what a run will use, before loading."""
    if precision != "auto":
        return explicit(precision, device)
    if device.type == "cuda":
        return PrecisionChoice("fp16", "fp16: CUDA device")
    if device.type != "cpu":
        return PrecisionChoice("fp32", f"fp32: the default on {device.type}")
    source = native_bf16()
    if source is None:
        return PrecisionChoice("fp32", "fp32: no native bf16 on this CPU (avx512_bf16/amx absent)")
    return PrecisionChoice("bf16", f"bf16: CPU has {source}")


def choose_for_module(module: nn.Module, device: torch.device, precision: str, model_key: str | None,
                      cache_dir: Path | None) -> tuple[PrecisionChoice, nn.Module | None]:
    """The decision for a loaded fp32 module, calibrated on it where the flags allow bf16.

    Returns the choice and, when calibration converted a bf16 copy that won, that copy (saves converting twice).
    """
    choice = choose_without_model(device, precision)
    if precision != "auto" or choice.name != "bf16":
        return choice, None
    source = choice.reason.removeprefix("bf16: CPU has ")
    record = _cache_file(cache_dir, model_key)
    known = _read_speedup(record)
    converted = None
    if known is None:
        import torch

        bf16 = copy.deepcopy(module).to(torch.bfloat16)
        known = measure_bf16_speedup(module, bf16)
        converted = bf16
        _write_speedup(record, known)
    if known >= BF16_MIN_SPEEDUP:
        return PrecisionChoice("bf16", f"bf16: CPU has {source}, measured {known:.2f}x fp32"), converted
    return PrecisionChoice(
        "fp32", f"fp32: CPU has {source} but bf16 measured {known:.2f}x fp32 (< {BF16_MIN_SPEEDUP}x)"
    ), None


def calibration_inputs(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed batch: the same ids every time, inside the model's vocabulary."""
    import torch
    from torch import nn

    embedding = next((m for m in module.modules() if isinstance(m, nn.Embedding)), None)
    vocab = embedding.num_embeddings if embedding is not None else 100
    rows, tokens = _CALIBRATION_SHAPE
    ids = (torch.arange(rows * tokens, dtype=torch.int64).reshape(rows, tokens) * 7919 + 1000) % vocab
    return ids, torch.ones_like(ids)


def measure_bf16_speedup(fp32: nn.Module, bf16: nn.Module) -> float:
    """fp32 CPU seconds / bf16 CPU seconds for one forward pass: median over alternating pairs, one thread."""
    import torch

    ids, mask = calibration_inputs(fp32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # so this thread's CPU clock holds all of the work
    try:
        with torch.inference_mode():
            def cpu_seconds(module: nn.Module) -> float:
                start = time.thread_time()
                module(input_ids=ids, attention_mask=mask)
                return time.thread_time() - start

            cpu_seconds(fp32), cpu_seconds(bf16)  # warm-up: oneDNN builds its bf16 kernels on first use
            ratios, spent = [], 0.0
            low, high = _CALIBRATION_PAIRS
            while len(ratios) < high and (len(ratios) < low or spent < _CALIBRATION_BUDGET_S):
                a, b = cpu_seconds(fp32), cpu_seconds(bf16)
                spent += a + b
                ratios.append(a / max(b, 1e-9))
    finally:
        torch.set_num_threads(threads)
    return float(statistics.median(ratios))


def _cache_file(cache_dir: Path | None, model_key: str | None) -> Path | None:
    if cache_dir is None or model_key is None:
        return None
    import torch

    key = json.dumps([cpu_model_name(), torch.__version__, model_key, _CALIBRATION_SHAPE])
    return cache_dir / "calibration" / f"bf16-{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def _read_speedup(record: Path | None) -> float | None:
    if record is None:
        return None
    try:
        return float(json.loads(record.read_text(encoding="utf-8"))["bf16_speedup"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_speedup(record: Path | None, speedup: float) -> None:
    if record is None:
        return
    import torch

    from mixedclf.models.cache import write_atomically

    try:
        write_atomically(record, json.dumps({"bf16_speedup": speedup, "cpu": cpu_model_name(),
                                             "torch": torch.__version__}))
    except OSError:  # a read-only cache costs a calibration next run, nothing else
        pass
