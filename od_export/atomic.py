"""All-or-nothing output directories.

Everything is built in a hidden staging directory beside the target (same file
system, so the final ``rename`` is atomic) and moved into place only when complete.
A failure, Ctrl-C or SIGTERM removes the staging directory; an existing output is
replaced only after the new one is complete, and is restored if the swap fails.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from od_export.errors import OutputError

STAGING_PREFIX = ".od-export-staging-"


def check_target(target: Path, overwrite: bool) -> None:
    """Fail before any work when ``target`` cannot be (re)placed."""
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise OutputError(f"output {target} already exists; pass --overwrite to replace it or choose another path")
        if not target.is_dir():
            raise OutputError(f"output {target} exists and is not a directory; remove it or choose another path")
    parent = target.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"cannot create {target}: {parent} is not a directory")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write to {parent}; choose an output path you can write")


def _directory_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


class _Terminated(BaseException):
    """Raised by the SIGTERM handler so that cleanup runs like it does for Ctrl-C."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated()


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def staged_directory(target: str | Path, overwrite: bool) -> Iterator[Path]:
    """Yield an empty staging directory that becomes ``target`` if the block succeeds."""
    target = Path(target).absolute()
    check_target(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{target.name}-", dir=target.parent))
    staging.chmod(_directory_mode())  # mkdtemp's 0700 would surprise users sharing exports
    try:
        with _sigterm_unwinds():
            yield staging
            _swap_into_place(staging, target, overwrite)
    except _Terminated:
        shutil.rmtree(staging, ignore_errors=True)
        raise SystemExit(143) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_into_place(staging: Path, target: Path, overwrite: bool) -> None:
    check_target(target, overwrite)  # it may have appeared while we worked
    if not target.exists():
        staging.rename(target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{target.name}-old-", dir=target.parent))
    retired.rmdir()
    target.rename(retired)
    try:
        staging.rename(target)
    except OSError:
        retired.rename(target)  # put the earlier export back untouched
        raise
    shutil.rmtree(retired, ignore_errors=True)
