"""`--help` that shows what the options say: typer renders option help as rich markup, which swallows a
bracketed default such as "[default: text]" and prints a flag as `--dedup <bool>`.

HelpGroup tidies every command below it once, before arguments are parsed (so before any help is printed):
option help is escaped (brackets print as written), flags show no type, options are put in their panels
(cli.options.PANELS) and each command gets its examples (cli.examples) as its epilog.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from typer.core import TyperGroup

_DONE = "_mixedclf_help_tidied"


# typer ships its own copy of click, so commands and parameters are recognised by their attributes.
def tidy_help(command: Any, ctx: Any) -> None:
    """Escape every option's help and drop the type of flags, for this command and every subcommand."""
    if getattr(command, _DONE, False):
        return
    setattr(command, _DONE, True)
    from mixedclf.cli.examples import epilog
    from mixedclf.cli.options import PANELLED_COMMANDS, PANELS

    examples = epilog(getattr(command, "name", "") or "")
    if examples and not getattr(command, "epilog", None):
        command.epilog = escape(examples)
    panelled = getattr(command, "name", None) in PANELLED_COMMANDS
    for param in command.get_params(ctx):  # includes --help, which click builds on first use
        if panelled and param.name in PANELS and not getattr(param, "rich_help_panel", None):
            param.rich_help_panel = PANELS[param.name]
        if getattr(param, "help", None):  # options, and typer's arguments
            param.help = escape(param.help)
        if getattr(param, "is_flag", False) and not getattr(param, "count", False):
            param.metavar = ""  # typer shows the metavar in place of the type; empty shows nothing
    for sub in (getattr(command, "commands", None) or {}).values():
        tidy_help(sub, ctx)


class HelpGroup(TyperGroup):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        tidy_help(self, ctx)
        return super().parse_args(ctx, args)
