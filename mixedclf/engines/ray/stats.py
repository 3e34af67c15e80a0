"""Ray Data's per-operator statistics, mapped onto the report's read and write stages.

The stage callables (ray_stages) time themselves; Ray Data's statistics supply read and write, whose tasks are
Ray's own. Operators are matched by name: Ray Data names a map operator after its callable's class.
"""

from __future__ import annotations

from mixedclf.engines.ray.stages import Infer, Postprocess, Preprocess, RowNumberer

# Ray Data names a map operator after its callable's class: MapBatches(Infer). These time themselves.
_OWN_STAGES = tuple(f"({cls.__name__})" for cls in (Preprocess, Infer, Postprocess))


def _sub_stage(name: str) -> str | None:
    """Which report stage a Ray Data (sub-)operator belongs to; None for those the callables time themselves."""
    if name.startswith("Read") or f"({RowNumberer.__name__})" in name or name.startswith("SplitBlocks"):
        return "read"
    if name.startswith("Write"):
        return "write"
    return None


def operator_stats(summary) -> list[dict]:
    """Ray Data's per-operator statistics, fused operators split per stage when Ray measured them so."""
    out: list[dict] = []
    summaries, todo, seen = [], [summary], set()
    while todo:  # the write's summary holds the upstream operators as parents
        s = todo.pop()
        if s is None or id(s) in seen:
            continue
        seen.add(id(s))
        summaries.append(s)
        todo += list(getattr(s, "parents", None) or [])
    ops = [op for s in reversed(summaries) for op in (getattr(s, "operators_stats", None) or [])]
    for op in ops:
        subs = op.operator_name.split("->")
        wall = op.wall_time.sum if op.wall_time else 0.0
        tasks = int(op.wall_time.count) if op.wall_time else 0
        rows = int(op.output_num_rows.sum) if op.output_num_rows else 0
        per_stage = op.stage_time if getattr(op, "stage_time", None) and len(op.stage_time) == len(subs) else None
        first, last = op.earliest_start_time, op.latest_end_time
        for i, sub in enumerate(subs):
            stage = _sub_stage(sub)
            if per_stage is not None:
                busy = float(per_stage[i].sum)
            elif len(subs) == 1:
                busy = float(wall)
            else:
                # Fused without a split: Ray's part of the time goes to the Ray stage, ours is timed by the callable.
                busy = float(wall) if stage is not None and not any(s in op.operator_name for s in _OWN_STAGES) else 0.0
            out.append({"name": sub, "op": op.operator_name, "stage": stage, "tasks": tasks, "busy_s": busy,
                        "wall_s": (last - first) if first and last else 0.0, "first": first, "last": last,
                        "rows": rows})
    return out
