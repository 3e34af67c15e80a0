"""Options shared by several commands, defined once so their names, defaults and help never drift apart."""

from __future__ import annotations

import typer

MODEL = typer.Option(None, "--model", "-m", help="'default' or a local model folder [default: default]")
DEVICE = typer.Option(None, help="auto, cuda, mps or cpu [default: auto]")
PRECISION = typer.Option(
    None, help="auto: fp16 on CUDA; bf16 on a CPU that computes it natively (AVX512_BF16 or AMX flag) and measured "
    ">= 1.2x fp32 on this model (cached once); else fp32. The report says which and why. "
    "Or fp32, fp16, bf16, int8 (CPU, onnxruntime) [default: auto]"
)
BACKEND = typer.Option(
    None, help="torch or onnxruntime (CPU, fp32 or int8; pip install 'mixedclf[onnx]'), converted once per model "
    "into the user cache; --precision int8 implies onnxruntime [default: torch]"
)
CLEAN = typer.Option(None, help="standard (normalize + clean) or none [default: standard]")
CPU_WORKERS = typer.Option(None, help="Preprocessing processes [default: from the cores and the device]")
TORCH_THREADS = typer.Option(None, help="Intra-op threads of the model: torch's, or the onnxruntime session's.")
PRICING = typer.Option(
    None, "--pricing", envvar="MIXEDCLF_PRICING", help="Pricing TOML [default: the packaged configs/pricing.toml]"
)
PROFILE = typer.Option(None, "--profile", envvar="MIXEDCLF_PROFILE", help="Pricing profile [default: reference]")
