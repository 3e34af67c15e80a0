"""A worker process ends when the process that started it ends, however that one died (SIGKILL, OOM killer).

Without this, a pool worker whose parent was killed waits on its task pipe forever, holding its memory and any
pipe it inherited (a test runner's stdout, a cron job's log): it holds the pipe's write end itself, so it never
sees end-of-file.

On Linux the kernel tells the worker at once (prctl PR_SET_PDEATHSIG). The kernel sends that signal when the
*thread* that started the worker ends, not only the process, so the signal is a handled one that exits only when
the worker has really been re-parented; a pool started from a short-lived thread keeps its workers. Elsewhere a
daemon thread polls the parent's pid.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_DEATH_SIGNAL = signal.SIGUSR1 if hasattr(signal, "SIGUSR1") else None
POLL_S = 1.0
EXIT_CODE = 1


def exit_with_parent(parent_pid: int) -> None:
    """Call first thing in a worker: from now on the worker exits when the process `parent_pid` ends."""
    if sys.platform.startswith("linux") and _parent_death_signal(parent_pid):
        return
    threading.Thread(target=_watch, args=(parent_pid,), daemon=True, name="mixedclf-parent-watch").start()


def _parent_gone(parent_pid: int) -> bool:
    return os.getppid() != parent_pid  # a dead parent's children are re-parented to init or a subreaper


def _parent_death_signal(parent_pid: int) -> bool:
    """True once the kernel will signal this process when its parent dies (and the parent is still alive)."""
    def on_signal(signum, frame) -> None:
        if _parent_gone(parent_pid):
            os._exit(EXIT_CODE)

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        signal.signal(PARENT_DEATH_SIGNAL, on_signal)  # before prctl: the default action would end the worker
        if libc.prctl(PR_SET_PDEATHSIG, int(PARENT_DEATH_SIGNAL), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError, ValueError):
        return False
    # The parent may have died before prctl took effect: then no signal will ever come.
    if _parent_gone(parent_pid):
        os._exit(EXIT_CODE)
    return True


def _watch(parent_pid: int) -> None:
    stop = threading.Event()
    while not stop.wait(POLL_S):
        if _parent_gone(parent_pid):
            os._exit(EXIT_CODE)
