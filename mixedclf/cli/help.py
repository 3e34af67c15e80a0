"""`--help` that shows what the options say: typer renders option help as rich markup, which swallows a
bracketed default such as "[default: text]" and prints a flag as `--dedup <bool>`.

HelpGroup tidies every command below it once, before arguments are parsed (so before any help is printed):
option help is escaped (brackets print as written), flags show no type, an option whose help states its own
default shows only that one, and each command gets its examples (cli.examples) as its epilog (options name their
own panels: core.option_registry). Commands are known by their path ("deploy plan"), not their name: two
groups may hold commands of the same name (`plan` and `deploy plan`) that take different options.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from typer.core import TyperGroup

_DONE = "_mixedclf_help_tidied"


# typer ships its own copy of click, so commands and parameters are recognised by their attributes.
def tidy_help(command: Any, ctx: Any, path: tuple[str, ...] | None = None) -> None:
    """Tidy the help of this command and every subcommand; `path` is the command's names below the root
    (worked out from `ctx` when not given)."""
    if getattr(command, _DONE, False):
        return
    setattr(command, _DONE, True)
    from mixedclf.cli.examples import epilog

    path = command_path(ctx) if path is None else path
    examples = epilog(" ".join(path))
    if examples and not getattr(command, "epilog", None):
        command.epilog = escape(examples)
    for param in command.get_params(ctx):  # includes --help, which click builds on first use
        _tidy_param(param)
    for name, sub in (getattr(command, "commands", None) or {}).items():
        tidy_help(sub, ctx, (*path, name))


def _tidy_param(param: Any) -> None:
    help_text = getattr(param, "help", None)
    if help_text:  # options, and typer's arguments
        if "[default:" in help_text:
            # the help names the default in words ("this one", "a temp folder"); typer would add the raw value
            # (sys.executable, a path) as a second [default: ...]
            param.show_default = False
        param.help = escape(help_text)
    if getattr(param, "is_flag", False) and not getattr(param, "count", False):
        param.metavar = ""  # typer shows the metavar in place of the type; empty shows nothing


def command_path(ctx: Any) -> tuple[str, ...]:
    """The names of ctx's command below the root: () for the root, ("deploy",) for the deploy group."""
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return tuple(reversed(names))


class HelpGroup(TyperGroup):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        tidy_help(self, ctx)
        return super().parse_args(ctx, args)
