"""engines.durable.ending, the one way both the local and the Runpod engine end a stream of chunks: a stop writes
what was handed to the writer and keeps it for --resume (or throws it away, saying so, where a pipe cannot be
resumed); any other failure throws it away unless a stop came first."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mixedclf.engines.durable import ending
from mixedclf.engines.writer_thread import WriterThread
from mixedclf.errors import EXIT_SIGINT, Interrupted, MixedclfError


class Remote(MixedclfError):
    pass


class FakeSink:
    def __init__(self, resumable: bool):
        self.io = SimpleNamespace(resumable=resumable)
        self.calls: list[str] = []

    def suspend(self):
        self.calls.append("suspend")

    def abort(self):
        self.calls.append("abort")


def _run(error: BaseException, resumable=True, kept=False, stops=(Interrupted, Remote)):
    written: list[int] = []
    writer = WriterThread(written.append)
    sink = FakeSink(resumable)
    with pytest.raises(type(error)) as raised, ending(sink, writer, kept=lambda: kept, stops=stops):
        writer.put(1)
        raise error
    return sink.calls, written, raised.value


def test_a_stop_writes_what_the_writer_holds_and_keeps_it_for_resume():
    stop = Interrupted("stopped by SIGINT; completed chunks are saved", EXIT_SIGINT)
    assert _run(stop) == (["suspend"], [1], stop)
    calls, written, raised = _run(Remote("job failed; rerun with --resume"))
    assert (calls, written, str(raised)) == (["suspend"], [1], "job failed; rerun with --resume")


def test_a_stop_of_a_run_that_cannot_be_resumed_throws_it_away_and_says_so():
    calls, written, raised = _run(Interrupted("stopped by SIGINT; completed chunks are saved", EXIT_SIGINT),
                                  resumable=False)
    assert calls == ["abort"] and written == [1] and raised.exit_code == EXIT_SIGINT
    assert str(raised) == "stopped by SIGINT; the run read stdin or wrote stdout, so it cannot be resumed"
    calls, _, raised = _run(Remote("job failed; rerun with --resume"), resumable=False)
    assert calls == ["abort"] and type(raised) is Remote and str(raised).endswith("so it cannot be resumed")


def test_a_failure_throws_the_staged_output_away_unless_a_stop_came_first():
    assert _run(OSError("disk full"))[0] == ["abort"]
    assert _run(OSError("disk full"), kept=True)[0] == []
    assert _run(Remote("not a stop here"), stops=(Interrupted,))[0] == ["abort"]
