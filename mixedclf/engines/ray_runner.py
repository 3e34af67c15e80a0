"""The Ray engine (engines/ray/) behind the Engine protocol: its workers are a cluster's, not this process."""

from __future__ import annotations

import os
from typing import ClassVar

from mixedclf.engines.plan import RunPlan
from mixedclf.engines.registry import RunHooks
from mixedclf.engines.result import RunResult


class RayRunner:
    in_process: ClassVar[bool] = False
    deployed: ClassVar[bool] = False

    @classmethod
    def cache_refusal(cls, opts) -> str | None:
        from mixedclf.engines.ray.cache import is_ray_client

        if is_ray_client(opts.ray_address or os.environ.get("RAY_ADDRESS")):
            return ("the prediction cache is not used through Ray Client (ray://): the cache is the driver's, and "
                    "this driver runs on the cluster; every row runs on the device (docs/cache.md)")
        return None

    def run(self, plan: RunPlan, hooks: RunHooks) -> RunResult:
        from mixedclf.engines.ray.driver import RayEngine

        return RayEngine(plan.opts, on_rows=hooks.on_rows, answers=hooks.answers, warn=hooks.warn).run()
