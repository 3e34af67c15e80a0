"""Where every command's failure ends: errors.EXIT_TABLE gives the exit code and the one line on stderr; the
traceback is printed only with MIXEDCLF_DEBUG=1."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from mixedclf.cli.help import HelpGroup
from mixedclf.errors import EXIT_PIPE_CLOSED, exit_code_and_line, silence_stdout

err = Console(stderr=True)


def fail(exc: BaseException) -> typer.Exit:
    code, line = exit_code_and_line(exc)
    if code == EXIT_PIPE_CLOSED:
        silence_stdout()
    if os.environ.get("MIXEDCLF_DEBUG") == "1":
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


class AppGroup(HelpGroup):
    """The app's command group: every command's exceptions end in fail(); typer's own exits and usage errors
    pass through."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - mapped through the one exit-code table
            raise fail(exc) from None
