"""`mixedclf plan` renderings: the batch table (hardware ranked by the cost of meeting a deadline) and the
serverless planner's lines (the chosen deployment and the runners-up)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from mixedclf.costs.deploy_plan import DeployPlan, Evaluated
from mixedclf.costs.plan import Plan


def plan_table(plan: Plan) -> Table:
    hours = plan.deadline_s / 3600
    lim = plan.limits
    table = Table(title=f"{plan.rows:,} rows within {hours:g} h: provisioned workers, each billed start to stop "
                        f"({lim.idle_timeout_s:g} s idle tail), rounded up to the second; limits: {lim.max_workers} "
                        f"workers an endpoint, {lim.account_workers} an account, ${lim.spend_limit_per_hour:g}/hour",
                  title_justify="left")
    for header in ("profile", "runs on", "workers", "CPU workers", "hours", "cost", "measured by"):
        table.add_column(header, justify="right" if header in ("workers", "CPU workers", "hours", "cost") else "left")
    for row in plan.rows_ranked:
        if not row.feasible:
            workers = (str(row.device_workers), str(row.cpu_workers)) if row.device_workers else ("-", "-")
            table.add_row(row.profile, row.device_class, *workers, "-", "-", row.note, style="dim")
            continue
        table.add_row(row.profile, row.device_class, str(row.device_workers), str(row.cpu_workers),
                      f"{row.hours:.2f}", f"${row.cost:,.4f}", row.source)
    return table


def _describe(e: Evaluated) -> str:
    c = e.candidate
    shape = (f"single GPU endpoint {c.gpu_workers[0]}:{c.gpu_workers[1]}, idle {c.gpu_idle_s} s"
             if c.topology == "single" else
             f"split: pre 0:{c.pre_max}, infer {c.gpu_workers[0]}:{c.gpu_workers[1]} (idle {c.gpu_idle_s} s), post "
             f"0:{c.post_max}, CPU idle {c.cpu_idle_s} s")
    return f"{c.profile}, {shape}, orchestrator {c.orchestrator}"


def deploy_plan_lines(plan: DeployPlan, written: Path, runners_up: int = 4) -> list[str]:
    lim = plan.limits
    out = [f"plan: {plan.requests_per_day:,.0f} requests/day over {plan.active_hours:g} h; p95 latency target "
           f"{lim.p95_latency_s:g} s; limits {lim.max_workers} workers an endpoint, {lim.account_workers} an account, "
           f"${lim.spend_limit_per_hour:g}/hour; {plan.considered:,} deployments considered, {plan.simulated:,} "
           "simulated (Runpod billing)"]
    for m in plan.measured:
        out.append(f"  measured {m.profile} on {m.device} ({m.source}): pre {m.pre_sec:.4g} s, GPU {m.gpu_sec:.4g} s, "
                   f"post {m.post_sec:.4g} s per request, cold start {m.cold_start_s:.3g} s")
    out += [f"  note: {n}" for n in plan.notes]
    feasible = [e for e in plan.ranked if e.feasible]
    if plan.best is None:
        out.append(plan.note)
        return out
    best = feasible[0]
    out.append(f"cheapest: {_describe(best)}: ${best.per_month:,.2f}/month, p95 {best.p95_latency_s:.3f} s, mean "
               f"{best.mean_latency_s:.3f} s -> written to {written}")
    ties = [e for e in feasible[1:] if (e.per_month, e.p95_latency_s) == (best.per_month, best.p95_latency_s)]
    if ties:
        out.append(f"  {len(ties)} more cost and wait the same (longer idle timeouts or more max workers); the one "
                   "with the fewest workers and shortest idle timeouts was written")
    for e in [e for e in feasible[1:] if e not in ties][:runners_up]:
        out.append(f"  then: {_describe(e)}: ${e.per_month:,.2f}/month, p95 {e.p95_latency_s:.3f} s")
    return out
