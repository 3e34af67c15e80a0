"""The local engine's set-up: what it adds to the run plan (engines/plan.py) before the model loads (backend,
device, micro-batch caps, CPU workers, the checkpoint it resumes), checked once, so a run that cannot start fails
before anything expensive happens."""

from __future__ import annotations

from dataclasses import dataclass

from mixedclf.core.option_registry import output_shaping
from mixedclf.core.options import ClassifyOptions
from mixedclf.core.stats import StageClock
from mixedclf.engines.plan import RunPlan
from mixedclf.errors import InputError
from mixedclf.io.checkpoint import Checkpoint, checkpoint_path, remove_checkpoint, run_fingerprint, verify_resumable
from mixedclf.io.runio import RunIO
from mixedclf.models.spec import ModelSpec
from mixedclf.runtime.device import default_cpu_workers

# Options that change the bytes of the output (declared so: core.option_registry): a checkpoint only resumes a
# run that had the same ones.
OUTPUT_SHAPING = output_shaping(ClassifyOptions)


@dataclass
class LocalPlan:
    """What one local run works with: the run plan and what the local engine resolves from it."""

    run: RunPlan
    backend: str
    device: object  # models.device.Device
    batch: tuple[int, int]  # micro-batch caps: (rows, padded tokens)
    mixed: bool  # preprocessing on a CPU pool (else in this process: --mode gpu-only)
    workers: int  # CPU workers (0 in gpu-only mode)
    fingerprint: str  # what a checkpoint of this run must match ("" when the output cannot be resumed)
    checkpoint: Checkpoint | None  # the one this run resumes

    @property
    def io(self) -> RunIO:
        return self.run.io

    @property
    def spec(self) -> ModelSpec:
        return self.run.spec

    def clocks(self) -> dict[str, StageClock]:
        """A fresh clock per stage, billed as the mode runs it."""
        billing = "cpu" if self.mixed else "gpu"
        return {
            "read": StageClock("read", billing, "cpu"),
            "preprocess": StageClock("preprocess", billing, "cpu", workers=max(self.workers, 1)),
            "inference": StageClock("inference", "gpu", str(self.device)),
            "postprocess": StageClock("postprocess", billing, "cpu"),
            "write": StageClock("write", billing, "cpu"),
        }


def plan_local(run: RunPlan) -> LocalPlan:
    # torch is imported by the model load, and only on the torch backend (or by asking torch which device `auto`
    # means where an accelerator driver is present): nothing here loads it otherwise.
    from mixedclf.models.backend import resolve_backend
    from mixedclf.models.device import resolve_device

    o, io = run.opts, run.io
    backend = resolve_backend(o.precision, o.backend, run.spec)
    device = resolve_device(o.device, backend)
    batch = run.batch.limits(device.type)
    fingerprint = run_fingerprint_of(run, batch) if io.resumable else ""
    checkpoint = load_checkpoint(o, fingerprint) if io.resumable else None
    mixed = o.mode == "mixed"
    workers = (o.cpu_workers or default_cpu_workers(device.type)) if mixed else 0
    return LocalPlan(run, backend, device, batch, mixed, workers, fingerprint, checkpoint)


def run_fingerprint_of(run: RunPlan, batch: tuple[int, int]) -> str:
    opts, io, sizes = run.opts, run.io, run.chunks
    settings = {k: getattr(opts, k) for k in OUTPUT_SHAPING}
    # the chunk boundaries: a resumed run must cut the input the same way
    settings.update(chunk_rows=sizes.most, first_chunk_rows=sizes.first, chunk_schedule=sizes.SCHEDULE,
                    input_format=io.in_fmt, output_format=io.out_fmt, model=str(run.spec.path), batch_size=batch[0],
                    max_batch_tokens=batch[1])
    source = io.source
    (only,) = source.files if len(source.files) == 1 else (None,)
    if not source.many and only is not None and only.local is not None and only.compression is None:
        return run_fingerprint(only.local, settings)
    # Several files, a compressed or a remote one: each named with its size and modification time.
    return source.fingerprint({**settings, "rows_per_file": opts.rows_per_file, "output_layout": io.out_kind})


def load_checkpoint(opts, fingerprint: str) -> Checkpoint | None:
    """The checkpoint --resume continues (checked against this run and the files it counts on); without
    --resume any old one is removed."""
    output = opts.output
    if not opts.resume:
        remove_checkpoint(output)
        return None
    checkpoint = Checkpoint.load(output)
    if checkpoint is None:
        return None
    if checkpoint.fingerprint != fingerprint:
        raise InputError(f"{checkpoint_path(output)} was made for another input file or other options",
                         hint="rerun with the same input and options, or without --resume")
    verify_resumable(checkpoint, output)
    return checkpoint
