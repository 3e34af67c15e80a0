"""Keep third-party chatter off the user's terminal: the command line reports what mixedclf did, nothing else.

transformers draws "Loading weights" bars and prints advisory warnings; torchao (imported by transformers when
installed) logs every optional kernel it cannot load; torch warns about deprecated pytree registrations. None
of it is actionable for a user of mixedclf. Errors still come through: only levels below ERROR are dropped.
"""

from __future__ import annotations

import logging
import os

# Read by transformers and huggingface_hub when they are imported, and inherited by worker processes.
_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}
_LOGGERS = ("transformers", "huggingface_hub", "torchao", "torch.utils._pytree")


def quiet_libraries() -> None:
    """Call before the libraries are imported; a variable the user set is left as it is."""
    for name, value in _ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def quiet_transformers() -> None:
    """Where a model loads: the same for transformers when it was imported before quiet_libraries ran."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
