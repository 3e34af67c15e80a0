"""Rich consoles for the command line, made when a command renders (not at import), so they take the width of
the terminal the command runs in: COLUMNS when set, else the terminal's own size.

Where the stream is not a terminal (cron mail, a CI log, a pipe) and COLUMNS is not set, there is no width to
fit: rich would wrap every table at 80 columns, mid-cell. Such output is read in a log viewer or an editor, so
tables are printed at their natural width instead (LOG_WIDTH is only a ceiling for a runaway line).
"""

from __future__ import annotations

import os
import sys
from typing import IO

from rich.console import Console

LOG_WIDTH = 1000


class CliConsole(Console):
    """A console whose closed pipe (`| head`) is an error like any other, mapped by errors.EXIT_TABLE to its own
    exit code and one line; rich's own handling exits 1 without a word, the regression code of `check`."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError("stdout was closed")


def log_width(stream: IO[str]) -> int | None:
    """The width to render at: None (rich decides: COLUMNS, else the terminal's size) for a terminal or when
    COLUMNS is set; LOG_WIDTH when writing to a file or pipe."""
    if os.environ.get("COLUMNS", "").strip().isdigit():
        return None
    try:
        if stream.isatty():
            return None
    except (AttributeError, ValueError):
        pass
    return LOG_WIDTH


def stdout_stream() -> IO[str]:
    """Where a command's stdout text goes: stdout, or stderr when the process started with stdout closed
    (`>&-`, sys.stdout is None), so a summary printed after the work is done is not lost. (`-o -`, whose rows
    need stdout, is refused before the run by io.runio.)"""
    return sys.stdout if sys.stdout is not None else sys.stderr


def stdout_console() -> Console:
    stream = stdout_stream()
    return CliConsole(file=stream, highlight=False, width=log_width(stream))


def stderr_console() -> Console:
    return CliConsole(stderr=True, highlight=False, width=log_width(sys.stderr))
