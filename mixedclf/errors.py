"""Errors that reach the user as one line and a documented exit code."""

from __future__ import annotations

# Exit codes (documented in README "Exit codes").
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_ROWS_SKIPPED = 3
EXIT_BUDGET = 4  # classify --max-cost stopped the run: completed chunks are checkpointed, --resume continues
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class MixedclfError(Exception):
    """An error with a message fit for a user and the exit code to leave with."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def one_line(self) -> str:
        text = str(self)
        return f"{text} ({self.hint})" if self.hint else text


class InputError(MixedclfError):
    """The input file, its format, or an option cannot be used: nothing was written."""

    exit_code = EXIT_USAGE


class ModelError(MixedclfError):
    """The model folder cannot be loaded."""

    exit_code = EXIT_USAGE


class RowError(MixedclfError):
    """A row cannot be classified (raised only with --on-error fail)."""

    exit_code = EXIT_FAILURE


class StageTimeout(MixedclfError):
    exit_code = EXIT_FAILURE


class Interrupted(MixedclfError):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
