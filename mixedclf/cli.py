"""The command line: parse options, call the library, render. No pipeline logic lives here."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from mixedclf import __version__
from mixedclf.errors import EXIT_OK, EXIT_ROWS_SKIPPED, EXIT_USAGE, MixedclfError

app = typer.Typer(
    name="mixedclf",
    help="Cost-aware batch text classification: CPU workers for text work, the device only for the model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def fail(exc: Exception, code: int = EXIT_USAGE) -> typer.Exit:
    """Print one line on stderr and leave with the error's exit code: never a bare traceback."""
    message = exc.one_line() if isinstance(exc, MixedclfError) else str(exc)
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(getattr(exc, "exit_code", code))


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        out.print(f"mixedclf {__version__}")
        raise typer.Exit()


@app.command()
def classify(
    input: Path = typer.Argument(..., help="Input .jsonl, .parquet or .csv (read in chunks, any size)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .jsonl, .parquet or .csv (written atomically)."),
    input_format: Optional[str] = typer.Option(None, help="Override the input format: jsonl, parquet, csv."),
    output_format: Optional[str] = typer.Option(None, help="Override the output format: jsonl, parquet, csv."),
    text_field: Optional[str] = typer.Option(None, help="Column holding the text [text]."),
    id_field: Optional[str] = typer.Option(None, help="Column holding the row id; row number when absent [id]."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="'default' or a local model folder."),
    device: Optional[str] = typer.Option(None, help="auto, cuda, mps or cpu [auto]."),
    precision: Optional[str] = typer.Option(
        None, help="auto (fp16 on CUDA, bf16 on a CPU with hardware bf16, else fp32), fp32, fp16, bf16, int8 (CPU)."
    ),
    mode: Optional[str] = typer.Option(None, help="mixed (CPU pool + device) or gpu-only (baseline, all in one process)."),
    clean: Optional[str] = typer.Option(None, help="standard (normalize + clean) or none."),
    engine: Optional[str] = typer.Option(None, help="local (process pool, default) or ray (Ray Data)."),
    ray_address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS", help="Ray cluster to join [local]."),
    cpu_workers: Optional[int] = typer.Option(None, help="Preprocessing processes [from cores and device]."),
    torch_threads: Optional[int] = typer.Option(None, help="torch intra-op threads for the model."),
    batch_size: Optional[int] = typer.Option(
        None, help="Most rows per device micro-batch [64 on a CPU, 1024 on CUDA]."
    ),
    max_batch_tokens: Optional[int] = typer.Option(
        None, help="Most padded tokens per micro-batch [8192 on a CPU, 65536 on CUDA]."
    ),
    chunk_rows: Optional[int] = typer.Option(
        None, help="Rows per chunk, the window sorted by length [16384; 1024 with --engine ray]."
    ),
    all_scores: bool = typer.Option(False, "--all-scores", help="Add a score_<label> column per label."),
    keep_text: bool = typer.Option(False, "--keep-text", help="Copy the input text into the output."),
    dedup: Optional[bool] = typer.Option(None, "--dedup/--no-dedup", help="Reuse predictions for repeated texts."),
    on_error: Optional[str] = typer.Option(None, help="Bad rows: skip (to OUTPUT.errors.jsonl) or fail [skip]."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
    stage_timeout_cpu: Optional[float] = typer.Option(None, help="Seconds a preprocessing chunk may take."),
    stage_timeout_gpu: Optional[float] = typer.Option(None, help="Seconds an inference chunk may take."),
    pricing: Optional[Path] = typer.Option(None, help="Pricing TOML [configs/pricing.toml]."),
    profile: Optional[str] = typer.Option(None, help="Pricing profile [reference]."),
    requests_per_day: Optional[float] = typer.Option(None, help="Also project cost per day and month."),
    report: Optional[Path] = typer.Option(None, help="Write the versioned JSON report here."),
    config: Optional[Path] = typer.Option(None, help="Pipeline defaults TOML [configs/default.toml]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors and a one-line summary (for cron)."),
) -> None:
    """Label every row of INPUT and write OUTPUT in input order, then print what each stage cost."""
    from mixedclf.config import build_options
    from mixedclf.pipeline import classify_file

    values = {k: v for k, v in locals().items() if k not in ("config", "quiet")}
    values["resume"] = resume or None
    values["all_scores"] = all_scores or None
    values["keep_text"] = keep_text or None
    try:
        opts = build_options(values, config)
        show_progress = not quiet and sys.stderr.isatty()
        result = classify_file(opts, progress=show_progress)
    except MixedclfError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/]")
        raise typer.Exit(130) from None
    from mixedclf.report_render import render_report, summary_line

    if quiet:
        out.print(summary_line(result.report), highlight=False, soft_wrap=True)
    else:
        render_report(result.report, out)
    if result.report.rows_errored:
        err.print(f"{result.report.rows_errored:,} rows skipped: see {result.errors_path}", highlight=False)
    raise typer.Exit(EXIT_ROWS_SKIPPED if result.report.rows_errored else EXIT_OK)


@app.command()
def models(
    search: list[Path] = typer.Option([], "--search", help="Also list model folders inside this folder."),
) -> None:
    """List the models mixedclf can use: the default, and any model folders found under --search."""
    from rich.table import Table

    from mixedclf.models import list_models

    table = Table(title="models")
    for column in ("name", "kind", "labels", "max tokens", "path"):
        table.add_column(column)
    for spec in list_models(search):
        table.add_row(spec.name, spec.kind, ", ".join(spec.labels), str(spec.max_length), str(spec.path))
    out.print(table)


def _register_subcommands() -> None:
    from mixedclf import cli_costs, cli_serve, cli_train

    cli_costs.register(app)
    cli_train.register(app)
    cli_serve.register(app)


_register_subcommands()


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    app()


if __name__ == "__main__":
    main()
