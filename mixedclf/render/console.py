"""Rich consoles for the command line, made when a command renders (not at import), so they take the width of
the terminal the command runs in: COLUMNS when set, else the terminal's own size."""

from __future__ import annotations

from rich.console import Console


def stdout_console() -> Console:
    return Console(highlight=False)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)
