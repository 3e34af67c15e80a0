"""What the cost commands share: option values checked, text written to stdout or a file."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from mixedclf.costs.pricing import CostInputError

FORMATS = ("table", "json", "markdown")
USAGE_HELP = ("Usage file (traffic and deployment: requests/day, active hours, idle timeouts, cold starts, workers, "
              "billing, profile) [default: ./mixedclf-usage.toml when present]")


def choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value not in allowed:
        raise CostInputError(f"{option} must be one of: {', '.join(allowed)} (got {value!r})")
    return value


def console() -> Console:
    from mixedclf.render.console import stdout_console

    return stdout_console()


def emit(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
