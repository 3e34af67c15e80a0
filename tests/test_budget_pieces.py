"""classify --max-cost near the budget: the chunk that would pass it runs in pieces, so a stop lands within about one
micro-batch's cost of the budget, and --resume continues from inside that chunk without losing or repeating a row."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pytest
from datagen import write_jsonl

from mixedclf.core.preprocess import PreprocessedBatch
from mixedclf.core.sequences import Sequences, concat_sequences, slice_rows
from mixedclf.costs.budget import BillSnapshot, bill, next_piece, rows_within_budget
from mixedclf.costs.pricing import load_pricing
from mixedclf.errors import EXIT_BUDGET, Interrupted
from mixedclf.io.checkpoint import Checkpoint, checkpoint_path
from mixedclf.io.chunks import InputChunk, RowProblem, chunk_piece, valid_range

REFERENCE = load_pricing(None, "reference")  # GPU worker $0.0015/s
PRICE = dict(idle_timeout_s=0.0, gpu_speedup=None)


def _chunk() -> InputChunk:
    """Rows 100..109 of an input, rows 102, 103 and 107 of them problems."""
    valid = [100, 101, 104, 105, 106, 108, 109]
    problems = [RowProblem(r, r + 1, f"p{r}", "text is null") for r in (102, 103, 107)]
    return InputChunk(index=4, first_row=100, rows_in=10, texts=[f"t{r}" for r in valid],
                      passthrough=pa.table({"id": pa.array(valid)}), problems=problems)


def test_pieces_of_a_chunk_hold_its_rows_once_in_order():
    chunk = _chunk()
    cuts = [0, 2, 3, 7, 10]
    pieces = [chunk_piece(chunk, a, b) for a, b in zip(cuts, cuts[1:], strict=False)]
    assert [p.texts for p in pieces] == [["t100", "t101"], [], ["t104", "t105", "t106"], ["t108", "t109"]]
    assert sum((p.texts for p in pieces), []) == chunk.texts
    assert [r for p in pieces for r in p.passthrough.column("id").to_pylist()] == [100, 101, 104, 105, 106, 108, 109]
    assert [[q.row for q in p.problems] for p in pieces] == [[], [102], [103], [107]]
    assert [(p.first_row, p.rows_in, p.offset, p.ends_chunk) for p in pieces] == [
        (100, 2, 0, False), (102, 1, 2, False), (103, 4, 3, False), (107, 3, 7, True)]
    assert all(p.index == 4 for p in pieces)
    # a piece of a piece counts its offset from the chunk's first row (what the checkpoint records)
    rest = chunk_piece(chunk, 3, 10)
    assert chunk_piece(rest, 4, 7).offset == 7 and chunk_piece(rest, 4, 7).ends_chunk
    assert valid_range(chunk, 3, 7) == (2, 5) and chunk_piece(chunk, 0, 10) is chunk


def test_slice_rows_keeps_each_rows_sequences():
    def batch(lengths):
        ids = np.arange(sum(lengths), dtype=np.int32)
        n = len(lengths)
        return PreprocessedBatch([f"c{i}" for i in range(n)], ids, np.array(lengths, np.int32), np.zeros(n, bool),
                                 np.ones(n, np.int32), np.ones(n, np.int32), np.arange(n, dtype=np.int32))

    plain = Sequences(batch([2, 3, 1, 4]))
    part = slice_rows(plain, 1, 3)
    assert part.batch.cleaned == ["c1", "c2"] and part.batch.token_ids.tolist() == [2, 3, 4, 5]
    # rows of several sequences (long texts as windows): row 1 has three
    windows = Sequences(batch([2, 3, 1, 4, 2, 2]), np.array([0, 1, 1, 1, 2, 3]))
    middle = slice_rows(windows, 1, 3)
    assert len(middle) == 2 and middle.row_of_sequence.tolist() == [0, 0, 0, 1]
    assert middle.batch.token_ids.tolist() == list(range(2, 12))
    pieces = [slice_rows(windows, 0, 1), middle, slice_rows(windows, 3, 4)]
    whole = concat_sequences(pieces)
    assert whole.row_of_sequence.tolist() == windows.row_of_sequence.tolist()
    assert whole.batch.token_ids.tolist() == windows.batch.token_ids.tolist()


def _snapshot(rows: int, per_row_s: float = 0.05) -> BillSnapshot:
    classify = rows * per_row_s
    return BillSnapshot(mode="gpu-only", device="cuda:0", rows=rows, process_s=2.0 + classify, startup_s=1.0,
                        load_s=1.0, inference_busy_s=classify, classify_s=classify)


def test_rows_within_budget_is_the_most_rows_the_bill_allows():
    # gpu-only: one GPU worker from process start, 2 s to load + 5 s for 100 rows, billed ceil(7 + more / 20) s
    snap = _snapshot(100)
    assert bill(snap, REFERENCE, **PRICE) == pytest.approx(7 * 0.0015)
    # $0.015 is 10 s: 3 s more, 60 rows; 61 would round up to 11 s
    assert rows_within_budget(snap, REFERENCE, max_cost=0.015, spent_before=0.0, max_rows=10_000, **PRICE) == 60
    # what earlier processes spent counts: with $0.006 of it the job is already past $0.015
    assert rows_within_budget(snap, REFERENCE, max_cost=0.015, spent_before=0.006, max_rows=10_000, **PRICE) == 0
    assert rows_within_budget(snap, REFERENCE, max_cost=0.015, spent_before=0.0, max_rows=50, **PRICE) == 50
    assert rows_within_budget(_snapshot(0), REFERENCE, max_cost=1.0, spent_before=0.0, max_rows=9, **PRICE) == 0


def test_next_piece_halves_the_rows_the_budget_covers_down_to_one_micro_batch():
    assert next_piece(fit=5000, rows_left=3000, min_rows=64) == 3000  # the rest fits: no piece
    assert next_piece(fit=1000, rows_left=3000, min_rows=64) == 500
    assert next_piece(fit=100, rows_left=3000, min_rows=64) == 64
    assert next_piece(fit=63, rows_left=3000, min_rows=64) == 0  # less than a micro-batch: stop


# ---- the engine, on a virtual clock

LOAD_S, PER_ROW_S, BATCH = 2.0, 0.05, 64
ROWS, FIRST = 2000, 100  # the first chunk 5% of the input, the second (16,384 rows by default) the rest


def _virtual_meter_class():
    from mixedclf.engines.budget import CostMeter

    class VirtualMeter(CostMeter):
        """The real meter (checks, pieces, in-chunk stops, the checkpoint's spend) read off a virtual clock:
        LOAD_S to start and load, then PER_ROW_S per row the device runs. Each run's bill is then a function of
        its rows alone, so where a stop lands does not depend on this machine's speed or load."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.computed = 0

        def batch_done(self, rows: int) -> None:
            self.computed += rows
            super().batch_done(rows)

        def snapshot(self) -> BillSnapshot | None:
            if self._run is None:
                return None
            classify = self.computed * PER_ROW_S
            return BillSnapshot(mode="gpu-only", device="cpu", rows=self._run["inference"].items,
                                process_s=LOAD_S + classify, startup_s=1.0, load_s=LOAD_S - 1.0,
                                inference_busy_s=classify, classify_s=classify)

    return VirtualMeter


def _virtual_bill(rows: int) -> float:
    """A gpu-only process's bill on the virtual clock: its one worker from process start, rounded up to the
    second."""
    import math

    return math.ceil(LOAD_S + rows * PER_ROW_S) * 0.0015


@pytest.fixture
def virtual_clock(monkeypatch):
    import mixedclf.engines.budget as budget

    monkeypatch.setattr(budget, "CostMeter", _virtual_meter_class())


def _classify(tmp_path, source, out, tiny_model, **over):
    from mixedclf.core.options import ClassifyOptions
    from mixedclf.engines.run import classify_file

    opts = ClassifyOptions(input=source, output=out, model=str(tiny_model), device="cpu", mode="gpu-only",
                           first_chunk_rows=FIRST, batch_size=BATCH, no_cache=True, idle_timeout=0.0, **over)
    return classify_file(opts)


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_half_the_budget_runs_about_half_the_rows_and_every_resume_is_exact(tmp_path, tiny_model, virtual_clock,
                                                                            monkeypatch):
    """2,000 rows in chunks of 100 (5%) and 1,900 (the default 16,384 cut by the input's end): half the job's
    budget used to stop after the first chunk. Now the second runs in pieces until the budget covers less than a
    micro-batch, each piece written and checkpointed; a resume from any of those checkpoints (an interrupt inside
    the shrunk tail) finishes the job with every row once, as an uninterrupted run writes it."""
    source = write_jsonl(tmp_path / "in.jsonl", ROWS, seed=11)
    whole = tmp_path / "whole.jsonl"
    _classify(tmp_path, source, whole, tiny_model)
    budget = _virtual_bill(ROWS) / 2

    # every checkpoint the stopped run writes, kept aside: the states an interrupt could leave
    from mixedclf.engines.durable import DurableOutput

    out = tmp_path / "run" / "out.jsonl"
    out.parent.mkdir()
    states = []
    save = DurableOutput.save_checkpoint

    def keep(self, *args, **kwargs):
        save(self, *args, **kwargs)
        state = tmp_path / "states" / str(len(states))
        shutil.copytree(out.parent, state)
        states.append(state)

    monkeypatch.setattr(DurableOutput, "save_checkpoint", keep)
    with pytest.raises(Interrupted) as stop:
        _classify(tmp_path, source, out, tiny_model, max_cost=budget, report=tmp_path / "stop.json")
    monkeypatch.setattr(DurableOutput, "save_checkpoint", save)
    assert stop.value.exit_code == EXIT_BUDGET == 4
    checkpoint = Checkpoint.load(out)
    rows_done = checkpoint.rows_in
    # the stop lands within one micro-batch's cost (and the bill's rounding to the second) of the budget
    micro_batch = BATCH * PER_ROW_S * 0.0015
    assert checkpoint.spent_usd <= budget
    assert budget - checkpoint.spent_usd <= micro_batch + 0.0015
    assert 0.4 * ROWS < rows_done < 0.5 * ROWS  # about half the job, not the first chunk's 5%
    # the second chunk was cut in pieces, several of them written: the checkpoint is inside it
    assert checkpoint.chunks_done == 1 and 0 < checkpoint.chunk_rows_done < ROWS - FIRST
    assert rows_done == FIRST + checkpoint.chunk_rows_done
    assert len(states) >= 3
    # the partial report carries the job so far
    from mixedclf.costs.report import load_report

    report = load_report(tmp_path / "stop.json")
    assert report.partial and report.rows_in == rows_done and "stopped at the cost budget" in report.stopped

    # resume with the same budget: what is left is less than a process spends to its first micro-batch (the
    # checkpoint keeps the last one's), so it stops before the model loads, spending nothing more
    assert checkpoint.probe_usd == pytest.approx(_virtual_bill(BATCH))
    with pytest.raises(Interrupted) as again:
        _classify(tmp_path, source, out, tiny_model, max_cost=budget, resume=True)
    assert again.value.exit_code == EXIT_BUDGET and "less than the $" in str(again.value)
    assert Checkpoint.load(out) == checkpoint
    # with a little more budget (a probe's bill and less than a second more) the resumed process runs its probe
    # and stops there: past the budget by at most one probe's bill, its micro-batch not written
    more = checkpoint.spent_usd + checkpoint.probe_usd + 0.001
    with pytest.raises(Interrupted) as probed:
        _classify(tmp_path, source, out, tiny_model, max_cost=more, resume=True)
    assert probed.value.exit_code == EXIT_BUDGET
    after = Checkpoint.load(out)
    assert checkpoint.spent_usd < after.spent_usd <= more + _virtual_bill(BATCH)
    assert after.rows_in == rows_done and after.runs == 2

    # a resume from the first piece's checkpoint, one in the shrunk tail and the stop's own finishes the job
    # exactly (a kill between two checkpoints leaves the earlier one: the writer resumes at its bytes)
    expected = _rows(whole)
    for state in (states[1], states[len(states) // 2 + 1], states[-1]):
        shutil.rmtree(out.parent)
        shutil.copytree(state, out.parent)
        kept = Checkpoint.load(out)
        _classify(tmp_path, source, out, tiny_model, resume=True)
        assert not checkpoint_path(out).exists()
        got = _rows(out)
        assert [r["id"] for r in got] == [r["id"] for r in expected], (kept.chunks_done, kept.chunk_rows_done)
        # the rows a piece ran sorted by length among fewer rows: the same labels and counts, the same score up
        # to float rounding of another micro-batch shape
        assert [{k: v for k, v in r.items() if k != "score"} for r in got] == [
            {k: v for k, v in r.items() if k != "score"} for r in expected]
        assert np.allclose([r["score"] for r in got], [r["score"] for r in expected], rtol=0, atol=1e-6)
