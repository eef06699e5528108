"""Verbosity and progress messages.

TensorFlow floods stderr with C++ and absl warnings.  They are hidden unless the
user asks for ``-v``; our own progress lines go to stderr so that ``--json`` keeps
stdout machine-readable.  :func:`configure` must run before TensorFlow is imported
because ``TF_CPP_MIN_LOG_LEVEL`` is read at import time.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

QUIET, NORMAL, VERBOSE = -1, 0, 1
_state = {"verbosity": NORMAL}


def configure(verbosity: int) -> None:
    """Set how chatty od-export and TensorFlow are for the rest of the process."""
    _state["verbosity"] = verbosity
    if verbosity < VERBOSE:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
        warnings.filterwarnings("ignore")
        for name in ("tensorflow", "absl", "h5py", "matplotlib"):
            logging.getLogger(name).setLevel(logging.ERROR)
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")


def quiet_tensorflow_loggers() -> None:
    """Silence TF/absl Python loggers once TensorFlow is imported (they reset on import)."""
    if _state["verbosity"] >= VERBOSE:
        return
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # absl ships with TF; nothing to silence without it
        pass
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def info(message: str) -> None:
    """A progress line on stderr, suppressed by ``-q``."""
    if _state["verbosity"] > QUIET:
        print(f"od-export: {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    """A warning on stderr; shown even with ``-q`` because it changes what was exported."""
    print(f"od-export: warning: {message}", file=sys.stderr, flush=True)


def debug(message: str) -> None:
    if _state["verbosity"] >= VERBOSE:
        print(f"od-export: {message}", file=sys.stderr, flush=True)
