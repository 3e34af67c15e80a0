"""Options shared by several commands, defined once so their names, defaults and help never drift apart; the
help panels options are grouped in; the values shells complete for the options that take one of a few."""

from __future__ import annotations

import typer

# `--help` groups options in these panels, in this order of first use.
PANEL_IO = "Input and output"
PANEL_MODEL = "Model"
PANEL_SPEED = "Speed"
PANEL_COST = "Cost"
PANEL_RELIABILITY = "Reliability"

DEVICES = ("auto", "cpu", "cuda", "cuda:0", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
BACKENDS = ("torch", "onnxruntime")


# Panels of the options declared with their command (the shared ones above name their own), by parameter name.
PANELS = {
    **dict.fromkeys(("output", "input_format", "output_format", "text_field", "id_field", "all_scores",
                     "keep_text", "report", "rows_per_file", "fmt", "quiet", "config"), PANEL_IO),
    "mode": PANEL_MODEL,
    **dict.fromkeys(("engine", "ray_address", "batch_size", "max_batch_tokens", "chunk_rows", "first_chunk_rows",
                     "dedup"), PANEL_SPEED),
    **dict.fromkeys(("requests_per_day", "idle_timeout", "gpu_speedup", "max_cost", "cache", "no_cache",
                     "cache_max_bytes"), PANEL_COST),
    **dict.fromkeys(("on_error", "resume", "stage_timeout_cpu", "stage_timeout_gpu"), PANEL_RELIABILITY),
}
# Commands whose options are grouped by PANELS (the others have few enough for one panel).
PANELLED_COMMANDS = ("classify",)


def completer(choices: tuple[str, ...]):
    """Shell completion for an option with a few values (validated where the options are built, with a message
    that names them)."""

    def complete(incomplete: str) -> list[str]:
        return [c for c in choices if c.startswith(incomplete)]

    return complete


MODEL = typer.Option(None, "--model", "-m", help="'default' or a local model folder [default: default]",
                     rich_help_panel=PANEL_MODEL)
DEVICE = typer.Option(None, help="auto, cuda, mps or cpu [default: auto]", autocompletion=completer(DEVICES),
                      rich_help_panel=PANEL_MODEL)
PRECISION = typer.Option(
    None, help="auto: fp16 on CUDA; bf16 on a CPU that computes it natively (AVX512_BF16 or AMX flag) and measured "
    ">= 1.2x fp32 on this model (cached once); else fp32. The report says which and why. "
    "Or fp32, fp16, bf16, int8 (CPU, onnxruntime) [default: auto]", autocompletion=completer(PRECISIONS),
    rich_help_panel=PANEL_MODEL,
)
BACKEND = typer.Option(
    None, help="torch or onnxruntime (CPU, fp32 or int8; pip install 'mixedclf[onnx]'), converted once per model "
    "into the user cache; --precision int8 implies onnxruntime [default: torch]", autocompletion=completer(BACKENDS),
    rich_help_panel=PANEL_MODEL,
)
CLEAN = typer.Option(None, help="standard (normalize + clean) or none [default: standard]",
                     autocompletion=completer(("standard", "none")), rich_help_panel=PANEL_MODEL)
CPU_WORKERS = typer.Option(None, help="Preprocessing processes [default: from the cores and the device]",
                           rich_help_panel=PANEL_SPEED)
TORCH_THREADS = typer.Option(None, help="Intra-op threads of the model: torch's, or the onnxruntime session's.",
                             rich_help_panel=PANEL_SPEED)
PRICING = typer.Option(
    None, "--pricing", envvar="MIXEDCLF_PRICING", help="Pricing TOML [default: the packaged configs/pricing.toml]",
    rich_help_panel=PANEL_COST,
)
PROFILE = typer.Option(None, "--profile", envvar="MIXEDCLF_PROFILE", help="Pricing profile [default: reference]",
                       rich_help_panel=PANEL_COST)
CACHE = typer.Option(
    None, "--cache", help="Prediction cache file: rows answered before (same model, settings and cleaned text) skip "
    "the device; see docs/cache.md [default: predictions.sqlite3 in the user cache folder; MIXEDCLF_CACHE]",
    rich_help_panel=PANEL_COST,
)
NO_CACHE = typer.Option(None, "--no-cache", help="Neither read nor write the prediction cache (MIXEDCLF_NO_CACHE=1).",
                        rich_help_panel=PANEL_COST)
CACHE_MAX_BYTES = typer.Option(
    None, help="Size cap of the prediction cache file; the least recently used answers go first [default: 1 GiB]",
    rich_help_panel=PANEL_COST,
)
