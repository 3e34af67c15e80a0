"""The command line: parse options, call the library, render. No pipeline logic lives here."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from mixedclf import __version__
from mixedclf.cli import options as opt
from mixedclf.cli.errors import AppGroup, err, fail
from mixedclf.engines import process_clock  # first: its import time is the fallback process start
from mixedclf.errors import EXIT_OK, EXIT_ROWS_SKIPPED, InputError
from mixedclf.models.quiet import quiet_libraries
from mixedclf.render.console import stderr_console, stdout_console, stdout_stream

app = typer.Typer(
    name="mixedclf",
    help="Cost-aware batch text classification: CPU workers for text work, the device only for the model.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    cls=AppGroup,
)
FORMATS = ("table", "json", "markdown")


def _emit(text: str) -> None:
    """Plain text on stdout, never re-wrapped: what scripts parse (JSON, markdown, the summary line). With stdout
    closed (`>&-`) it goes to stderr: the run's work is done, and its summary is not lost."""
    stream = stdout_stream()
    stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        _emit(f"mixedclf {__version__}")
        raise typer.Exit()


@app.command()
def classify(
    input: list[str] = typer.Argument(
        ..., help="Input .jsonl, .parquet or .csv (.jsonl/.csv may end .gz, .bz2, .zst): one or more files, a folder, "
        "a glob, a URI (s3://, gs://, hf://, file://), or - for stdin (JSONL; CSV with --input-format csv).",
        show_default=False,
    ),
    output: str = typer.Option(  # a string: a Path would turn file:///x into file:/x
        ..., "-o", "--output", help="Output .jsonl, .parquet or .csv (written atomically); a name without an "
        "extension is a folder of part files; - writes JSONL (or CSV) to stdout, the report to stderr."
    ),
    input_format: Optional[str] = typer.Option(None, help="Override the input format: jsonl, parquet, csv."),
    output_format: Optional[str] = typer.Option(None, help="Override the output format: jsonl, parquet, csv."),
    text_field: Optional[str] = typer.Option(None, help="Column holding the text [default: text]"),
    id_field: Optional[str] = typer.Option(None, help="Column holding the row id; row number when absent [default: id]"),
    model: Optional[str] = opt.MODEL,
    device: Optional[str] = opt.DEVICE,
    precision: Optional[str] = opt.PRECISION,
    backend: Optional[str] = opt.BACKEND,
    mode: Optional[str] = typer.Option(
        None, help="mixed (CPU pool + device) or gpu-only (baseline, all in one process) [default: mixed]"
    ),
    clean: Optional[str] = opt.CLEAN,
    engine: Optional[str] = typer.Option(
        None, help="local (process pool), ray (Ray Data) or runpod (jobs on the --deploy endpoints) [default: local]"
    ),
    deploy: Optional[Path] = typer.Option(
        None, help="With --engine runpod: the deploy spec whose endpoints run the stages (its state file, written "
        "by deploy apply or deploy local, says where they are)."
    ),
    ray_address: Optional[str] = typer.Option(
        None, envvar="RAY_ADDRESS", help="Ray cluster to join [default: a local one]"
    ),
    cpu_workers: Optional[int] = opt.CPU_WORKERS,
    torch_threads: Optional[int] = opt.TORCH_THREADS,
    batch_size: Optional[int] = typer.Option(
        None, help="Most rows per device micro-batch [default: 64 on a CPU, 1024 on CUDA]"
    ),
    max_batch_tokens: Optional[int] = typer.Option(
        None, help="Most padded tokens per micro-batch [default: 8192 on a CPU, 65536 on CUDA]"
    ),
    chunk_rows: Optional[int] = typer.Option(
        None, help="Rows per chunk, the window sorted by length [default: 16384; 1024 with --engine ray, 4096 with "
        "--engine runpod]"
    ),
    first_chunk_rows: Optional[int] = typer.Option(
        None, help="Rows in the first chunk; every next one has --chunk-rows, so the device starts "
        "sooner (local engine) [default: 1024]"
    ),
    all_scores: bool = typer.Option(False, "--all-scores", help="Add a score_<label> column per label."),
    keep_text: bool = typer.Option(False, "--keep-text", help="Copy the input text into the output."),
    output_prefix: Optional[str] = typer.Option(
        None, help="Put this before the name of each column the classifier adds (pred_ -> pred_label, pred_score, "
        "...); needed when an input column has one of those names, which is never overwritten [default: none]"
    ),
    dedup: Optional[bool] = typer.Option(
        None, "--dedup/--no-dedup", help="Reuse predictions for repeated texts [default: dedup]"
    ),
    on_error: Optional[str] = typer.Option(
        None, help="Bad rows: skip (to OUTPUT.errors.jsonl) or fail [default: skip]"
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
    stage_timeout_cpu: Optional[float] = typer.Option(None, help="Seconds a preprocessing chunk may take."),
    stage_timeout_gpu: Optional[float] = typer.Option(None, help="Seconds an inference chunk may take."),
    pricing: Optional[Path] = opt.PRICING,
    profile: Optional[str] = opt.PROFILE,
    requests_per_day: Optional[float] = typer.Option(None, help="Also project cost per day and month."),
    idle_timeout: Optional[float] = typer.Option(
        None, help="Seconds each provisioned worker stays billed after its work (Runpod's default) [5]."
    ),
    gpu_speedup: Optional[float] = typer.Option(
        None, help="How many times faster a GPU runs inference than this CPU: GPU-priced figures use CPU s / X."
    ),
    max_cost: Optional[float] = typer.Option(
        None, help="Dollars the whole job may cost: stop cleanly (exit 4, checkpointed) before the chunk that would "
        "take the provisioned bill (mixed, or GPU-only with --mode gpu-only; from process start, idle tail and "
        "rounding included; --resume carries the spend) past it."
    ),
    cache: Optional[Path] = opt.CACHE,
    no_cache: Optional[bool] = opt.NO_CACHE,
    cache_max_bytes: Optional[int] = opt.CACHE_MAX_BYTES,
    report: Optional[Path] = typer.Option(None, help="Write the versioned JSON report here."),
    rows_per_file: Optional[int] = typer.Option(
        None, help="Folder output: a part file per this many rows [default: a part per input file]"
    ),
    config: Optional[Path] = typer.Option(
        None, help="Pipeline defaults TOML; its classify table overrides the packaged configs/default.toml."
    ),
    fmt: str = typer.Option(
        "table", "--format", "-f", help="table (for people), json (one summary object on stdout) or markdown."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Nothing on success, problems on stderr (for cron); the summary only when "
        "asked for (--format json or markdown, --report)."
    ),
) -> None:
    """Label every row of INPUT and write OUTPUT in input order, then print what each stage cost.

    Options not given come from MIXEDCLF_<OPTION> environment variables, then the --config file, then the
    packaged defaults.
    """
    values = {k: v for k, v in locals().items() if k not in ("config", "quiet", "fmt")}
    from mixedclf.core.options import build_options
    from mixedclf.engines.run import classify_file

    values["resume"] = resume or None
    values["all_scores"] = all_scores or None
    values["keep_text"] = keep_text or None
    values["no_cache"] = no_cache or None
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of: {', '.join(FORMATS)} (got {fmt!r})")
    opts = build_options(values, config)
    target = None
    if opts.engine == "runpod" or opts.deploy is not None:
        from mixedclf.cli.deploy import batch_target

        opts, target = batch_target(opts, model_given=model is not None)
    show_progress = not quiet and sys.stderr.isatty()
    result = classify_file(opts, progress=show_progress, started_at=process_clock.process_start(),
                           warn=lambda line: err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False,
                                                       soft_wrap=True), target=target)
    from mixedclf.render.report import render_report, report_to_markdown

    report = result.report
    # With `-o -` stdout carries the rows: everything said about them goes to stderr.
    to_stderr = str(opts.output) == "-"
    emit = (lambda text: err.file.write(text if text.endswith("\n") else text + "\n")) if to_stderr else _emit
    if fmt == "json":
        from mixedclf.costs.summary import classify_summary

        summary = classify_summary(report, result.output_path, opts.report, result.errors_path)
        emit(summary.model_dump_json(indent=2))
    elif fmt == "markdown":
        emit(report_to_markdown(report))
    elif not quiet:
        render_report(report, stderr_console() if to_stderr else stdout_console())
    if report.rows_errored:
        where = "the JSON lines on stderr above" if to_stderr else result.errors_path
        err.print(f"{report.rows_errored:,} rows skipped: see {where}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_ROWS_SKIPPED if report.rows_errored else EXIT_OK)


@app.command()
def models(
    search: list[Path] = typer.Option([], "--search", help="Also list model folders inside this folder."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json (a list of objects on stdout)."),
) -> None:
    """List the models mixedclf can use: the default, and any model folders found under --search."""
    from rich.markup import escape
    from rich.table import Table

    from mixedclf.models import list_models

    if fmt not in ("table", "json"):
        raise InputError(f"--format must be table or json (got {fmt!r})")
    specs = list_models(search)
    if fmt == "json":
        import json

        rows = [{"name": s.name, "kind": s.kind, "labels": list(s.labels), "max_length": s.max_length,
                 "path": str(s.path)} for s in specs]
        _emit(json.dumps(rows, indent=2))
        return
    table = Table(title="models")
    for column in ("name", "kind", "labels", "max tokens"):
        table.add_column(column, no_wrap=True)
    table.add_column("path", overflow="fold")
    for spec in specs:
        table.add_row(escape(spec.name), spec.kind, escape(", ".join(spec.labels)), str(spec.max_length),
                      escape(str(spec.path)))
    stdout_console().print(table)


def _register_subcommands() -> None:
    from mixedclf.cli import costs as cli_costs
    from mixedclf.cli import deploy as cli_deploy
    from mixedclf.cli import serve as cli_serve
    from mixedclf.cli import train as cli_train

    cli_costs.register(app)
    cli_train.register(app)
    cli_serve.register(app)
    cli_deploy.register(app)


_register_subcommands()


def main() -> None:
    process_clock.mark_process_start()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet_libraries()
    try:
        app()
    except SystemExit as done:
        if isinstance(done.__context__, BrokenPipeError):
            # rich's answer to a closed pipe while typer prints help (`mixedclf --help | head -1`): a silent exit 1
            raise SystemExit(fail(done.__context__).exit_code) from None
        # What a command printed may still sit in stdout's buffer: a reader gone by now (`| head`) is seen here,
        # through the same table as an error raised inside the command, not as Python's "Exception ignored".
        # Any failure of the flush goes through that table too: no traceback, whatever stdout is (or closed).
        try:
            stdout_stream().flush()
        except Exception as exc:  # noqa: BLE001 - mapped through the one exit-code table
            raise SystemExit(fail(exc).exit_code) from None
        raise done


if __name__ == "__main__":
    main()
