"""A classify run resolved once, before any engine starts: the input and output (their files, formats and kinds,
checked), the model, the chunk sizes, the micro-batch request and the engine. Every engine receives this plan
(engines/registry.py) instead of resolving the options again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from mixedclf.core.batching import ChunkSizes, batch_limits
from mixedclf.core.columns import check_option_names
from mixedclf.core.options import ClassifyOptions, chunk_sizes_for
from mixedclf.engines.progress import RowTotal, source_rows
from mixedclf.io.runio import RunIO, check_apart, resolve_io
from mixedclf.io.sinks import output_kind
from mixedclf.io.writers import check_writable, resolve_output
from mixedclf.models.spec import ModelSpec, resolve_model


@dataclass(frozen=True)
class BatchRequest:
    """The micro-batch caps asked for (None: the device's own). The device that decides the defaults is known
    only where the model runs (this process, or a cluster's actors), so the plan keeps the request and each
    engine turns it into limits once, for the device it resolved."""

    batch_size: int | None
    max_batch_tokens: int | None

    def limits(self, device_type: str) -> tuple[int, int]:
        """(rows, padded tokens) per micro-batch on this device type."""
        return batch_limits(device_type, self.batch_size, self.max_batch_tokens)


@dataclass(frozen=True)
class RunPlan:
    opts: ClassifyOptions  # the options the plan was resolved from (with the output path resolved)
    engine: str  # the registry's name for the engine that runs it
    io: RunIO  # input source and format, output target, kind and format, rows per part
    spec: ModelSpec  # the model
    chunks: ChunkSizes  # rows per chunk, by chunk index
    batch: BatchRequest  # micro-batch caps asked for

    @cached_property
    def input_rows(self) -> RowTotal:
        """The rows the input is expected to hold (the progress bar's total, --max-cost's projection)."""
        return source_rows(self.io.source)


def plan_classify(opts: ClassifyOptions, warn: Callable[[str], None] | None = None) -> RunPlan:
    """Every resolution and check that needs no model load and no engine: a run that cannot start fails here.
    Nothing here writes: the output's lock is taken after it (the input is checked apart from the lock file
    first, which taking the lock would truncate). warn: told each line about the input that does not stop the
    run (links passed over), as soon as the input is resolved."""
    kind = output_kind(opts.output, opts.rows_per_file)
    if kind != "stdout":  # stdout is written through, never renamed over
        opts = opts.model_copy(update={"output": resolve_output(opts.output)})
        if kind == "file":  # a folder is checked with the input, below
            check_writable(opts.output)
    source = check_apart(opts)
    if warn is not None:
        for line in source.warnings:
            warn(line)
    io = resolve_io(opts, source=source)
    spec = resolve_model(opts.model)
    check_option_names(opts.id_field, opts.text_field, opts.keep_text, spec.labels, opts.all_scores,
                       opts.output_prefix)
    return RunPlan(opts=opts, engine=opts.engine, io=io, spec=spec, chunks=chunk_sizes_for(opts),
                   batch=BatchRequest(opts.batch_size, opts.max_batch_tokens))
