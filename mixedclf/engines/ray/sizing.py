"""Pool sizes for the Ray engine from what the cluster has (docs/ray.md explains the choices)."""

from __future__ import annotations

from dataclasses import dataclass

from mixedclf.errors import ModelError


@dataclass(frozen=True)
class PoolPlan:
    """How a Ray job lays its stages on the cluster, computed once by size_pools."""

    use_gpu: bool  # inference actors each hold a GPU
    device: str  # what the inference actors run on: cuda, cpu, or the --device asked for
    gpus: int  # in the cluster
    total_cpus: int  # in the cluster
    nodes: int  # alive
    cpu_workers: int  # preprocessing and postprocessing tasks at once
    actors: int  # inference actors
    actor_cpus: float  # CPUs each inference actor reserves
    task_cpus: float  # CPUs each preprocessing or postprocessing task reserves
    torch_threads: int | None  # each inference actor's; None: torch's own choice (on a GPU)

    @property
    def actor_gpus(self) -> int:
        """GPUs each inference actor reserves."""
        return 1 if self.use_gpu else 0


def size_pools(resources: dict, nodes: list[dict], device: str = "auto", cpu_workers: int | None = None,
               torch_threads: int | None = None) -> PoolPlan:
    """Pool sizes from what the cluster has (ray.cluster_resources(), alive ray.nodes()); docs/ray.md explains.

    GPUs: one inference actor per GPU (num_gpus=1 and one CPU to feed it); every other CPU preprocesses.
    CPU only: a quarter of the CPUs preprocess (the model needs the rest, as in the local engine); inference
    actors hold the rest, at most a node's CPUs minus one each, so every node keeps a CPU for its read and
    write tasks (an actor holding every CPU starves them, and the pipeline stalls).
    """
    total_cpus = max(1, int(resources.get("CPU", 1)))
    gpus = int(resources.get("GPU", 0))
    node_cpus = max([int(n.get("Resources", {}).get("CPU", 0)) for n in nodes] or [total_cpus]) or 1
    if device == "cuda" and gpus == 0:
        raise ModelError("--device cuda was asked for but the Ray cluster has no GPU",
                         hint="use --device auto or cpu, or add a GPU node")
    use_gpu = gpus > 0 and device in ("auto", "cuda")
    if use_gpu:
        actors, actor_cpus, device = gpus, 1.0, "cuda"
        cpu_workers = cpu_workers or max(1, total_cpus - actors)
    else:
        device = "cpu" if device in ("auto", "cuda") else device
        cpu_workers = cpu_workers or max(1, total_cpus // 4)
        spare = max(1, total_cpus - cpu_workers)
        actor_cpus = float(max(1, min(spare, node_cpus - 1)))
        actors = max(1, int(spare // actor_cpus))
    task_cpus = 1.0
    if node_cpus < 2:  # a one-CPU node: halves, or the actor and the tasks could never run side by side
        actor_cpus, task_cpus = 0.5, 0.5
        actors = actors if use_gpu else 1
    # Ray's CPU counts are for scheduling. On a CPU the model also runs on the CPU it leaves free, as the local
    # engine's model shares the cores with its pool: reading and tokenizing take ~1% of the model's time.
    threads = torch_threads or (None if use_gpu else max(1, min(node_cpus, int(actor_cpus) + 1)))
    return PoolPlan(use_gpu=use_gpu, device=device, gpus=gpus, total_cpus=total_cpus, nodes=len(nodes),
                    cpu_workers=cpu_workers, actors=actors, actor_cpus=actor_cpus, task_cpus=task_cpus,
                    torch_threads=threads)
