"""The report step of a Ray run: the collector's and Ray Data's statistics mapped onto the local engine's
RunResult (the same StageMeasurements, settings and run statistics), so the cost report has the same shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mixedclf.core.batching import batch_limits
from mixedclf.core.options import ClassifyOptions, chunk_rows_for
from mixedclf.core.pipeline import DeviceWork
from mixedclf.core.postprocess import LabelTally
from mixedclf.core.run import RunSettings
from mixedclf.core.stats import StageClock
from mixedclf.costs import RunMeasurements, StageMeasurement
from mixedclf.engines.ray.sizing import PoolPlan
from mixedclf.engines.ray.stats import operator_stats
from mixedclf.engines.result import RunResult, run_stats, stage_measurement
from mixedclf.models.spec import ModelSpec


@dataclass
class RayRun:
    """What a finished Ray job hands to the report: the model, the pool plan, the collector's and Ray's
    statistics, the merge's counts."""

    spec: ModelSpec
    plan: PoolPlan
    snap: dict[str, Any]
    summary: Any  # Ray Data's DatasetStatsSummary
    tally: LabelTally
    counts: dict[str, int]
    n_parts: int
    in_fmt: str
    out_fmt: str


@dataclass
class Timeline:
    """Wall-clock moments of a Ray job (time.time(): comparable across nodes)."""

    start: float
    exec_start: float
    exec_end: float
    merge_start: float
    merge_end: float
    end: float


def ray_result(opts: ClassifyOptions, job: RayRun, times: Timeline) -> RunResult:
    """The local engine's RunResult from a finished Ray job: its stage measurements, settings and statistics."""
    o = opts
    spec, plan, snap, summary, tally, counts = job.spec, job.plan, job.snap, job.summary, job.tally, job.counts
    n_parts, in_fmt, out_fmt = job.n_parts, job.in_fmt, job.out_fmt
    t_start, exec_start, exec_end = times.start, times.exec_start, times.exec_end
    merge_start, merge_end, t_end = times.merge_start, times.merge_end, times.end
    rows_in, rows_out, rows_errored = counts["in"], counts["out"], counts["errored"]
    duplicate_ids = counts["duplicate_ids"]
    stages = snap["stages"]
    actors = snap["actors"]
    device = ", ".join(sorted({a["device"] for a in actors.values()})) or plan.device
    ops = operator_stats(summary)

    def clock(name: str, billing: str, dev: str, workers: int) -> StageMeasurement:
        s = stages.get(name)
        c = StageClock(name, billing, dev, workers=workers)
        if s:
            c.add(s["first"], s["last"], s["items"])
            c.busy_s = s["busy_s"]
        return stage_measurement(c)

    loads = [(a["load_start"], a["load_end"]) for a in actors.values()]
    load_wall = (max(e for _, e in loads) - min(b for b, _ in loads)) if loads else 0.0
    load = StageMeasurement(name="model_load", billing="gpu", device=device, items=0,
                            busy_s=sum(e - b for b, e in loads), wall_s=load_wall, workers=max(1, len(loads)))
    read_busy = sum(op["busy_s"] for op in ops if op["stage"] == "read")
    read_first = min((op["first"] for op in ops if op["stage"] == "read" and op["first"]), default=None)
    read_last = max((op["last"] for op in ops if op["stage"] == "read" and op["last"]), default=None)
    read = StageMeasurement(
        name="read", billing="cpu", device="cpu", items=rows_in, busy_s=read_busy,
        wall_s=(read_last - read_first) if read_first and read_last else read_busy,
        workers=1,  # Ray Data reads one file with one task (it splits the output, not the reading)
    )
    write_busy = sum(op["busy_s"] for op in ops if op["stage"] == "write")
    write_first = min((op["first"] for op in ops if op["stage"] == "write" and op["first"]), default=None)
    write_last = max((op["last"] for op in ops if op["stage"] == "write" and op["last"]), default=None)
    merge_s = merge_end - merge_start
    write = StageMeasurement(
        name="write", billing="cpu", device="cpu", items=rows_out, busy_s=write_busy + merge_s,
        wall_s=((write_last - write_first) if write_first and write_last else write_busy) + merge_s, workers=1,
    )
    cpu_workers = plan.cpu_workers
    def processes(stage: str) -> int:  # distinct worker processes that ran the stage
        return max(1, len(stages.get(stage, {}).get("workers", [])))

    pre = clock("preprocess", "cpu", "cpu", min(cpu_workers, processes("preprocess")))
    inf = clock("inference", "gpu", device, max(1, len(actors)))
    post = clock("postprocess", "cpu", "cpu", processes("postprocess"))
    measurements = RunMeasurements(
        mode="mixed", items=rows_out, stages=[load, read, pre, inf, post, write], wall_s=t_end - t_start,
        gpu_held_s=sum(max(0.0, (a["last_end"] or a["load_end"]) - a["load_start"]) for a in actors.values()),
        cpu_pool_held_s=exec_end - exec_start, cpu_pool_workers=cpu_workers,
    )
    st: dict[str, float] = {}
    for a in actors.values():
        for key, value in a["stats"].items():
            st[key] = st.get(key, 0) + value
    first_inference = stages.get("inference", {}).get("first")
    def resolved(key: str, fallback: str) -> str:  # every actor's own choice; several only on mixed hardware
        return ", ".join(sorted({a.get(key) or fallback for a in actors.values()})) or fallback

    batch = batch_limits("cuda" if plan.use_gpu else "cpu", o.batch_size, o.max_batch_tokens)
    settings = RunSettings(
        mode=o.mode, device=device, precision=resolved("precision", o.precision),
        precision_reason=resolved("precision_reason", ""), cpu_workers=cpu_workers,
        backend=resolved("backend", o.backend or ("onnxruntime" if o.precision == "int8" else "torch")),
        torch_threads=plan.torch_threads, batch_size=batch[0], max_batch_tokens=batch[1],
        chunk_rows=chunk_rows_for(o), first_chunk_rows=chunk_rows_for(o),  # Ray: every chunk full size
        clean=o.clean, dedup=o.dedup, input_format=in_fmt, output_format=out_fmt, engine="ray",
        ray_address=o.ray_address, inference_workers=plan.actors,
        inference_worker_cpus=plan.actor_cpus, inference_worker_gpus=plan.actor_gpus,
    )
    extra = run_stats(
        DeviceWork.from_totals(st), tally,  # every actor's stage-contract figures, summed
        duplicate_ids=duplicate_ids,
        startup_s=(first_inference - t_start) if first_inference else None,
        ray_nodes=plan.nodes, ray_cluster_cpus=plan.total_cpus, ray_cluster_gpus=plan.gpus,
        ray_parts=n_parts, ray_merge_s=merge_s, ray_execution_s=exec_end - exec_start,
        ray_operators=[{k: op[k] for k in ("name", "tasks", "busy_s", "wall_s", "rows")} for op in ops],
        inference_devices=sorted({a["device"] for a in actors.values()}),
        # Seconds after the Ray job started: where its start-up time goes.
        ray_timeline={
            "model_load": [round(min(s for s, _ in loads) - exec_start, 3),
                           round(max(e for _, e in loads) - exec_start, 3)] if loads else None,
            **{k: [round(v["first"] - exec_start, 3), round(v["last"] - exec_start, 3)] for k, v in stages.items()},
            "end": round(exec_end - exec_start, 3),
        },
    )
    return RunResult(spec, device, measurements, tally, rows_in, rows_out, rows_errored, settings, extra)
