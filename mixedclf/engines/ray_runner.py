"""The Ray engine (engines/ray/) behind the Engine protocol: its workers are a cluster's, not this process."""

from __future__ import annotations

from typing import ClassVar

from mixedclf.engines.plan import RunPlan
from mixedclf.engines.registry import RunHooks
from mixedclf.engines.result import RunResult


class RayRunner:
    in_process: ClassVar[bool] = False
    deployed: ClassVar[bool] = False

    def run(self, plan: RunPlan, hooks: RunHooks) -> RunResult:
        from mixedclf.engines.ray.driver import RayEngine

        return RayEngine(plan.opts, on_rows=hooks.on_rows).run()
