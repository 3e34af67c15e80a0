"""Worker processes never outlive the run that started them, and a row that kills its worker is set aside."""

import json
import subprocess
import sys
import threading
import time

import psutil
import pytest
from conftest import classify_process
from datagen import write_jsonl

from mixedclf.io.checkpoint import checkpoint_path

pytestmark = pytest.mark.slow  # real classify processes and orphaned children


@pytest.fixture(scope="module")
def long_input(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("long") / "long.jsonl", 20000, seed=2)


def test_workers_exit_when_the_main_process_is_killed(tmp_path, tiny_model, long_input):
    out = tmp_path / "o.jsonl"
    log = open(tmp_path / "log.txt", "w")
    # output to a file, not a pipe: a worker that outlived the run would hold a pipe open and hang the test
    proc = classify_process(long_input, "-o", out, "--model", tiny_model, "--chunk-rows", "200", "--cpu-workers", "2",
                            "-q", wait=False, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not checkpoint_path(out).exists():  # mid-run: chunks are flowing through the workers
            assert proc.poll() is None, (tmp_path / "log.txt").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        descendants = psutil.Process(proc.pid).children(recursive=True)
        assert len(descendants) >= 2
    finally:
        proc.kill()  # SIGKILL: no handler, no cleanup, as the OOM killer does it
        proc.wait()
        log.close()
    _gone, alive = psutil.wait_procs(descendants, timeout=5)
    for p in alive:
        p.kill()
    assert not alive, [(p.pid, p.cmdline()) for p in alive if p.is_running()]


def test_a_pool_started_by_a_thread_that_ends_keeps_its_workers(tiny_model):
    """The kernel's parent-death signal fires when the starting *thread* ends: that must not end the workers."""
    from mixedclf.models.spec import resolve_model
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id
    from mixedclf.runtime.pool import start_worker_pool
    from mixedclf.runtime.workers import preprocess_task

    spec = resolve_model(str(tiny_model))
    box = {}

    def start() -> None:
        box["pool"], box["ready"] = start_worker_pool(2, tokenizer_json_and_pad_id(spec)[0], spec.max_length, "standard")
        box["pids"] = [f.result(timeout=60) for f in box["ready"]]

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    pool = box["pool"]
    try:
        time.sleep(0.5)  # the signal, had it been fatal, has landed by now
        assert all(psutil.pid_exists(pid) for pid in box["pids"])
        seqs, *_ = pool.submit(preprocess_task, ["good food"]).result(timeout=60)
        assert seqs.batch.cleaned == ["good food"]
    finally:
        pool.shutdown()


_ORPHAN = """
import os, subprocess, sys
grandchild = subprocess.Popen([sys.executable, "-c", '''
import os, sys, time
from mixedclf.engines import parent_watch
parent = int(sys.argv[1])
time.sleep(0.5)  # the parent is gone by now: exit_with_parent must notice at once, not wait for a signal
getattr(parent_watch, sys.argv[2])(parent)
time.sleep(60)
''', str(os.getpid()), sys.argv[1]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(grandchild.pid, flush=True)
"""


@pytest.mark.parametrize("how", ["exit_with_parent", "_watch"])  # the Linux signal path, and the portable watchdog
def test_a_child_whose_parent_already_died_exits(how):
    middle = subprocess.run([sys.executable, "-c", _ORPHAN, how], capture_output=True, text=True, timeout=60)
    orphan = psutil.Process(int(middle.stdout.strip()))
    try:
        orphan.wait(timeout=10)
    except psutil.TimeoutExpired:
        orphan.kill()
        pytest.fail(f"{how}: a worker whose parent died was still running 10 s later")


def test_a_row_that_kills_its_worker_every_time_is_set_aside(tmp_path, tiny_model):
    from conftest import write_jsonl as write_rows

    from mixedclf.engines.poison import WORKER_DIED

    poison = "this text kills the worker"
    rows = [{"id": f"r{i}", "text": f"good food number {i}", "n": i} for i in range(60)]
    rows[21]["text"] = poison  # in the second chunk: the first is preprocessed partly in the main process
    inp = write_rows(tmp_path / "in.jsonl", rows)
    out, report = tmp_path / "out.jsonl", tmp_path / "report.json"
    with open(tmp_path / "log.txt", "w") as log:
        proc = classify_process(inp, "-o", out, "--model", tiny_model, "--chunk-rows", "16", "--cpu-workers", "1",
                                "--report", report, "-q", wait=False, stdout=log, stderr=subprocess.STDOUT,
                                env={"MIXEDCLF_TEST_KILL_ON_TEXT": poison})
        try:
            code = proc.wait(timeout=240)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("the run never ended: the pool was restarted on the same chunk again and again")
    assert code == 3, (tmp_path / "log.txt").read_text()
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["n"]) for r in written] == [(f"r{i}", i) for i in range(60) if i != 21]
    errors = [json.loads(line) for line in (tmp_path / "out.jsonl.errors.jsonl").read_text().splitlines()]
    assert errors == [{"row": 21, "line": None, "id": "r21", "reason": WORKER_DIED}]
    summary = json.loads(report.read_text())
    assert (summary["rows_in"], summary["rows_out"], summary["rows_errored"]) == (60, 59, 1)
    assert summary["extra"]["pool_restarts"] >= 2


def test_halving_finds_every_row_that_kills_a_worker():
    """isolate() with a stand-in pool: any piece holding a bad row 'kills its worker'."""
    from concurrent.futures.process import BrokenProcessPool

    from mixedclf.engines.poison import isolate

    texts = [f"t{i}" for i in range(37)]
    bad = {0, 17, 18, 36}
    pieces, restarts = [], []

    def run_piece(piece):
        if bad & {int(t[1:]) for t in piece}:
            raise BrokenProcessPool("a worker died")
        pieces.append(piece)
        return piece

    results, poison = isolate(texts, run_piece, lambda: restarts.append(1))
    assert poison == sorted(bad)
    assert [t for piece in results for t in piece] == [t for i, t in enumerate(texts) if i not in bad]  # in order
    assert len(restarts) < 4 * 6 + 1  # a few per bad row (log2 of the chunk), not one per row


def test_set_aside_keeps_rows_and_problems_in_file_order():
    import pyarrow as pa

    from mixedclf.engines.poison import WORKER_DIED, set_aside
    from mixedclf.io.readers import InputChunk, RowProblem

    # rows 10..15 of a file: row 12 was already a problem, so the valid rows are 10, 11, 13, 14, 15
    chunk = InputChunk(index=2, first_row=10, rows_in=6, texts=["a", "b", "d", "e", "f"],
                       passthrough=pa.table({"id": ["x10", "x11", "x13", "x14", "x15"], "n": [10, 11, 13, 14, 15]}),
                       problems=[RowProblem(12, 13, "x12", "text is null")])
    kept = set_aside(chunk, [1, 3], "id")  # "b" (row 11) and "e" (row 14)
    assert kept.texts == ["a", "d", "f"] and kept.passthrough.column("n").to_pylist() == [10, 13, 15]
    assert [(p.row, p.id, p.reason) for p in kept.problems] == [
        (11, "x11", WORKER_DIED), (12, "x12", "text is null"), (14, "x14", WORKER_DIED)]
    assert kept.rows_in == 6 and set_aside(chunk, [], "id") is chunk
