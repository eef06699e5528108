"""Progress of a batch on stderr: a live display on a terminal, one line per event otherwise.

stdout stays free for the summary table or the ``--json`` document.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import Callable, TextIO

from od_export import log

Progress = Callable[[str, str, str], None]


@contextlib.contextmanager
def progress_display(total: int, quiet: bool = False) -> Iterator[Progress]:
    """``progress(label, event, detail)`` for events ``start``, ``phase`` and ``done``; ``total`` 0 if unknown."""
    terminal = None if quiet else log.terminal_stream()
    if quiet:
        yield _failures_only
    elif terminal is not None:
        with _live(total, terminal) as progress:
            yield progress
    else:
        yield _Lines(total)


def _failures_only(label: str, event: str, detail: str) -> None:
    if event == "done" and detail.startswith("failed"):
        print(f"od-export: {label}: {detail}", file=sys.stderr, flush=True)


class _Lines:
    """Plain lines for logs and pipes: ``od-export: [done/total] label: what happened``."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.lock = threading.Lock()

    def __call__(self, label: str, event: str, detail: str) -> None:
        with self.lock:
            if event == "done":
                self.done += 1
            text = {"start": "started", "phase": detail, "done": detail}[event]
            count = f"{self.done}/{self.total}" if self.total else str(self.done)
            print(f"od-export: [{count}] {label}: {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _live(total: int, terminal: TextIO) -> Iterator[Progress]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    console = Console(file=terminal)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    with RichProgress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("starting", total=total or None)  # None: a count without a known end
        lock = threading.Lock()

        def progress(label: str, event: str, detail: str) -> None:
            with lock:
                if event == "done":
                    bar.advance(task)
                    if detail.startswith("failed"):
                        console.print(f"od-export: {label}: {detail}")
                bar.update(task, description=f"{label}: {detail or 'starting'}"[:60])

        yield progress


class Phase:
    """The phase a spinner shows, with the seconds it has taken so far (long conversions show they run)."""

    def __init__(self, message: str = "starting") -> None:
        self.set(message)

    def set(self, message: str) -> None:
        self.message, self.started = message, time.monotonic()

    def __rich__(self) -> str:
        return f"{self.message} … {time.monotonic() - self.started:.0f} s"


@contextlib.contextmanager
def phase_spinner(quiet: bool = False) -> Iterator[None]:
    """A spinner with the current phase and its seconds under the log lines, on a terminal only (a single export)."""
    terminal = None if quiet else log.terminal_stream()
    if terminal is None:
        yield
        return
    import logging

    from rich.console import Console

    console = Console(file=terminal)
    phase = Phase()

    class _ToStatus(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            console.print(f"od-export: {record.getMessage()}", highlight=False)
            phase.set(record.getMessage())

    handler = _ToStatus(logging.INFO)
    library = logging.getLogger("od_export")
    with console.status(phase), log.progress_shows_info():
        library.addHandler(handler)
        try:
            yield
        finally:
            library.removeHandler(handler)
