"""Example measurements: used by the docs' worked example, `estimate` demos and the tests.

The numbers are made up but shaped like a real run (4,000 short texts, a 4-worker CPU pool).
"""

from __future__ import annotations

from mixedclf.costs.accounting import RunMeasurements, StageMeasurement
from mixedclf.costs.pricing import PricingProfile
from mixedclf.costs.report import LabelAggregate

#: The reference profile, independent of configs/pricing.toml.
REFERENCE = PricingProfile(
    name="reference",
    description="The original design's rates: CPU worker $0.0002/s, GPU worker $0.0015/s.",
    cpu_per_sec=0.0002,
    gpu_per_sec=0.0015,
    cpu_desc="2 vCPU, 8 GB",
    cpu_per_vcpu_sec=0.0001,  # the same worker, per vCPU (Runpod prices CPU endpoints per vCPU)
    gpu_desc="RTX 4090 class",
    source="original mixed CPU/GPU pipeline design",
    illustrative=True,
)


def stage(name: str, billing: str, busy: float, *, items: int = 4000, wall: float | None = None,
          workers: int = 1, device: str | None = None) -> StageMeasurement:
    return StageMeasurement(
        name=name,
        billing=billing,  # type: ignore[arg-type]
        device=device or ("cuda:0" if billing == "gpu" else "cpu"),
        items=items,
        busy_s=busy,
        wall_s=busy if wall is None else wall,
        workers=workers,
    )


def mixed_run(items: int = 4000, *, load: float = 1.5, read: float = 0.2, pre: float = 20.0, inf: float = 4.0,
              post: float = 0.4, write: float = 0.3, wall: float = 10.0, gpu_held: float = 9.0,
              pool_held: float = 9.5, workers: int = 4, process: float | None = 12.0,
              startup: float = 2.5) -> RunMeasurements:
    """A mixed run: 4 CPU workers preprocess, the GPU runs inference (docs/cost-model.md worked example)."""
    return RunMeasurements(
        mode="mixed",
        items=items,
        wall_s=wall,
        process_s=process,
        startup_s=startup,
        gpu_held_s=gpu_held,
        cpu_pool_held_s=pool_held,
        cpu_pool_workers=workers,
        stages=[
            stage("model_load", "gpu", load, items=0),
            stage("read", "cpu", read, items=items),
            stage("preprocess", "cpu", pre, items=items, wall=max(0.0, pool_held - 0.5), workers=workers),
            stage("inference", "gpu", inf, items=items, wall=min(wall, 8.0)),
            stage("postprocess", "cpu", post, items=items),
            stage("write", "cpu", write, items=items),
        ],
    )


def gpu_only_run(items: int = 4000, *, load: float = 1.5, pre: float = 6.0, inf: float = 4.0, post: float = 0.4,
                 wall: float = 12.5, process: float | None = 14.0, startup: float = 2.0) -> RunMeasurements:
    """A `--mode gpu-only` run: every stage one after another in one process on the device."""
    return RunMeasurements(
        mode="gpu-only",
        items=items,
        wall_s=wall,
        process_s=process,
        startup_s=startup,
        gpu_held_s=max(0.0, wall - 0.1),
        cpu_pool_held_s=0.0,
        cpu_pool_workers=0,
        stages=[
            stage("model_load", "gpu", load, items=0),
            stage("preprocess", "cpu", pre, items=items, device="cuda:0"),
            stage("inference", "gpu", inf, items=items),
            stage("postprocess", "cpu", post, items=items, device="cuda:0"),
        ],
    )


def classify_fields(run: RunMeasurements | None = None, pricing: PricingProfile = REFERENCE, **over) -> dict:
    """Keyword arguments for mixedclf.costs.report.build_classify_report describing an example run."""
    fields = dict(
        model="default",
        input_path="sample_data/reviews.jsonl",
        output_path="out.jsonl",
        device="cuda:0",
        rows_in=4000,
        rows_out=4000,
        settings={"batch_size": 64, "cpu_workers": 4},
        pricing=pricing,
        measurements=run or mixed_run(),
        aggregate=LabelAggregate(
            label_counts={"positive": 2100, "negative": 1900},
            mean_confidence=0.83,
            bucket_counts={"high": 3000, "medium": 800, "low": 200},
        ),
    )
    fields.update(over)
    return fields
