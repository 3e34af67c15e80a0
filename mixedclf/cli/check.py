"""`check`: the CI cost gate, `check compare` (the default: `check CUR... --baseline BASE...`) and `check run`
(both versions interleaved, then compared). Thin: parse, call costs/check, render."""

from __future__ import annotations

import functools
import inspect
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperCommand

from mixedclf.cli.common import FORMATS, USAGE_HELP, choice, console, emit, write_text
from mixedclf.cli.help import HelpGroup


class _GreedyBaseline(TyperCommand):
    """`--baseline a.json b.json c.json`: every path after --baseline up to the next option is a baseline.

    The click parser takes one value per option, so the arguments are rewritten to repeat the option first.
    """

    def parse_args(self, ctx, args):
        out: list[str] = []
        greedy = False
        for arg in args:
            if arg in ("--baseline", "-b"):
                greedy = True
                out.append("--baseline")
                continue
            if greedy and arg.startswith("-"):
                greedy = False
            elif greedy and out[-1] != "--baseline":
                out.append("--baseline")
            out.append(arg)
        return super().parse_args(ctx, out)


@dataclass(frozen=True)
class GateOptions:
    """The gate's options, which `check compare` and `check run` both take: declared once, here (see with_gate)."""

    max_increase_pct: float
    max_stage_increase_pct: float
    alpha: float
    max_increase_abs: float | None
    budget_per_1k: float | None
    warn_pct: float | None
    metric: str
    basis: str
    fmt: str
    allow_mismatch: bool
    output: Path | None
    usage: Path | None
    no_usage: bool


# GateOptions field -> (its type as typer reads it, its typer option).
_GATE_PARAMS: dict[str, tuple[Any, Any]] = {
    "max_increase_pct": (float, typer.Option(
        10.0, "--max-increase-pct", help="Fail above this % increase of cost per 1,000 items (the default gate: 10).")),
    "max_stage_increase_pct": (float, typer.Option(
        25.0, "--max-stage-increase-pct",
        help="Fail when any stage's CPU seconds per 1,000 items rose more than this % (significant over the runs).")),
    "alpha": (float, typer.Option(
        0.05, "--alpha", help="Significance of the CPU-time gate, split over the figures it tests.")),
    "max_increase_abs": (float | None, typer.Option(
        None, "--max-increase-abs", help="Fail above this absolute increase (in the metric's unit; $ for cost).")),
    "budget_per_1k": (float | None, typer.Option(
        None, "--budget-per-1k", help="Fail when cost per 1,000 items exceeds this.")),
    "warn_pct": (float | None, typer.Option(None, "--warn-pct", help="Warn (exit 0) above this % increase.")),
    "metric": (str, typer.Option("cost_per_1k", "--metric", help="cost_per_1k | gpu_seconds_per_1k | throughput")),
    "basis": (str, typer.Option(
        "pay-per-use", "--basis", help="pay-per-use | provisioned (the measured figures).")),
    "fmt": (str, typer.Option("table", "--format", "-f", help="table | markdown | json")),
    "allow_mismatch": (bool, typer.Option(
        False, "--allow-mismatch",
        help="Compare reports of different models, modes, kinds, pricing, work settings or partial runs.")),
    "output": (Path | None, typer.Option(None, "--output", "-o", help="Also write the rendering to FILE.")),
    "usage": (Path | None, typer.Option(
        None, "--usage", help=USAGE_HELP + ": adds each side's projected $/month under it (not gated).")),
    "no_usage": (bool, typer.Option(False, "--no-usage", help="Ignore ./mixedclf-usage.toml.")),
}
assert list(_GATE_PARAMS) == [f.name for f in fields(GateOptions)]


def with_gate(command: Callable[..., None]) -> Callable[..., None]:
    """command(..., gate: GateOptions) as typer sees it: its own parameters, then the gate's options (after them,
    in GateOptions' order); the wrapper packs their values into the GateOptions it passes on."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "gate"]
    gate = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
            for name, (kind, option) in _GATE_PARAMS.items()]

    @functools.wraps(command)
    def wrapper(**values: Any) -> None:
        options = GateOptions(**{name: values.pop(name) for name in _GATE_PARAMS})
        command(**values, gate=options)

    parameters = own + gate
    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


@with_gate
def check_cmd(
    current: list[Path] = typer.Argument(..., help="The new report(s) (classify or estimate JSON); several: median."),
    baseline: list[Path] = typer.Option(
        ..., "--baseline", "-b", help="The report(s) to compare against: --baseline a.json b.json c.json."
    ),
    *,
    gate: GateOptions,
) -> None:
    """Compare reports with baselines: exit 0 within limits, 1 on a regression, 2 on unusable input.

    Two gates: counted work (tokens, micro-batches, model FLOPs) priced at one calibrated rate; and, with three or
    more reports per side (`mixedclf check run` makes them), each stage's CPU seconds per 1,000 rows compared with
    a rank test. Several reports per side are compared by their medians. With a usage file, each side's $/month
    under the team's traffic is printed beside the verdict. `mixedclf check CUR... --baseline BASE...` is short
    for `mixedclf check compare ...`.
    """
    code = _check(current, baseline, gate)
    raise typer.Exit(code)


@with_gate
def check_run_cmd(
    input_path: str = typer.Argument(..., metavar="INPUT", help="The input both sides classify (a file or folder)."),
    baseline_python: str = typer.Option(
        ..., "--baseline-python", help="Python of the environment with the baseline's mixedclf installed."),
    candidate_python: str | None = typer.Option(
        None, "--candidate-python", help="Python of the candidate's environment [default: the one running this]."),
    rounds: int = typer.Option(6, "--rounds", help="Measured rounds; each runs both sides once, interleaved."),
    warmup: int = typer.Option(1, "--warmup", help="Rounds run first and discarded (caches, page cache)."),
    run_opts: str = typer.Option(
        "", "--run-opts", help="classify options for every run, one string (e.g. \"--device cpu --cpu-workers 1\")."),
    reports_dir: Path | None = typer.Option(
        None, "--reports-dir",
        help="Keep the reports here (baseline-N.json, current-N.json) [default: a temp folder]."),
    *,
    gate: GateOptions,
) -> None:
    """Classify INPUT with the baseline's and the candidate's mixedclf, interleaved, for CI; then check.

    Each round runs both sides once (alternating which goes first); the reports are compared as `check` does.
    Exit codes as `check`: 0 within limits, 1 a regression, 2 unusable input or a run that failed.
    """
    import shutil
    import tempfile

    from mixedclf.engines.rounds import run_rounds

    choice(gate.fmt, FORMATS, "--format")
    keep = reports_dir is not None
    folder = reports_dir if reports_dir is not None else Path(tempfile.mkdtemp(prefix="mixedclf-check-run-"))
    err = Console(stderr=True, highlight=False)
    try:
        res = run_rounds(input_path, baseline_python, candidate_python or sys.executable, rounds=rounds,
                         warmup=warmup, run_opts=run_opts, reports_dir=folder,
                         on_round=lambda i, n: err.print(f"check run: round {i}/{n} done"))
        code = _check(res.current, res.baseline, gate)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    raise typer.Exit(code)


def _check(current: list[Path], baseline: list[Path], gate: GateOptions) -> int:
    from mixedclf.costs.check import CheckLimits, check_files
    from mixedclf.costs.check_metrics import BASES, METRICS
    from mixedclf.render.check import check_to_json, check_to_markdown, render_check

    g = gate
    fmt = choice(g.fmt, FORMATS, "--format")
    choice(g.metric, METRICS, "--metric")
    choice(g.basis, BASES, "--basis")
    from mixedclf.costs.usage import find_usage

    result = check_files(
        list(current),
        list(baseline),
        usage_file=find_usage(g.usage, disabled=g.no_usage),
        metric=g.metric,
        basis=g.basis,
        allow_mismatch=g.allow_mismatch,
        limits=CheckLimits(
            max_increase_pct=g.max_increase_pct,
            max_increase_abs=g.max_increase_abs,
            budget_per_1k=g.budget_per_1k,
            warn_pct=g.warn_pct,
            max_stage_increase_pct=g.max_stage_increase_pct,
            alpha=g.alpha,
        ),
    )
    if fmt == "json":
        text = check_to_json(result)
        emit(text)
    elif fmt == "markdown":
        text = check_to_markdown(result)
        emit(text)
    else:
        # rendered first, then written: a closed pipe is then a BrokenPipeError for the CLI's exit-code table,
        # not rich's silent exit 1 in the middle of a table
        emit(_rendered(render_check, result, console()))
        text = None
    if g.output is not None:
        if text is None:
            buf = Console(record=True, width=120, file=io.StringIO())
            render_check(result, buf)
            text = buf.export_text()
        write_text(g.output, text)
    return result.exit_code


def _rendered(render, result, like: Console) -> str:
    """What `render(result, console)` prints on a console like `like` (its width and colours), as text."""
    buf = Console(file=io.StringIO(), width=like.width, force_terminal=like.is_terminal,
                  color_system=like.color_system, soft_wrap=False, highlight=False)  # type: ignore[arg-type]
    render(result, buf)
    return buf.file.getvalue()  # type: ignore[attr-defined]


class _CheckGroup(HelpGroup):
    """`check`: `compare` (the default: `check CUR... --baseline BASE...`) and `run` (the interleaved rounds)."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["compare", *args]
        return super().parse_args(ctx, args)


check_app = typer.Typer(cls=_CheckGroup, no_args_is_help=True, add_completion=False,
                        help="Cost gate for CI: compare reports (`check CUR... --baseline BASE...`), or run both "
                             "versions interleaved and compare (`check run`).")
check_app.command("compare", cls=_GreedyBaseline)(check_cmd)
check_app.command("run")(check_run_cmd)
