"""The command line: parse options, call the library, render. No pipeline logic lives here."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from mixedclf import __version__
from mixedclf.cli import options as opt
from mixedclf.cli.errors import AppGroup, err, fail
from mixedclf.core.option_registry import ClassifyFields
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


# classify's options, in --help's order; each is declared once, in core.option_registry.ClassifyFields
CLASSIFY_OPTIONS = (
    "input", "output", "input_format", "output_format", "text_field", "id_field", "model", "device", "precision",
    "backend", "mode", "clean", "engine", "deploy", "ray_address", "cpu_workers", "torch_threads", "batch_size",
    "max_batch_tokens", "chunk_rows", "first_chunk_rows", "all_scores", "keep_text", "output_prefix", "dedup",
    "on_error", "resume", "stage_timeout_cpu", "stage_timeout_gpu", "pricing", "profile", "requests_per_day",
    "idle_timeout", "gpu_speedup", "max_cost", "cache", "no_cache", "cache_max_bytes", "report", "rows_per_file",
)


@app.command()
@opt.with_options(ClassifyFields, CLASSIFY_OPTIONS)
def classify(
    config: Optional[Path] = typer.Option(
        None, help="Pipeline defaults TOML; its classify table overrides the packaged configs/default.toml.",
        rich_help_panel=opt.PANEL_IO,
    ),
    fmt: str = typer.Option(
        "table", "--format", "-f", help="table (for people), json (one summary object on stdout) or markdown.",
        rich_help_panel=opt.PANEL_IO,
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Nothing on success, problems on stderr (for cron); the summary only when "
        "asked for (--format json or markdown, --report).", rich_help_panel=opt.PANEL_IO,
    ),
    **values: Any,
) -> None:
    """Label every row of INPUT and write OUTPUT in input order, then print what each stage cost.

    Options not given come from MIXEDCLF_<OPTION> environment variables, then the --config file, then the
    packaged defaults.
    """
    from mixedclf.core.options import build_options, option_source
    from mixedclf.engines.registry import engine_class
    from mixedclf.engines.run import classify_file

    if fmt not in FORMATS:
        raise InputError(f"--format must be one of: {', '.join(FORMATS)} (got {fmt!r})")
    opts = build_options(values, config)
    layer = {name: option_source(name, values, opts.config).rank for name in ("deploy", "engine")}
    if opts.deploy is not None and not engine_class(opts.engine).deployed and layer["deploy"] < layer["engine"]:
        # A config's (or MIXEDCLF_DEPLOY's) spec belongs to the engine a higher layer has just replaced.
        opts = opts.model_copy(update={"deploy": None})
    target = None
    if engine_class(opts.engine).deployed or opts.deploy is not None:
        from mixedclf.cli.deploy import batch_target

        opts, target = batch_target(opts, values)
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
