"""Engines by name. An engine runs a resolved RunPlan (engines/plan.py) and returns a RunResult; the generic
runner (engines/run.py) asks an engine what it is (`in_process`), never which one it is. A new engine joins with
one entry in ENGINES (and its name among the --engine choices)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from mixedclf.errors import InputError

if TYPE_CHECKING:
    from mixedclf.core.options import ClassifyOptions
    from mixedclf.engines.budget import CostMeter
    from mixedclf.engines.plan import RunPlan
    from mixedclf.engines.progress import WorkListener
    from mixedclf.engines.result import RunResult
    from mixedclf.io.prediction_cache import PredictionCache
    from mixedclf.io.runpod_jobs import RunpodTarget


@dataclass(frozen=True)
class RunHooks:
    """What the caller lends a run. meter reaches only an in-process engine, answers only one that takes the
    prediction cache (see Engine)."""

    on_rows: Callable[[int], None] | None = None  # told each batch of rows written (the progress bar)
    meter: CostMeter | None = None  # prices the run chunk by chunk (--max-cost, the checkpoint's spend)
    answers: PredictionCache | None = None  # rows answered without the device (the prediction cache)
    on_work: WorkListener | None = None  # told each chunk's and micro-batch's tokens (the bar's ETA)
    warn: Callable[[str], None] | None = None  # told a line about the run that does not stop it
    target: RunpodTarget | None = None  # the deployed endpoints an engine sends its jobs to (--engine runpod)


class Engine(Protocol):
    # True: the device stage runs in this process, so the cost meter (--max-cost), the prediction cache and this
    # process's own clock (start-up, cold start, held time) apply to it; False: its workers are elsewhere.
    in_process: ClassVar[bool]
    # True: its workers are a deployment's endpoints (--deploy SPEC), which the caller resolves into hooks.target.
    deployed: ClassVar[bool]

    @classmethod
    def cache_refusal(cls, opts: ClassifyOptions) -> str | None:
        """Why this run cannot use the prediction cache, in one line; None when it can."""

    def run(self, plan: RunPlan, hooks: RunHooks) -> RunResult: ...


# name -> "module:class" of an Engine, imported only when chosen (Ray's driver is heavy).
ENGINES: dict[str, str] = {
    "local": "mixedclf.engines.local:LocalRunner",
    "ray": "mixedclf.engines.ray_runner:RayRunner",
    "runpod": "mixedclf.engines.runpod:RunpodRunner",
}


def engine_class(name: str) -> type[Engine]:
    try:
        module, attr = ENGINES[name].split(":")
    except KeyError:
        raise InputError(f"unknown engine {name!r}", hint=f"use one of {', '.join(ENGINES)}") from None
    return getattr(importlib.import_module(module), attr)
