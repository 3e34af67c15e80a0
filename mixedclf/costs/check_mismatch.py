"""When a baseline and a current report are not like for like: the differences `mixedclf check` refuses (kind,
pricing, model, mode, partial runs, work-changing settings) and those it only warns about (speed settings); and
reports no comparison can use (no row classified, work counts that contradict the report).

Pure module: no torch, no pools.
"""

from __future__ import annotations

import math

from mixedclf.costs.work import model_flops

#: Settings that change the work itself: reports that differ in one are refused without --allow-mismatch.
WORK_SETTINGS = ("device", "precision", "chunk_rows", "batch_size", "max_batch_tokens", "dedup", "clean")
#: How far apart (absolute) two runs' prediction-cache hit rates may be: rows the cache answers skip the device, so
#: the hit rate is part of the work (docs/ci.md).
CACHE_HIT_RATE_TOLERANCE = 0.01
#: Settings that change only how fast the work is done: listed as warnings.
SPEED_SETTINGS = ("cpu_workers", "torch_threads", "engine")


def _pair_mismatches(base, cur, where: str) -> tuple[list[str], list[str]]:
    """(refused, warned) differences between two reports; ``where`` names them in the messages."""
    hard: list[str] = []
    soft: list[str] = []
    if base.kind != cur.kind:
        hard.append(f"report kinds differ{where}: baseline {base.kind}, current {cur.kind}")
    bp, cp = base.pricing, cur.pricing
    if bp.name != cp.name:
        hard.append(f"pricing profiles differ{where}: baseline {bp.name!r}, current {cp.name!r}")
    elif (bp.cpu_per_sec, bp.gpu_per_sec) != (cp.cpu_per_sec, cp.gpu_per_sec):
        hard.append(
            f"pricing profile {bp.name!r} has different rates{where}: baseline CPU {bp.cpu_per_sec:g} GPU "
            f"{bp.gpu_per_sec:g}, current CPU {cp.cpu_per_sec:g} GPU {cp.gpu_per_sec:g} $/s"
        )
    bm, cm = getattr(base, "model", None), getattr(cur, "model", None)
    if bm is not None and cm is not None and bm != cm:
        hard.append(f"models differ{where}: baseline {bm!r}, current {cm!r}")
    if not (base.kind == cur.kind == "classify"):
        return hard, soft
    if base.mode != cur.mode:
        hard.append(f"modes differ{where}: baseline {base.mode}, current {cur.mode}")
    for label, rep in (("baseline", base), ("current", cur)):
        if rep.resumed is not None:
            hard.append(f"{label} is a partial run{where} ({rep.resumed.describe()})")
        if getattr(rep, "stopped", None) is not None:
            hard.append(f"{label} is a partial run{where} (stopped at its cost budget)")
    for key in WORK_SETTINGS:
        b, c = base.settings.get(key), cur.settings.get(key)
        if b != c and not (b is None or c is None):
            hard.append(f"setting {key} differs{where}: baseline {b!r}, current {c!r}")
    bh, ch = cache_hit_rate(base), cache_hit_rate(cur)
    if abs(bh - ch) > CACHE_HIT_RATE_TOLERANCE:
        hard.append(f"prediction cache hit rates differ{where}: baseline {bh:.1%}, current {ch:.1%} (rows the cache "
                    "answers skip the device; compare runs with --no-cache, or with the same hit rate)")
    for key in SPEED_SETTINGS:
        b, c = base.settings.get(key), cur.settings.get(key)
        if b != c and not (b is None or c is None):
            soft.append(f"setting {key} differs{where}: baseline {b!r}, current {c!r} (changes measured seconds)")
    return hard, soft


def cache_hit_rate(report) -> float:
    """The share of rows a run's prediction cache answered; 0 for a run without one."""
    cache = getattr(report, "cache", None)
    return cache.hit_rate if cache is not None else 0.0


def mismatch_lists(bases: list, curs: list) -> tuple[list[str], list[str]]:
    """Why the reports are not like for like: every report against the first baseline. (refused, warned)."""
    hard: list[str] = []
    soft: list[str] = []
    ref = bases[0]
    many = len(bases) + len(curs) > 2
    for i, rep in enumerate(bases[1:], start=2):
        h, s_ = _pair_mismatches(ref, rep, f" (baseline 1 vs baseline {i})")
        hard += h
        soft += s_
    for i, rep in enumerate(curs, start=1):
        h, s_ = _pair_mismatches(ref, rep, f" (current {i})" if many else "")
        hard += h
        soft += s_
    return list(dict.fromkeys(hard)), list(dict.fromkeys(soft))


def mismatches(base, cur) -> list[str]:
    """Why two reports are not like for like (empty when they are)."""
    return mismatch_lists([base], [cur])[0]


def unusable(report) -> str | None:
    """Why a report cannot be compared at all, whatever --allow-mismatch says: a classify run that classified no
    row (every row skipped: its per-1,000 figures are zeros, not a saving), or work counts that contradict the
    report's own token counts or row count (an edited file: the verdict would rest on made-up work)."""
    if report.kind != "classify":
        return None
    if report.cost.items <= 0:
        return (f"the run classified no rows ({report.rows_in:,} read, {report.rows_errored:,} errored): there is "
                "no cost per row to compare")
    work = getattr(report, "work", None)
    if work is None:
        return None
    if work.rows != report.cost.items:
        return f"work.rows {work.rows:,} contradicts the {report.cost.items:,} rows the run measured"
    expected = model_flops(work.shape, work.padded_tokens, work.token_width_sum) / 1e9
    if not math.isclose(work.gflop, expected, rel_tol=1e-9, abs_tol=1e-12):
        return (f"work.gflop {work.gflop:.6g} contradicts the report's token counts and model shape "
                f"({expected:.6g} GFLOP)")
    if work.real_tokens > work.padded_tokens or work.padded_tokens > work.token_width_sum:
        return "work token counts contradict each other (real > padded tokens, or padded > the attention sum)"
    return None
