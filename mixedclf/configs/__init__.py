"""The default config files ship inside the package (mixedclf/configs/), so a wheel runs without a checkout."""

from __future__ import annotations

import os
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

from mixedclf.errors import InputError


def packaged_config(name: str) -> Path:
    """A shipped default file; MIXEDCLF_CONFIG_DIR names a folder whose files replace the shipped ones."""
    override = os.environ.get("MIXEDCLF_CONFIG_DIR")
    if override:
        return Path(override) / name
    return Path(str(files("mixedclf").joinpath("configs").joinpath(name)))


def read_toml(path: Path | str, what: str, error: type[InputError] = InputError) -> dict[str, Any]:
    """A TOML file as a dict; missing, a folder, unreadable or invalid -> `error` with one line naming `what`."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise error(f"{what} not found: {p}") from None
    except IsADirectoryError:
        raise error(f"{what} is a directory: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {p} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # tomllib decodes before it parses: a binary file fails here
        raise error(f"{what} {p} is not valid TOML: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise error(f"cannot read {what} {p}: {exc.strerror or exc}") from None
