"""Cost commands: `estimate`, `check`, `report show`, `report advice` (thin: parse, call, render).

mixedclf/cli/app.py calls ``register(app)``. Errors are one line on stderr and exit code 2.
"""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from typer.core import TyperCommand

from mixedclf.cli import options as opt
from mixedclf.cli.help import HelpGroup
from mixedclf.costs.pricing import DEFAULT_PROFILE, CostInputError, load_pricing

FORMATS = ("table", "json", "markdown")


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value not in allowed:
        raise CostInputError(f"{option} must be one of: {', '.join(allowed)} (got {value!r})")
    return value


def _console() -> Console:
    from mixedclf.render.console import stdout_console

    return stdout_console()


def _emit(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _instance(value: str, option: str) -> None:
    from mixedclf.costs.pricing import instance_vcpus

    try:
        instance_vcpus(value)
    except CostInputError as exc:
        raise CostInputError(f"{option}: {exc}") from None


def _check_output_file(path: Path, option: str) -> None:
    """Refuse, before any work, an output path that cannot be a file (a folder, or inside a missing one's file)."""
    if path.is_dir() or str(path).endswith(("/", "\\")):
        raise CostInputError(f"{option} {path}: is a folder; give a file name, e.g. {path / 'estimate.json'}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise CostInputError(f"{option} {path}: {parent} is a file, not a folder")


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------------- estimate


def _workers(spec, option: str) -> tuple[int, int] | None:
    """"MIN:MAX" (or one number N, meaning 0:N) -> (min, max)."""
    from mixedclf.costs.usage import parse_workers

    return None if spec is None else parse_workers(spec, option)


USAGE_HELP = ("Usage file (traffic and deployment: requests/day, active hours, idle timeouts, cold starts, workers, "
              "billing, profile) [default: ./mixedclf-usage.toml when present]")


def _given(ctx: typer.Context) -> set[str]:
    """Parameters set on the command line or by their environment variable: these win over a usage file."""
    # by name: typer may carry its own copy of click, whose ParameterSource is another class
    return {name for name in ctx.params
            if getattr(ctx.get_parameter_source(name), "name", None) in ("COMMANDLINE", "ENVIRONMENT")}


def _apply_usage(values: dict, given: set[str], usage_file) -> dict:
    """Option values with the usage file's keys filled in where the command line left the default."""
    if usage_file is None:
        return values
    out = dict(values)
    for key, value in usage_file.usage.given().items():
        if key in out and key not in given:
            out[key] = value
    return out


def estimate_cmd(
    ctx: typer.Context,
    requests_per_day: float = typer.Option(10_000, "--requests-per-day", "-n", help="Requests (texts) per day."),
    pre_sec: Optional[float] = typer.Option(None, "--pre-sec", help="CPU seconds per request before the model [default: 0.05]"),
    gpu_sec: Optional[float] = typer.Option(None, "--gpu-sec", help="GPU seconds per request [default: 0.2]"),
    post_sec: Optional[float] = typer.Option(None, "--post-sec", help="CPU seconds per request after the model [default: 0.03]"),
    from_report: Optional[Path] = typer.Option(
        None, "--from-report", help="Take per-item stage seconds (and pricing) from a classify report."
    ),
    pricing: Optional[Path] = opt.PRICING,
    profile: Optional[str] = opt.PROFILE,
    billing: str = typer.Option("ideal", "--billing", help="Headline billing model: ideal | runpod."),
    overhead_sec: float = typer.Option(0.0, "--overhead-sec", help="Orchestration overhead per hop, paid by both sides."),
    cold_start_sec: float = typer.Option(0.0, "--cold-start-sec", help="Runpod: seconds a GPU worker takes to start."),
    cold_start_cpu_sec: Optional[float] = typer.Option(
        None, "--cold-start-cpu-sec", help="Runpod: seconds a CPU worker takes to start [default: 0]"
    ),
    defaults: str = typer.Option(
        "console", "--defaults", help="Runpod: whose defaults unset endpoints take: console (idle 5 s, workers 0:3) "
                                      "| flash (runpod-flash: idle 60 s, workers 0:1)."),
    start_billed: bool = typer.Option(
        True, "--start-billed/--start-not-billed",
        help="Runpod: bill each worker's start (pricing page) or not (workers page); docs/cost-model.md."),
    idle_timeout_cpu: Optional[float] = typer.Option(None, "--idle-timeout-cpu", help="Runpod: idle timeout of both CPU endpoints, 0..3600 s [default: per --defaults]"),
    idle_timeout_pre: Optional[float] = typer.Option(None, "--idle-timeout-pre", help="Runpod: idle timeout of the pre endpoint [default: per --defaults]"),
    idle_timeout_gpu: Optional[float] = typer.Option(None, "--idle-timeout-gpu", help="Runpod: idle timeout of the GPU endpoint [default: per --defaults]"),
    idle_timeout_post: Optional[float] = typer.Option(None, "--idle-timeout-post", help="Runpod: idle timeout of the post endpoint [default: per --defaults]"),
    gpu_workers: Optional[str] = typer.Option(None, "--gpu-workers", help="Runpod: GPU endpoint workers MIN:MAX [default: per --defaults]"),
    cpu_workers: Optional[str] = typer.Option(None, "--cpu-workers", help="Runpod: each CPU endpoint's workers MIN:MAX [default: per --defaults]"),
    cpu_instance: str = typer.Option("cpu3c-2-4", "--cpu-instance", help="Runpod: pre/post CPU instance (priced per vCPU)."),
    orchestrator_workers: int = typer.Option(
        1, "--orchestrator-workers", help="Runpod: always-on CPU workers in front of the mixed stages (0: the client calls them)."
    ),
    orchestrator_instance: str = typer.Option("cpu3c-1-2", "--orchestrator-instance", help="Runpod: the orchestrator's CPU instance."),
    orchestrator_for: str = typer.Option(
        "mixed", "--orchestrator-for", help="Runpod: which pipelines pay the front end: mixed (GPU-only called "
                                            "directly) | both."),
    arrivals: str = typer.Option("poisson", "--arrivals", help="Runpod: poisson | even arrivals."),
    seed: int = typer.Option(0, "--seed", help="Runpod: seed of the simulated arrivals."),
    sim_requests: int = typer.Option(10_000, "--sim-requests", help="Runpod: most requests per simulated pass."),
    spend_limit: float = typer.Option(80.0, "--spend-limit", help="Runpod: account spend limit, $/hour."),
    active_hours: float = typer.Option(24.0, "--active-hours", help="Hours per day over which requests arrive."),
    days_per_month: int = typer.Option(30, "--days-per-month", help="Days in a billing month."),
    cache_hit_rate: float = typer.Option(
        0.0, "--cache-hit-rate", help="Share of requests the prediction cache answers (0..1): GPU seconds per request "
        "x (1 - R) in both pipelines; docs/cache.md."),
    sweep_spec: Optional[str] = typer.Option(None, "--sweep", help="Table over request rates, e.g. 1000:1000000."),
    sweep_points: int = typer.Option(10, "--sweep-points", help="Rates in the sweep (log-spaced)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw cost/month vs requests/day to FILE.png (matplotlib)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | json | markdown"),
    report_out: Optional[Path] = typer.Option(None, "--report", help="Also write the estimate JSON here."),
    usage: Optional[Path] = typer.Option(None, "--usage", help=USAGE_HELP),
    no_usage: bool = typer.Option(False, "--no-usage", help="Ignore ./mixedclf-usage.toml."),
    deploy: Optional[Path] = typer.Option(
        None, "--deploy", help="Deploy spec (mixedclf-deploy.toml): price its idle timeouts, workers, orchestrator "
        "and GPU pool, as Runpod bills them."),
) -> None:
    """Project mixed vs GPU-only serverless cost per day and month (no run needed), ideal and as Runpod bills it.

    Values come from the command line, then the usage file, then the defaults.
    """
    values = {k: v for k, v in locals().items() if k != "ctx"}
    _estimate(_given(ctx), **values)


def _estimate(given: set[str], usage: Path | None, no_usage: bool, deploy: Path | None = None, **values) -> None:
    from mixedclf.costs.usage import find_usage

    usage_file = find_usage(usage, disabled=no_usage)
    notes = [f"{usage_file.describe()}; the command line wins over it"] if usage_file is not None else []
    values = _apply_usage(values, given, usage_file)
    if deploy is not None:
        values, deploy_notes = _apply_deploy(values, given, usage_file, deploy)
        notes += deploy_notes
    _estimate_values(notes=notes, **values)


def _apply_deploy(values: dict, given: set[str], usage_file, deploy: Path) -> tuple[dict, list[str]]:
    """The deploy spec's settings where the command line left the default; a key the usage file sets to
    another value is refused (two files must not disagree on one deployment)."""
    from mixedclf.cloud.estimate_keys import estimate_keys
    from mixedclf.cloud.spec import load_spec

    keys, notes = estimate_keys(load_spec(deploy))
    set_by_usage = usage_file.usage.given() if usage_file is not None else {}
    for key, value in keys.items():
        if key in set_by_usage and set_by_usage[key] != value:
            raise CostInputError(f"{deploy} and {usage_file.path} disagree on {key} ({value!r} vs "
                                 f"{set_by_usage[key]!r}): set it in one of them")
    out = dict(values)
    for key, value in keys.items():
        if key in out and key not in given:
            out[key] = f"{value[0]}:{value[1]}" if isinstance(value, tuple) else value
    return out, [f"deploy spec {deploy} ({', '.join(sorted(keys))}); the command line wins over it", *notes]


def _estimate_values(
    requests_per_day, pre_sec, gpu_sec, post_sec, from_report, pricing, profile, billing, overhead_sec, cold_start_sec,
    cold_start_cpu_sec, defaults, start_billed, idle_timeout_cpu, idle_timeout_pre, idle_timeout_gpu, idle_timeout_post,
    gpu_workers, cpu_workers, cpu_instance, orchestrator_workers, orchestrator_instance, orchestrator_for, arrivals,
    seed, sim_requests, spend_limit, active_hours, days_per_month, sweep_spec, sweep_points, plot, fmt, report_out,
    notes, cache_hit_rate: float = 0.0,
) -> None:
    from mixedclf.costs.estimate import BILLINGS, EstimateInputs, estimate, inputs_from_report
    from mixedclf.costs.report import ClassifyReport, load_report, write_report
    from mixedclf.costs.sweep import parse_sweep, plot_sweep
    from mixedclf.render.report import render_report, report_to_markdown

    _choice(fmt, FORMATS, "--format")
    _choice(billing, BILLINGS, "--billing")
    _choice(arrivals, ("poisson", "even"), "--arrivals")
    _choice(defaults, ("console", "flash"), "--defaults")
    _choice(orchestrator_for, ("mixed", "both"), "--orchestrator-for")
    _instance(cpu_instance, "--cpu-instance")
    _instance(orchestrator_instance, "--orchestrator-instance")
    if report_out is not None:
        _check_output_file(report_out, "--report")
    extras = dict(
        requests_per_day=requests_per_day,
        billing=billing,
        overhead_sec=overhead_sec,
        cold_start_sec=cold_start_sec,
        cold_start_cpu_sec=cold_start_cpu_sec,
        defaults=defaults,
        start_billed=start_billed,
        cpu_instance=cpu_instance,
        orchestrator_instance=orchestrator_instance,
        orchestrator_for=orchestrator_for,
        idle_timeout_cpu=idle_timeout_cpu,
        idle_timeout_pre=idle_timeout_pre,
        idle_timeout_gpu=idle_timeout_gpu,
        idle_timeout_post=idle_timeout_post,
        gpu_workers=_workers(gpu_workers, "--gpu-workers"),
        cpu_workers=_workers(cpu_workers, "--cpu-workers"),
        orchestrator_workers=orchestrator_workers,
        arrivals=arrivals,
        seed=seed,
        sim_requests=sim_requests,
        spend_limit_per_hour=spend_limit,
        active_hours=active_hours,
        days_per_month=days_per_month,
    )
    extras = {k: v for k, v in extras.items() if v is not None}
    stage_secs = dict(pre_sec=pre_sec, gpu_sec=gpu_sec, post_sec=post_sec)
    notes = list(notes)
    model = None
    if from_report is not None:
        src = load_report(from_report)
        if not isinstance(src, ClassifyReport):
            raise CostInputError(f"--from-report needs a classify report; {from_report} is an {src.kind} report")
        inputs, measured_notes = inputs_from_report(src, **extras, **stage_secs)
        notes += measured_notes
        inputs = inputs.model_copy(update={"source": f"report:{from_report}"})
        model = src.model
        prof = src.pricing if pricing is None and profile is None else load_pricing(pricing, profile or DEFAULT_PROFILE)
    else:
        given = {k: v for k, v in stage_secs.items() if v is not None}
        inputs = EstimateInputs(**extras, **given, source="options" if given else "defaults")
        prof = load_pricing(pricing, profile or DEFAULT_PROFILE)
    from mixedclf.costs.per_request import with_cache_hit_rate

    try:
        inputs, cache_notes = with_cache_hit_rate(inputs, cache_hit_rate)
    except ValueError as exc:
        raise CostInputError(str(exc)) from None
    notes += cache_notes
    sweep_range = parse_sweep(sweep_spec) if sweep_spec else None
    if plot is not None and sweep_range is None:
        r = max(requests_per_day, 1.0)
        sweep_range = (max(1.0, r / 100), r * 100)
    rep = estimate(
        inputs, prof, sweep_range=sweep_range, sweep_count=sweep_points, model=model,
        source_report=str(from_report) if from_report else None, notes=notes,
    )
    if from_report is not None and gpu_sec is None and isinstance(src, ClassifyReport) and src.cost.inference_on_cpu:
        # the report's inference ran on a CPU: its seconds priced at the GPU rate are no GPU's, so no saving
        rep = rep.model_copy(update={"savings_claim": False, "notes": [*rep.notes, (
            f"inference in {from_report} ran on a CPU: the GPU seconds per request are CPU seconds, so no saving "
            "is claimed; give --gpu-sec with a GPU's seconds per request to compare")]})
    if plot is not None:
        plot_sweep(rep, plot)
    if report_out is not None:
        write_report(rep, report_out)
    if fmt == "json":
        _emit(rep.model_dump_json(indent=2))
    elif fmt == "markdown":
        _emit(report_to_markdown(rep))
    else:
        render_report(rep, _console())
        if plot is not None:
            typer.echo(f"plot written to {plot}")


# ---------------------------------------------------------------------------------------- check


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


_MAX_INCREASE_PCT = typer.Option(
    10.0, "--max-increase-pct", help="Fail above this % increase of cost per 1,000 items (the default gate: 10).")
_MAX_STAGE_INCREASE_PCT = typer.Option(
    25.0, "--max-stage-increase-pct",
    help="Fail when any stage's CPU seconds per 1,000 items rose more than this % (significant over the runs).")
_ALPHA = typer.Option(0.05, "--alpha", help="Significance of the CPU-time gate, split over the figures it tests.")
_MAX_INCREASE_ABS = typer.Option(
    None, "--max-increase-abs", help="Fail above this absolute increase (in the metric's unit; $ for cost).")
_BUDGET_PER_1K = typer.Option(None, "--budget-per-1k", help="Fail when cost per 1,000 items exceeds this.")
_WARN_PCT = typer.Option(None, "--warn-pct", help="Warn (exit 0) above this % increase.")
_METRIC = typer.Option("cost_per_1k", "--metric", help="cost_per_1k | gpu_seconds_per_1k | throughput")
_BASIS = typer.Option("pay-per-use", "--basis", help="pay-per-use | provisioned (the measured figures).")
_FMT = typer.Option("table", "--format", "-f", help="table | markdown | json")
_ALLOW_MISMATCH = typer.Option(
    False, "--allow-mismatch",
    help="Compare reports of different models, modes, kinds, pricing, work settings or partial runs.")
_OUTPUT = typer.Option(None, "--output", "-o", help="Also write the rendering to FILE.")
_USAGE = typer.Option(None, "--usage", help=USAGE_HELP + ": adds each side's projected $/month under it (not gated).")
_NO_USAGE = typer.Option(False, "--no-usage", help="Ignore ./mixedclf-usage.toml.")


def check_cmd(
    current: list[Path] = typer.Argument(..., help="The new report(s) (classify or estimate JSON); several: median."),
    baseline: list[Path] = typer.Option(
        ..., "--baseline", "-b", help="The report(s) to compare against: --baseline a.json b.json c.json."
    ),
    max_increase_pct: float = _MAX_INCREASE_PCT,
    max_stage_increase_pct: float = _MAX_STAGE_INCREASE_PCT,
    alpha: float = _ALPHA,
    max_increase_abs: Optional[float] = _MAX_INCREASE_ABS,
    budget_per_1k: Optional[float] = _BUDGET_PER_1K,
    warn_pct: Optional[float] = _WARN_PCT,
    metric: str = _METRIC,
    basis: str = _BASIS,
    fmt: str = _FMT,
    allow_mismatch: bool = _ALLOW_MISMATCH,
    output: Optional[Path] = _OUTPUT,
    usage: Optional[Path] = _USAGE,
    no_usage: bool = _NO_USAGE,
) -> None:
    """Compare reports with baselines: exit 0 within limits, 1 on a regression, 2 on unusable input.

    Two gates: counted work (tokens, micro-batches, model FLOPs) priced at one calibrated rate; and, with three or
    more reports per side (`mixedclf check run` makes them), each stage's CPU seconds per 1,000 rows compared with
    a rank test. Several reports per side are compared by their medians. With a usage file, each side's $/month
    under the team's traffic is printed beside the verdict. `mixedclf check CUR... --baseline BASE...` is short
    for `mixedclf check compare ...`.
    """
    code = _check(**locals())
    raise typer.Exit(code)


def check_run_cmd(
    input_path: str = typer.Argument(..., metavar="INPUT", help="The input both sides classify (a file or folder)."),
    baseline_python: str = typer.Option(
        ..., "--baseline-python", help="Python of the environment with the baseline's mixedclf installed."),
    candidate_python: Optional[str] = typer.Option(
        None, "--candidate-python", help="Python of the candidate's environment [default: the one running this]."),
    rounds: int = typer.Option(6, "--rounds", help="Measured rounds; each runs both sides once, interleaved."),
    warmup: int = typer.Option(1, "--warmup", help="Rounds run first and discarded (caches, page cache)."),
    run_opts: str = typer.Option(
        "", "--run-opts", help="classify options for every run, one string (e.g. \"--device cpu --cpu-workers 1\")."),
    reports_dir: Optional[Path] = typer.Option(
        None, "--reports-dir",
        help="Keep the reports here (baseline-N.json, current-N.json) [default: a temp folder]."),
    max_increase_pct: float = _MAX_INCREASE_PCT,
    max_stage_increase_pct: float = _MAX_STAGE_INCREASE_PCT,
    alpha: float = _ALPHA,
    max_increase_abs: Optional[float] = _MAX_INCREASE_ABS,
    budget_per_1k: Optional[float] = _BUDGET_PER_1K,
    warn_pct: Optional[float] = _WARN_PCT,
    metric: str = _METRIC,
    basis: str = _BASIS,
    fmt: str = _FMT,
    allow_mismatch: bool = _ALLOW_MISMATCH,
    output: Optional[Path] = _OUTPUT,
    usage: Optional[Path] = _USAGE,
    no_usage: bool = _NO_USAGE,
) -> None:
    """Classify INPUT with the baseline's and the candidate's mixedclf, interleaved, for CI; then check.

    Each round runs both sides once (alternating which goes first); the reports are compared as `check` does.
    Exit codes as `check`: 0 within limits, 1 a regression, 2 unusable input or a run that failed.
    """
    import shutil
    import tempfile

    from mixedclf.engines.rounds import run_rounds

    _choice(fmt, FORMATS, "--format")
    keep = reports_dir is not None
    folder = reports_dir if reports_dir is not None else Path(tempfile.mkdtemp(prefix="mixedclf-check-run-"))
    err = Console(stderr=True, highlight=False)
    try:
        res = run_rounds(input_path, baseline_python, candidate_python or sys.executable, rounds=rounds,
                         warmup=warmup, run_opts=run_opts, reports_dir=folder,
                         on_round=lambda i, n: err.print(f"check run: round {i}/{n} done"))
        code = _check(res.current, res.baseline, max_increase_pct, max_stage_increase_pct, alpha, max_increase_abs,
                      budget_per_1k, warn_pct, metric, basis, fmt, allow_mismatch, output, usage, no_usage)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    raise typer.Exit(code)


def _check(current, baseline, max_increase_pct, max_stage_increase_pct, alpha, max_increase_abs, budget_per_1k,
           warn_pct, metric, basis, fmt, allow_mismatch, output, usage, no_usage) -> int:
    from mixedclf.costs.check import CheckLimits, check_files
    from mixedclf.costs.check_metrics import BASES, METRICS
    from mixedclf.render.check import check_to_json, check_to_markdown, render_check

    _choice(fmt, FORMATS, "--format")
    _choice(metric, METRICS, "--metric")
    _choice(basis, BASES, "--basis")
    from mixedclf.costs.usage import find_usage

    result = check_files(
        list(current),
        list(baseline),
        usage_file=find_usage(usage, disabled=no_usage),
        metric=metric,
        basis=basis,
        allow_mismatch=allow_mismatch,
        limits=CheckLimits(
            max_increase_pct=max_increase_pct,
            max_increase_abs=max_increase_abs,
            budget_per_1k=budget_per_1k,
            warn_pct=warn_pct,
            max_stage_increase_pct=max_stage_increase_pct,
            alpha=alpha,
        ),
    )
    if fmt == "json":
        text = check_to_json(result)
        _emit(text)
    elif fmt == "markdown":
        text = check_to_markdown(result)
        _emit(text)
    else:
        # rendered first, then written: a closed pipe is then a BrokenPipeError for the CLI's exit-code table,
        # not rich's silent exit 1 in the middle of a table
        _emit(_rendered(render_check, result, _console()))
        text = None
    if output is not None:
        if text is None:
            buf = Console(record=True, width=120, file=io.StringIO())
            render_check(result, buf)
            text = buf.export_text()
        _write_text(output, text)
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


# --------------------------------------------------------------------------------------- report

report_app = typer.Typer(help="Saved reports: show, advice.", no_args_is_help=True, add_completion=False)


@report_app.command("show")
def report_show_cmd(
    path: Path = typer.Argument(..., help="A classify or estimate report JSON."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | json | markdown"),
    advice: bool = typer.Option(True, "--advice/--no-advice", help="Include cost advice (table and markdown)."),
) -> None:
    """Re-render a saved report."""
    _report_show(path, fmt, advice)


def _report_show(path: Path, fmt: str, advice: bool) -> None:
    from mixedclf.costs.report import load_report
    from mixedclf.render.report import render_report, report_to_markdown

    _choice(fmt, FORMATS, "--format")
    rep = load_report(path)
    if fmt == "json":
        _emit(rep.model_dump_json(indent=2))
    elif fmt == "markdown":
        _emit(report_to_markdown(rep, advice=advice))
    else:
        render_report(rep, _console(), advice=advice)


@report_app.command("advice")
def report_advice_cmd(
    path: Path = typer.Argument(..., help="A classify or estimate report JSON."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | json | markdown"),
    limit: int = typer.Option(4, "--limit", help="At most this many suggestions."),
) -> None:
    """The changes that would cut cost most, each with an estimated saving."""
    _report_advice(path, fmt, limit)


def _report_advice(path: Path, fmt: str, limit: int) -> None:
    import json

    from mixedclf.costs.advice import advise
    from mixedclf.costs.report import load_report

    _choice(fmt, FORMATS, "--format")
    items = advise(load_report(path), limit=limit)
    if fmt == "json":
        _emit(json.dumps([a.model_dump() for a in items], indent=2))
        return
    if not items:
        _emit("no advice: nothing in this report points to a cheaper setup.")
        return
    for a in items:
        line = f"- **{a.title}** ({a.claim_text()}): {a.detail}" if fmt == "markdown" else (
            f"• {a.title} — {a.claim_text()}\n  {a.detail}")
        _emit(line)


# ------------------------------------------------------------------------------------- plan


def plan_cmd(
    rows: Optional[int] = typer.Option(None, "--rows", help="Batch: rows the job must classify."),
    requests_per_day: Optional[float] = typer.Option(
        None, "--requests-per-day", help="Batch: instead of --rows, a day's requests, due within --deadline."),
    deadline: str = typer.Option("24h", "--deadline", help="Batch: when the job must be done: 90m, 2h, 1d, or seconds."),
    p95_latency: Optional[str] = typer.Option(
        None, "--p95-latency", help="Serverless: the p95 end-to-end latency target (e.g. 2s, 500ms): plan the "
                                    "cheapest Runpod deployment for the usage file's traffic and write it."),
    from_report: list[str] = typer.Option(
        [], "--from-report", help="PROFILE=REPORT.json, a classify report measured on that profile's GPU class "
                                  "(repeat once per class; classes without one are listed as unmeasured)."),
    pricing: Optional[Path] = opt.PRICING,
    usage: Optional[Path] = typer.Option(None, "--usage", help=USAGE_HELP),
    no_usage: bool = typer.Option(False, "--no-usage", help="Ignore ./mixedclf-usage.toml."),
    max_workers: int = typer.Option(3, "--max-workers", help="Most workers per endpoint (Runpod console default 3)."),
    account_workers: int = typer.Option(
        5, "--account-workers", help="The account's worker limit: max workers summed over endpoints (default 5)."),
    spend_limit: Optional[float] = typer.Option(
        None, "--spend-limit", help="Account spend limit, $/hour [default: the usage file's, else 80]."),
    idle_timeout: float = typer.Option(
        5.0, "--idle-timeout", help="Batch: seconds each worker stays up (billed) after its last batch."),
    write: Optional[Path] = typer.Option(
        None, "--write", help="Serverless: where to write the chosen deployment [default: ./mixedclf-deploy.toml]."),
    force: bool = typer.Option(False, "--force", help="Serverless: replace an existing --write file."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Plan hardware from measured reports: a batch job before a deadline (--rows), or the cheapest Runpod
    serverless deployment meeting a latency target (--p95-latency, with --usage), written as mixedclf-deploy.toml."""
    if p95_latency is not None:
        _plan_deploy(p95_latency, from_report, pricing, usage, no_usage, max_workers, account_workers, spend_limit,
                     write, force, fmt)
        return
    _plan(rows, requests_per_day, deadline, from_report, pricing, fmt, max_workers, account_workers,
          spend_limit if spend_limit is not None else 80.0, idle_timeout)


def _measured_reports(from_report: list[str]) -> list:
    """(profile, path, classify report) for each --from-report PROFILE=REPORT.json."""
    from mixedclf.costs.report import ClassifyReport, load_report

    out = []
    for item in from_report:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise CostInputError(f"--from-report {item!r}: expected PROFILE=REPORT.json")
        report = load_report(path)
        if not isinstance(report, ClassifyReport):
            raise CostInputError(f"{path}: an estimate report has no measured throughput; give a classify report")
        out.append((name, path, report))
    return out


def _plan(rows, requests_per_day, deadline, from_report, pricing, fmt, max_workers, account_workers, spend_limit,
          idle_timeout) -> None:
    from mixedclf.costs.plan import BatchLimits, make_plan, measured_throughput, parse_duration
    from mixedclf.costs.pricing import list_profiles
    from mixedclf.render.plan import plan_table

    _choice(fmt, ("table", "json"), "--format")
    if (rows is None) == (requests_per_day is None):
        raise CostInputError("give exactly one of --rows and --requests-per-day (or --p95-latency with --usage)")
    if not from_report:
        raise CostInputError("plan: no measured reports: give --from-report PROFILE=REPORT.json, a classify report "
                             "measured on that profile's device class")
    total = rows if rows is not None else math.ceil(requests_per_day)
    measured = {name: measured_throughput(report, path) for name, path, report in _measured_reports(from_report)}
    profiles = {name: load_pricing(pricing, name) for name in list_profiles(pricing)}
    limits = BatchLimits(max_workers=max_workers, account_workers=account_workers, spend_limit_per_hour=spend_limit,
                         idle_timeout_s=idle_timeout)
    plan = make_plan(profiles, measured, total, parse_duration(deadline), limits)
    if fmt == "json":
        _emit(plan.model_dump_json(indent=2))
    else:
        _console().print(plan_table(plan))


def _plan_deploy(p95_latency, from_report, pricing, usage, no_usage, max_workers, account_workers, spend_limit,
                 write, force, fmt) -> None:
    from mixedclf.costs.deploy_plan import PlanLimits, make_deploy_plan, measured_stages
    from mixedclf.costs.deployment import DEPLOY_FILE_NAME, write_deployment
    from mixedclf.costs.estimate import EstimateInputs
    from mixedclf.costs.plan import parse_duration
    from mixedclf.costs.usage import find_usage
    from mixedclf.render.plan import deploy_plan_lines

    _choice(fmt, ("table", "json"), "--format")
    usage_file = find_usage(usage, disabled=no_usage)
    if usage_file is None:
        raise CostInputError("plan --p95-latency needs the traffic: give --usage mixedclf-usage.toml "
                             "(requests_per_day, active_hours, ...)")
    fields = usage_file.usage.estimate_fields()
    if "requests_per_day" not in fields:
        raise CostInputError(f"{usage_file.path}: sets no requests_per_day, which the planner needs")
    base = EstimateInputs(**fields)
    reports = _measured_reports(from_report)
    profiles = {name: load_pricing(pricing or usage_file.usage.pricing, name) for name, _, _ in reports}
    measured = [measured_stages(report, name, profiles[name], path) for name, path, report in reports]
    target = parse_duration(p95_latency, "--p95-latency")
    limits = PlanLimits(p95_latency_s=target, max_workers=max_workers, account_workers=account_workers,
                        spend_limit_per_hour=spend_limit if spend_limit is not None else base.spend_limit_per_hour)
    plan = make_deploy_plan(base, profiles, measured, limits)
    if plan.best is not None:
        best = plan.ranked[0]
        header = [f"written by `mixedclf plan` from {usage_file.path} and {', '.join(p for _, p, _ in reports)}",
                  f"{base.requests_per_day:,.0f} requests/day over {base.active_hours:g} h: ${best.per_month:,.2f}/month "
                  f"({base.days_per_month} days), p95 latency {best.p95_latency_s:.3f} s (target {target:g} s)"]
        write_deployment(plan.best, write or Path(DEPLOY_FILE_NAME), header=header, overwrite=force)
    if fmt == "json":
        _emit(plan.model_dump_json(indent=2))
    else:
        for line in deploy_plan_lines(plan, write or Path(DEPLOY_FILE_NAME)):
            _emit(line)
    if plan.best is None:
        raise CostInputError(plan.note)


# ------------------------------------------------------------------------------------- register


def register(app: typer.Typer) -> None:
    """Add `estimate`, `check` and the `report` group to the main typer app."""
    app.command("estimate")(estimate_cmd)
    app.add_typer(check_app, name="check")
    app.command("plan")(plan_cmd)
    app.add_typer(report_app, name="report")
