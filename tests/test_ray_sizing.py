"""The Ray engine's pool plan (engines/ray/sizing.py): sized from the cluster's resources alone, so no Ray is
started and these run in the fast tier."""

from __future__ import annotations

import dataclasses

import pytest

from mixedclf.engines.ray.sizing import PoolPlan, size_pools
from mixedclf.errors import ModelError


def node(cpus):
    return {"Resources": {"CPU": cpus}}


def test_pool_sizing_leaves_cpus_for_reads_and_gives_each_gpu_an_actor():
    laptop = size_pools({"CPU": 2}, [node(2)])
    assert (laptop.actors, laptop.actor_cpus, laptop.cpu_workers, laptop.use_gpu) == (1, 1, 1, False)
    gpu_box = size_pools({"CPU": 16, "GPU": 2}, [node(16)])
    assert (gpu_box.actors, gpu_box.actor_cpus, gpu_box.cpu_workers, gpu_box.use_gpu) == (2, 1, 14, True)
    cpu_cluster = size_pools({"CPU": 24}, [node(8)] * 3)
    assert cpu_cluster.actor_cpus <= 7  # never a whole node
    assert cpu_cluster.actors * cpu_cluster.actor_cpus + cpu_cluster.cpu_workers < 24
    assert size_pools({"CPU": 16, "GPU": 1}, [node(16)], device="cpu").use_gpu is False
    assert size_pools({"CPU": 1}, [node(1)]).actor_cpus == 0.5


def test_the_plan_is_typed_and_fixed_once_made():
    plan = size_pools({"CPU": 16, "GPU": 2}, [node(8), node(8)], cpu_workers=6, torch_threads=3)
    assert plan == PoolPlan(use_gpu=True, device="cuda", gpus=2, total_cpus=16, nodes=2, cpu_workers=6, actors=2,
                            actor_cpus=1.0, task_cpus=1.0, torch_threads=3)
    assert plan.actor_gpus == 1 and size_pools({"CPU": 4}, [node(4)]).actor_gpus == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.actors = 3  # type: ignore[misc]


def test_a_cpu_model_gets_threads_and_cuda_without_a_gpu_is_refused():
    assert size_pools({"CPU": 8}, [node(8)]).torch_threads == 7  # its actor's CPUs and the one left free
    assert size_pools({"CPU": 8, "GPU": 1}, [node(8)]).torch_threads is None
    with pytest.raises(ModelError, match="no GPU"):
        size_pools({"CPU": 8}, [node(8)], device="cuda")
