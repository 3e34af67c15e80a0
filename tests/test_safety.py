"""Issue 12: nothing lost, nothing rewritten. --resume continues only what is exactly as its checkpoint left it,
no ordering of kills lets a stale checkpoint shorten a finished output, two runs never share one output, outputs
that are not regular files are refused, a full disk is one line, and no traceback reaches a user."""

import errno
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datagen import write_jsonl
from typer.testing import CliRunner

from mixedclf.cli.app import app
from mixedclf.engines.durable import DurableOutput
from mixedclf.engines.local import LocalEngine
from mixedclf.io import writers
from mixedclf.io.checkpoint import checkpoint_path

runner = CliRunner()
ROWS, CHUNK = 400, 50


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """ROWS good rows and a few bad ones (so the errors log has something to lose too)."""
    path = write_jsonl(tmp_path_factory.mktemp("src") / "in.jsonl", ROWS, seed=3)
    with open(path, "a", encoding="utf-8") as f:
        f.write("{not json\n" + '{"id": "empty", "text": ""}\n')
    return path


def classify(source, out, model, *extra):
    args = ["classify", str(source), "-o", str(out), "--model", str(model), "--mode", "gpu-only",
            "--chunk-rows", str(CHUNK), "-q", *map(str, extra)]
    return runner.invoke(app, args)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, source, tiny_model):
    """An uninterrupted run: what every resumed run must reproduce byte for byte."""
    out = tmp_path_factory.mktemp("ref") / "out.jsonl"
    result = classify(source, out, tiny_model)
    assert result.exit_code == 3, result.output
    return out.read_bytes(), Path(str(out) + ".errors.jsonl").read_bytes()


def _engine_signals(monkeypatch) -> list:
    """The StopSignals of each LocalEngine made from here on (where a test plays a Ctrl-C)."""
    made = []
    real_init = LocalEngine.__init__
    monkeypatch.setattr(LocalEngine, "__init__",
                        lambda self, *a, **k: (real_init(self, *a, **k), made.append(self.signals))[0])
    return made


def _interrupt_after(monkeypatch, chunks: int) -> None:
    """The run stops as after a SIGINT once `chunks` chunks are written and checkpointed."""
    signals = _engine_signals(monkeypatch)
    real = DurableOutput.save_checkpoint

    def save_then_stop(self, tally, counts, committed=False):
        real(self, tally, counts, committed)
        if counts.chunks_done >= chunks:
            signals[-1].signum = signal.SIGINT

    monkeypatch.setattr(DurableOutput, "save_checkpoint", save_then_stop)


def _interrupted_run(monkeypatch, source, out, model, fmt_extra=()):
    with monkeypatch.context() as m:
        _interrupt_after(m, 2)
        result = classify(source, out, model, *fmt_extra)
    assert result.exit_code == 130, result.output
    assert checkpoint_path(out).exists()
    return result


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- 1. --resume verifies what it resumes ---------------------------------------------------------------------

def _delete_partial(out):
    writers.temp_path_for(out).unlink()


def _cut_partial(out):
    partial = writers.temp_path_for(out)
    partial.write_bytes(partial.read_bytes()[:-40])


def _rewrite_partial(out):
    partial = writers.temp_path_for(out)
    data = bytearray(partial.read_bytes())
    data[10] = ord("X") if data[10] != ord("X") else ord("Y")
    partial.write_bytes(bytes(data))


def _delete_errors_partial(out):
    writers.temp_path_for(writers.errors_path_for(out)).unlink()


@pytest.mark.parametrize("tamper", [_delete_partial, _cut_partial, _rewrite_partial, _delete_errors_partial])
def test_resume_refuses_a_partial_output_that_is_not_as_checkpointed(tmp_path, monkeypatch, source, tiny_model,
                                                                     tamper):
    out = tmp_path / "out.jsonl"
    source = Path(source)
    bad_first = tmp_path / "in.jsonl"  # bad rows first, so the errors log is written by the first chunks
    bad_first.write_text("{oops\n" + source.read_text(encoding="utf-8"), encoding="utf-8")
    _interrupted_run(monkeypatch, bad_first, out, tiny_model)
    tamper(out)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    result = classify(bad_first, out, tiny_model, "--resume")
    assert result.exit_code == 2, result.output
    assert "cannot resume" in result.output and "rerun without --resume" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before  # touched nothing


def test_resume_refuses_a_missing_parquet_part(tmp_path, monkeypatch, source, tiny_model):
    out = tmp_path / "out.parquet"
    _interrupted_run(monkeypatch, source, out, tiny_model)
    parts = sorted(writers.parts_dir_for(out).glob("part-*.parquet"))
    assert len(parts) >= 2
    parts[0].unlink()
    result = classify(source, out, tiny_model, "--resume")
    assert result.exit_code == 2 and "cannot resume" in result.output and parts[0].stem in result.output


@pytest.mark.parametrize("content, message", [("{not json", "corrupt"), ('{"version": 1}', "checkpoint format 1"),
                                              ('{"version": 2, "chunks_done": "x"}', "corrupt")])
def test_a_corrupt_or_foreign_checkpoint_says_so(tmp_path, monkeypatch, source, tiny_model, content, message):
    out = tmp_path / "out.jsonl"
    _interrupted_run(monkeypatch, source, out, tiny_model)
    checkpoint_path(out).write_text(content)
    result = classify(source, out, tiny_model, "--resume")
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert checkpoint_path(out).read_text() == content and not out.exists()


def test_resume_catches_a_same_size_edit_of_the_input(tmp_path, monkeypatch, source, tiny_model):
    copy = tmp_path / "in.jsonl"
    data = Path(source).read_bytes()
    copy.write_bytes(data)
    out = tmp_path / "out.jsonl"
    _interrupted_run(monkeypatch, copy, out, tiny_model)
    at = data.index(b'"text": "') + len(b'"text": "')
    edited = data[:at] + (b"A" if data[at:at + 1] != b"A" else b"B") + data[at + 1:]
    times = copy.stat()
    copy.write_bytes(edited)
    os.utime(copy, ns=(times.st_atime_ns, times.st_mtime_ns))  # same size, same mtime: only the bytes differ
    result = classify(copy, out, tiny_model, "--resume")
    assert result.exit_code == 2 and "another input file" in result.output, result.output


def test_resume_refuses_when_auto_resolves_to_another_precision(tmp_path, monkeypatch, source, tiny_model,
                                                                 reference):
    """`--precision auto` is the same option on two machines but not the same arithmetic: the rows of one output
    are computed one way (the CPU's bf16 support is what is mocked here, both ways)."""
    from mixedclf.models import loading
    from mixedclf.models.precision import PrecisionChoice

    def cpu_decides(name):
        def choose(module, device, precision, model_key, cache_dir):
            return PrecisionChoice(name, f"{name}: mocked CPU"), None
        return choose

    out = tmp_path / "out.jsonl"
    monkeypatch.setattr(loading, "choose_for_module", cpu_decides("fp32"))
    _interrupted_run(monkeypatch, source, out, tiny_model)
    partial = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert json.loads(checkpoint_path(out).read_text())["model_run"] == "torch fp32 on cpu"

    monkeypatch.setattr(loading, "choose_for_module", cpu_decides("bf16"))
    result = classify(source, out, tiny_model, "--resume")
    assert result.exit_code == 2 and "torch fp32 on cpu" in result.output and "torch bf16 on cpu" in result.output
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == partial  # nothing written, nothing removed

    monkeypatch.setattr(loading, "choose_for_module", cpu_decides("fp32"))
    assert classify(source, out, tiny_model, "--resume").exit_code == 3
    assert out.read_bytes() == reference[0]


def test_a_stale_checkpoint_never_shortens_a_finished_output(tmp_path, monkeypatch, source, tiny_model, reference):
    out = tmp_path / "out.jsonl"
    _interrupted_run(monkeypatch, source, out, tiny_model)
    stale = checkpoint_path(out).read_bytes()
    assert classify(source, out, tiny_model, "--resume").exit_code == 3
    assert out.read_bytes() == reference[0]
    checkpoint_path(out).write_bytes(stale)  # as if the run had died after the rename, before the removal
    result = classify(source, out, tiny_model, "--resume")
    assert result.exit_code == 2 and "rerun without --resume" in result.output
    assert out.read_bytes() == reference[0]


class _Killed(KeyboardInterrupt):
    """A second Ctrl-C landing at one exact point of the commit."""


@pytest.mark.parametrize("point", ["before committed checkpoint", "before renames", "between renames",
                                   "before checkpoint removal"])
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_kill_anywhere_in_the_commit_resumes_to_the_whole_output(tmp_path, monkeypatch, source, tiny_model,
                                                                   reference, point, fmt):
    def stop():
        engine_signals[0].signum = signal.SIGINT
        raise _Killed

    engine_signals = _engine_signals(monkeypatch)
    with monkeypatch.context() as m:
        if point == "before committed checkpoint":
            real = DurableOutput.save_checkpoint
            m.setattr(DurableOutput, "save_checkpoint",
                      lambda self, *a, committed=False: stop() if committed else real(self, *a))
        elif point == "before renames":
            m.setattr(writers.ErrorLog, "commit", lambda self: stop())
        elif point == "between renames":
            m.setattr(writers.ChunkWriter, "commit", lambda self: stop())
        else:
            real_commit = writers.ChunkWriter.commit
            m.setattr(writers.ChunkWriter, "commit", lambda self: (real_commit(self), stop()))
        out = tmp_path / f"out.{fmt}"
        first = classify(source, out, tiny_model)
    assert first.exit_code == 130, first.output
    resumed = classify(source, out, tiny_model, "--resume")
    assert resumed.exit_code == 3, resumed.output
    assert _hidden(tmp_path) == []
    assert Path(str(out) + ".errors.jsonl").read_bytes() == reference[1]
    if fmt == "jsonl":
        assert out.read_bytes() == reference[0]
    else:
        import pyarrow.parquet as pq

        ids = pq.read_table(out).column("id").to_pylist()
        assert ids == [json.loads(line)["id"] for line in reference[0].splitlines()]


# --- 5. outputs that are not regular files ----------------------------------------------------------------------

def test_a_fifo_or_a_link_to_one_is_refused_and_left_alone(tmp_path, source, tiny_model):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    link = tmp_path / "link.jsonl"
    link.symlink_to(fifo)
    dangling = tmp_path / "dangling.jsonl"
    dangling.symlink_to(tmp_path / "nowhere" / "x.jsonl")
    for out, words in ((fifo, "is a FIFO"), (link, "is a FIFO (named pipe) (a symlink to"), (dangling, "to nothing")):
        result = classify(source, out, tiny_model)
        assert result.exit_code == 2, result.output
        assert words in result.output and len(result.output.strip().splitlines()) == 1
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink() and dangling.is_symlink()
    assert _hidden(tmp_path) == []


def test_an_errors_path_that_is_not_a_regular_file_is_refused(tmp_path, source, tiny_model):
    out = tmp_path / "out.jsonl"
    os.mkfifo(str(out) + ".errors.jsonl")
    result = classify(source, out, tiny_model)
    assert result.exit_code == 2 and "errors.jsonl: is a FIFO" in result.output, result.output
    assert not out.exists()


def test_a_symlink_to_a_regular_file_is_written_at_its_target(tmp_path, source, tiny_model, reference):
    target = tmp_path / "runs" / "today.jsonl"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(target)
    assert classify(source, link, tiny_model).exit_code == 3
    assert link.is_symlink() and target.read_bytes() == reference[0]
    assert Path(str(target) + ".errors.jsonl").read_bytes() == reference[1]


def _start(args, **kw):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "mixedclf", "classify", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_stdout_as_output_is_refused_not_renamed_over(tmp_path, source, tiny_model):
    # /dev/stdout is a symlink to /proc/self/fd/1; this link is the same thing without touching /dev.
    link = tmp_path / "stdout.jsonl"
    link.symlink_to("/proc/self/fd/1")
    proc = _start([source, "-o", link, "--model", tiny_model])
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr
    assert "is a FIFO" in stderr and stdout == "" and "Traceback" not in stderr
    assert link.is_symlink()


# --- 6. one run per output ------------------------------------------------------------------------------------

def _snapshot(folder: Path) -> dict:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


def _wait_stopped(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] not in ("T", "t"):
        assert time.monotonic() < deadline, "the run did not stop"
        time.sleep(0.01)


@pytest.mark.slow
def test_a_second_run_on_the_same_output_exits_2_and_touches_nothing(tmp_path, tiny_model):
    a_in = write_jsonl(tmp_path / "a.jsonl", 3000, seed=1)
    b_in = write_jsonl(tmp_path / "b.jsonl", 300, seed=2)
    folder = tmp_path / "outs"
    folder.mkdir()
    out = folder / "out.jsonl"
    a = _start([a_in, "-o", out, "--model", tiny_model, "--mode", "gpu-only", "--chunk-rows", "100", "-q"])
    try:
        start = time.monotonic()
        while not checkpoint_path(out).exists():
            assert a.poll() is None, a.communicate()
            assert time.monotonic() - start < 120
            time.sleep(0.01)
        a.send_signal(signal.SIGSTOP)  # A holds the lock, its partial output and its checkpoint
        _wait_stopped(a.pid)  # the signal is asynchronous: A may still write for a moment
        before = _snapshot(folder)
        b = _start([b_in, "-o", out, "--model", tiny_model, "--mode", "gpu-only", "-q"])
        _, b_err = b.communicate(timeout=120)
        assert b.returncode == 2, b_err
        assert "another mixedclf run" in b_err and f"pid {a.pid}" in b_err and "Traceback" not in b_err
        assert _snapshot(folder) == before
    finally:
        a.send_signal(signal.SIGCONT)
    assert a.wait(timeout=300) == 0, a.stderr.read()
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == list(range(3000))
    assert _hidden(folder) == []  # lock, partial and checkpoint all gone


# --- 4. a full disk --------------------------------------------------------------------------------------------

def _tmpfs(folder: Path, size: str) -> str | None:
    """Mount a small tmpfs at folder; the reason it cannot be done otherwise."""
    if os.geteuid() != 0:
        return "a small tmpfs needs root"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    return None if done.returncode == 0 else f"mount -t tmpfs failed: {done.stderr.strip()}"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["tmpfs", "rlimit-fsize"])
def test_a_full_disk_is_one_line_and_leaves_the_previous_output(tmp_path, tiny_model, how):
    big = write_jsonl(tmp_path / "big.jsonl", 3000, seed=4)
    disk = tmp_path / "disk"
    kw = {}
    if how == "tmpfs":
        reason = _tmpfs(disk, "96k")
        if reason:
            pytest.skip(reason)
    else:
        disk.mkdir()
        limit = 64 * 1024  # writing past it fails with EFBIG (Python ignores SIGXFSZ)
        kw["preexec_fn"] = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        out = disk / "out.jsonl"
        out.write_text("previous run\n")
        proc = _start([big, "-o", out, "--model", tiny_model, "--chunk-rows", "500", "--mode", "gpu-only", "-q"],
                      **kw)
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 1, stderr
        # (libraries may log warnings on stderr too: the run's own report is its one error line)
        lines = [line for line in stderr.splitlines() if line.startswith("error:")]
        reason = os.strerror(errno.ENOSPC if how == "tmpfs" else errno.EFBIG)
        assert len(lines) == 1 and str(out) in lines[0] and reason in lines[0], stderr
        assert "Traceback" not in stderr
        assert sorted(p.name for p in disk.iterdir()) == ["out.jsonl"]
        assert out.read_text() == "previous run\n"
    finally:
        if how == "tmpfs":
            subprocess.run(["umount", str(disk)], check=False)


# --- every error through one exit-code table --------------------------------------------------------------------

@pytest.mark.parametrize("exc, code, words", [
    (MemoryError(), 1, "out of memory"),
    (RecursionError("maximum recursion depth exceeded"), 1, "nested too deeply"),
    (OSError(errno.EIO, "Input/output error", "/data/x.jsonl"), 1, "/data/x.jsonl: Input/output error"),
    (ValueError("boom\nsecond line"), 1, "internal error: ValueError: boom"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_every_exception_is_one_line_with_its_exit_code(tmp_path, monkeypatch, exc, code, words):
    import mixedclf.engines.run

    def explode(*a, **k):
        raise exc

    monkeypatch.setattr(mixedclf.engines.run, "classify_file", explode)
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "good"}\n')
    args = ["classify", str(src), "-o", str(tmp_path / "o.jsonl")]
    monkeypatch.delenv("MIXEDCLF_DEBUG", raising=False)
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert words in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    monkeypatch.setenv("MIXEDCLF_DEBUG", "1")
    debug = runner.invoke(app, args)
    assert debug.exit_code == code and "Traceback" in debug.output and words in debug.output


def test_other_commands_go_through_the_same_table(monkeypatch):
    import mixedclf.models

    def explode(*a, **k):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(mixedclf.models, "list_models", explode)
    monkeypatch.delenv("MIXEDCLF_DEBUG", raising=False)
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 1 and "internal error: RuntimeError: unexpected" in result.output
    assert "Traceback" not in result.output
