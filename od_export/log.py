"""Verbosity, and the handlers that show the library's log records.

The library speaks through stdlib :mod:`logging` (each module logs to
``logging.getLogger(__name__)``, under ``od_export``) and installs no handler, as a
library should.  A front end (the CLI, a batch runner) calls :func:`configure`, which
shows progress on stderr (so that ``--json`` keeps stdout machine-readable) and hides
TensorFlow's own flood of C++ and absl warnings unless ``-v`` is given.  It must run
before TensorFlow is imported because ``TF_CPP_MIN_LOG_LEVEL`` is read at import time.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import TextIO

QUIET, NORMAL, VERBOSE = -1, 0, 1
_state: dict = {"verbosity": NORMAL}


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (pytest's capture swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # a closed stream must not break an export
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "od-export: warning: " if record.levelno == logging.WARNING else "od-export: "
        return prefix + record.getMessage()


@contextlib.contextmanager
def progress_shows_info() -> Iterator[None]:
    """While a progress display shows the library's info records itself, stderr gets only warnings."""
    handlers = [h for h in logging.getLogger("od_export").handlers if isinstance(h, _StderrHandler)]
    levels = [h.level for h in handlers]
    for handler in handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
    try:
        yield
    finally:
        for handler, level in zip(handlers, levels):
            handler.setLevel(level)


def configure(verbosity: int) -> None:
    """Set how chatty od-export and TensorFlow are for the rest of the process."""
    _state["verbosity"] = verbosity
    logger = logging.getLogger("od_export")
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    logger.propagate = False
    # -q keeps warnings: they change what was exported.
    logger.setLevel({QUIET: logging.WARNING, NORMAL: logging.INFO}.get(verbosity, logging.DEBUG))
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


_NATIVE_LOG_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]"  # absl C++ LOG lines
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] \S+:\d+\]"  # tsl logging lines
    rb"|WARNING: All log messages before absl::InitializeLog\(\)"
    # the TFLite converter's and LiteRT's own chatter (shown with -v, as every native line is)
    rb"|fully_quantize: \d+, inference_type: "
    rb"|INFO: Created TensorFlow Lite \w+ delegate for CPU)"
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
    _state["terminal_fd"] = original if os.isatty(original) else None
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


def terminal_stream() -> TextIO | None:
    """A stream to the terminal that stderr shows, or None when stderr is not a terminal.

    Live progress displays write here: once :func:`filter_native_stderr` has routed fd 2
    through a pipe, ``sys.stderr`` no longer is a terminal, though the user sees one.
    """
    if "terminal_fd" not in _state:
        return sys.stderr if sys.stderr.isatty() else None
    if _state["terminal_fd"] is not None and "terminal" not in _state:  # one stream per process, not per call
        _state["terminal"] = os.fdopen(os.dup(_state["terminal_fd"]), "w", buffering=1, encoding="utf-8")
    return _state.get("terminal")


def flush_all() -> None:
    """Flush Python's streams and the native-log filter (before ``os._exit``)."""
    sys.stdout.flush()
    sys.stderr.flush()
    drain = _state.pop("drain", None)
    if drain is not None:
        drain()
