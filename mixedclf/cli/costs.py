"""Cost commands: `estimate`, `report show`, `report advice` (thin: parse, call, render); `check` and `plan` are
in cli/check.py and cli/plan.py.

mixedclf/cli/app.py calls ``register(app)``. Errors are one line on stderr and exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mixedclf.cli import options as opt
from mixedclf.cli.common import FORMATS, USAGE_HELP, choice, console, emit
from mixedclf.costs.pricing import DEFAULT_PROFILE, CostInputError, load_pricing


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


# ------------------------------------------------------------------------------------- estimate


def _workers(spec, option: str) -> tuple[int, int] | None:
    """"MIN:MAX" (or one number N, meaning 0:N) -> (min, max)."""
    from mixedclf.costs.usage import parse_workers

    return None if spec is None else parse_workers(spec, option)



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

    choice(fmt, FORMATS, "--format")
    choice(billing, BILLINGS, "--billing")
    choice(arrivals, ("poisson", "even"), "--arrivals")
    choice(defaults, ("console", "flash"), "--defaults")
    choice(orchestrator_for, ("mixed", "both"), "--orchestrator-for")
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
        emit(rep.model_dump_json(indent=2))
    elif fmt == "markdown":
        emit(report_to_markdown(rep))
    else:
        render_report(rep, console())
        if plot is not None:
            typer.echo(f"plot written to {plot}")


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

    choice(fmt, FORMATS, "--format")
    rep = load_report(path)
    if fmt == "json":
        emit(rep.model_dump_json(indent=2))
    elif fmt == "markdown":
        emit(report_to_markdown(rep, advice=advice))
    else:
        render_report(rep, console(), advice=advice)


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

    choice(fmt, FORMATS, "--format")
    items = advise(load_report(path), limit=limit)
    if fmt == "json":
        emit(json.dumps([a.model_dump() for a in items], indent=2))
        return
    if not items:
        emit("no advice: nothing in this report points to a cheaper setup.")
        return
    for a in items:
        line = f"- **{a.title}** ({a.claim_text()}): {a.detail}" if fmt == "markdown" else (
            f"• {a.title} — {a.claim_text()}\n  {a.detail}")
        emit(line)


# ------------------------------------------------------------------------------------- register


def register(app: typer.Typer) -> None:
    """Add `estimate`, `check` and the `report` group to the main typer app."""
    app.command("estimate")(estimate_cmd)
    from mixedclf.cli.check import check_app

    app.add_typer(check_app, name="check")
    from mixedclf.cli.plan import plan_cmd

    app.command("plan")(plan_cmd)
    app.add_typer(report_app, name="report")
