"""The default config files ship inside the package (mixedclf/configs/), so a wheel runs without a checkout."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path


def packaged_config(name: str) -> Path:
    """A shipped default file; MIXEDCLF_CONFIG_DIR names a folder whose files replace the shipped ones."""
    override = os.environ.get("MIXEDCLF_CONFIG_DIR")
    if override:
        return Path(override) / name
    return Path(str(files("mixedclf").joinpath("configs").joinpath(name)))
