"""Command-line options generated from the one declaration of each setting (core.options.option(): the pydantic
field's type, default and constraints, its help, flags, panel and completions), so a setting's flag, its
MIXEDCLF_* variable, its config-file key and its checks never drift apart. A command lists the fields it takes;
`with_options` puts them, in that order, before the command's own parameters."""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal, Optional, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from mixedclf.core.option_registry import PANEL_IO, SharedOptions, cli_meta


def completer(choices: tuple[str, ...]):
    """Shell completion for an option with a few values (validated where the options are built, with a message
    that names them)."""

    def complete(incomplete: str) -> list[str]:
        return [c for c in choices if c.startswith(incomplete)]

    return complete


def _cli_type(field: FieldInfo) -> Any:
    """The type typer parses: the field's, less None; a choice (Literal) as text, validated by the settings."""
    kind = field.annotation
    if get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(a for a in get_args(kind) if a is not type(None))
    if get_origin(kind) is Literal:
        return str
    return kind


def typer_parameter(name: str, field: FieldInfo) -> inspect.Parameter:
    """The typer parameter of one declared setting. Every option defaults to None (not given), so a value
    given nowhere on the command line comes from the environment, the config files or the field's default."""
    meta = cli_meta(field)
    help_text = field.description
    if meta.get("argument"):
        return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=list[str],
                                 default=typer.Argument(..., help=help_text, show_default=False))
    kwargs: dict[str, Any] = {"help": help_text}
    for key, arg in (("envvar", "envvar"), ("panel", "rich_help_panel"), ("show_default", "show_default")):
        if key in meta:
            kwargs[arg] = meta[key]
    if meta.get("complete"):
        kwargs["autocompletion"] = completer(tuple(meta["complete"]))
    required = field.is_required()
    kind = str if meta.get("as_text") else _cli_type(field)
    annotation = kind if required else Optional[kind]  # noqa: UP045 - the type typer was always given
    default = typer.Option(... if required else None, *meta.get("flags", ()), **kwargs)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


def typer_parameters(model: type[BaseModel], names: Sequence[str]) -> list[inspect.Parameter]:
    fields = model.model_fields
    return [typer_parameter(name, fields[name]) for name in names]


def with_options(model: type[BaseModel], names: Sequence[str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A command whose parameters are `names` of `model`, generated, then its own (declared in its signature,
    beside **values, which receives the generated ones)."""

    def wrap(command: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values()
               if p.kind is not inspect.Parameter.VAR_KEYWORD]
        generated = typer_parameters(model, names)
        positional = [p for p in generated if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
        keyword = [p for p in generated if p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD]
        params = positional + keyword + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

        @functools.wraps(command)
        def run(*args: Any, **values: Any) -> Any:
            return command(*args, **values)

        run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run

    return wrap


# The pricing options of the cost commands (estimate, plan, ...), as classify and serve take them.
PRICING = typer_parameter("pricing", SharedOptions.model_fields["pricing"]).default
PROFILE = typer_parameter("profile", SharedOptions.model_fields["profile"]).default
__all__ = ["PANEL_IO", "PRICING", "PROFILE", "completer", "typer_parameter", "typer_parameters", "with_options"]
