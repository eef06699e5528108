"""Verbosity and progress messages.

TensorFlow floods stderr with C++ and absl warnings.  They are hidden unless the
user asks for ``-v``; our own progress lines go to stderr so that ``--json`` keeps
stdout machine-readable.  :func:`configure` must run before TensorFlow is imported
because ``TF_CPP_MIN_LOG_LEVEL`` is read at import time.
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading
import warnings

QUIET, NORMAL, VERBOSE = -1, 0, 1
_state: dict = {"verbosity": NORMAL}


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


_NATIVE_LOG_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]"  # absl C++ LOG lines
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] \S+:\d+\]"  # tsl logging lines
    rb"|WARNING: All log messages before absl::InitializeLog\(\))"
)


def filter_native_stderr() -> None:
    """Drop TensorFlow's C++ log lines from file descriptor 2 for the rest of the process.

    Those lines bypass ``TF_CPP_MIN_LOG_LEVEL`` (grappler logs through absl before it
    is initialised).  Only the console entry point calls this: it re-routes fd 2
    through a pipe, which would confuse in-process callers such as test runners.
    """
    if _state["verbosity"] >= VERBOSE:
        return
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as lines:
            for line in lines:
                if not _NATIVE_LOG_LINE.match(line):
                    os.write(original, line)

    thread = threading.Thread(target=pump, name="od-export-stderr", daemon=True)
    thread.start()

    def drain() -> None:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end, so pump() ends
        thread.join(timeout=5)

    _state["drain"] = drain
    atexit.register(drain)


def flush_all() -> None:
    """Flush Python's streams and the native-log filter (before ``os._exit``)."""
    sys.stdout.flush()
    sys.stderr.flush()
    drain = _state.pop("drain", None)
    if drain is not None:
        drain()
