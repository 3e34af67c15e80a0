"""`plan`: hardware for a batch job before a deadline, or the cheapest Runpod deployment meeting a latency target
(written as mixedclf-deploy.toml). Thin: parse, call costs/plan and costs/deploy_plan, render."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from mixedclf.cli import options as opt
from mixedclf.cli.common import USAGE_HELP, choice, console, emit
from mixedclf.costs.pricing import CostInputError, load_pricing


def plan_cmd(
    rows: int | None = typer.Option(None, "--rows", help="Batch: rows the job must classify."),
    requests_per_day: float | None = typer.Option(
        None, "--requests-per-day", help="Batch: instead of --rows, a day's requests, due within --deadline."),
    deadline: str = typer.Option(
        "24h", "--deadline", help="Batch: when the job must be done: 90m, 2h, 1d, or seconds."),
    p95_latency: str | None = typer.Option(
        None, "--p95-latency", help="Serverless: the p95 end-to-end latency target (e.g. 2s, 500ms): plan the "
                                    "cheapest Runpod deployment for the usage file's traffic and write it."),
    from_report: list[str] = typer.Option(
        [], "--from-report", help="PROFILE=REPORT.json, a classify report measured on that profile's GPU class "
                                  "(repeat once per class; classes without one are listed as unmeasured)."),
    pricing: Path | None = opt.PRICING,
    usage: Path | None = typer.Option(None, "--usage", help=USAGE_HELP),
    no_usage: bool = typer.Option(False, "--no-usage", help="Ignore ./mixedclf-usage.toml."),
    max_workers: int = typer.Option(3, "--max-workers", help="Most workers per endpoint (Runpod console default 3)."),
    account_workers: int = typer.Option(
        5, "--account-workers", help="The account's worker limit: max workers summed over endpoints (default 5)."),
    spend_limit: float | None = typer.Option(
        None, "--spend-limit", help="Account spend limit, $/hour [default: the usage file's, else 80]."),
    idle_timeout: float = typer.Option(
        5.0, "--idle-timeout", help="Batch: seconds each worker stays up (billed) after its last batch."),
    write: Path | None = typer.Option(
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

    choice(fmt, ("table", "json"), "--format")
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
        emit(plan.model_dump_json(indent=2))
    else:
        console().print(plan_table(plan))


def _plan_deploy(p95_latency, from_report, pricing, usage, no_usage, max_workers, account_workers, spend_limit,
                 write, force, fmt) -> None:
    from mixedclf.costs.deploy_plan import PlanLimits, make_deploy_plan, measured_stages
    from mixedclf.costs.deployment import DEPLOY_FILE_NAME, write_deployment
    from mixedclf.costs.estimate import EstimateInputs
    from mixedclf.costs.plan import parse_duration
    from mixedclf.costs.usage import find_usage
    from mixedclf.render.plan import deploy_plan_lines

    choice(fmt, ("table", "json"), "--format")
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
                  f"{base.requests_per_day:,.0f} requests/day over {base.active_hours:g} h: "
                  f"${best.per_month:,.2f}/month "
                  f"({base.days_per_month} days), p95 latency {best.p95_latency_s:.3f} s (target {target:g} s)"]
        write_deployment(plan.best, write or Path(DEPLOY_FILE_NAME), header=header, overwrite=force)
    if fmt == "json":
        emit(plan.model_dump_json(indent=2))
    else:
        for line in deploy_plan_lines(plan, write or Path(DEPLOY_FILE_NAME)):
            emit(line)
    if plan.best is None:
        raise CostInputError(plan.note)
