"""`mixedclf check run`: classify one input with two installed versions of mixedclf, interleaved, N rounds.

Each round runs both sides once, one after the other, alternating which goes first (AB, BA, AB, ...), so load
that comes and goes on the machine falls on both sides alike; warm-up rounds (page cache, converted-model and
tokenizer caches) are run and discarded. Each run is its own process (`PYTHON -m mixedclf classify ...`), so each
side runs its own installed code. The reports are then compared by `mixedclf check` (costs/check.py).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mixedclf.costs.pricing import CostInputError

#: Rounds when none are given: with the default significance, enough for a 1.5x slower stage to fail in at least
#: 9 of 10 tries on a loaded 2-core machine while identical code passes (tests/test_check_run.py, docs/ci.md).
DEFAULT_ROUNDS = 6
DEFAULT_WARMUP = 1
RUN_TIMEOUT_S = 1800.0


@dataclass
class RoundsResult:
    baseline: list[Path] = field(default_factory=list)
    current: list[Path] = field(default_factory=list)


def _one_run(python: str, side: str, number: int, input_path: str, run_opts: list[str], folder: Path,
             keep: bool) -> Path:
    report = folder / (f"{side}-{number}.json" if keep else f"warmup-{side}-{number}.json")
    output = folder / f"out-{side}.jsonl"
    output.unlink(missing_ok=True)
    # -P: the working directory is not put on sys.path, so a checkout's mixedclf/ folder there cannot shadow the
    # version installed in that Python's environment
    cmd = [python, "-P", "-m", "mixedclf", "classify", input_path, "-o", str(output), "--report", str(report),
           "--quiet", *run_opts]
    try:
        # Each round measures the whole run: the prediction cache would answer every round after the first. The
        # setting, not --no-cache, so a baseline python of a version without the cache still runs.
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, timeout=RUN_TIMEOUT_S, env={**os.environ, "MIXEDCLF_NO_CACHE": "1"})
    except FileNotFoundError:
        raise CostInputError(f"{side} python {python!r} was not found") from None
    except subprocess.TimeoutExpired:
        raise CostInputError(f"{side} run {number} took longer than {RUN_TIMEOUT_S:g}s") from None
    finally:
        output.unlink(missing_ok=True)
    if done.returncode != 0 or not report.is_file():
        last = (done.stderr or "").strip().splitlines()[-1:] or ["no message"]
        raise CostInputError(f"{side} run {number} failed (exit {done.returncode}): {last[0]} "
                             f"[{shlex.join(cmd)}]")
    if not keep:
        report.unlink(missing_ok=True)
    return report


def run_rounds(input_path: str, baseline_python: str, candidate_python: str, rounds: int = DEFAULT_ROUNDS,
               warmup: int = DEFAULT_WARMUP, run_opts: str = "", reports_dir: Path | None = None,
               on_round=None) -> RoundsResult:
    """Run the rounds; the reports go to ``reports_dir`` (baseline-N.json, current-N.json)."""
    if rounds < 1 or warmup < 0:
        raise CostInputError("--rounds must be 1 or more and --warmup 0 or more")
    if not Path(input_path).exists():
        raise CostInputError(f"input {input_path} does not exist")
    opts = shlex.split(run_opts)
    for bad in ("-o", "--output", "--report", "--resume"):
        if bad in opts:
            raise CostInputError(f"--run-opts may not set {bad}: check run chooses each run's output and report")
    folder = Path(reports_dir) if reports_dir is not None else Path(tempfile.mkdtemp(prefix="mixedclf-check-run-"))
    folder.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="mixedclf-check-run-out-"))
    result = RoundsResult()
    sides = (("baseline", baseline_python, result.baseline), ("current", candidate_python, result.current))
    try:
        for i in range(warmup + rounds):
            keep = i >= warmup
            number = i - warmup + 1 if keep else i + 1
            for side, python, reports in (sides if i % 2 == 0 else sides[::-1]):
                report = _one_run(python, side, number, input_path, opts, scratch, keep)
                if keep:
                    final = folder / report.name
                    shutil.move(str(report), final)
                    reports.append(final)
            if on_round is not None:
                on_round(i + 1, warmup + rounds)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result
