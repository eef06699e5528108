"""All-or-nothing local output directories.

Everything is built in a hidden staging directory beside the target (same file
system, so publishing is a ``rename``) and published only when complete:

* a new target: ``rename(staging, target)``;
* replacing a target: ``renameat2(RENAME_EXCHANGE)`` swaps the two directories in one
  step, so at every instant ``target`` is either the complete old export or the
  complete new one.  Where the file system cannot exchange, the old export is first
  renamed to a *retired* name and put back if the second rename fails; a ``kill -9``
  between the two renames leaves it under that name, and the next export to the
  target (or :func:`recover_retired`) renames it back.

A failure, Ctrl-C or SIGTERM removes the staging directory; ``kill -9`` leaves it,
named after its owner (see :mod:`od_export.storage.owners`), and the next export to
the same target removes it once that owner is gone.
"""
from __future__ import annotations

import logging
import contextlib
import ctypes
import errno
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from od_export.errors import OdExportError, WriteFailed
from od_export.storage.owners import owner_alive, parse_owned_name, retired_name, staging_name

logger = logging.getLogger(__name__)

_RENAME_EXCHANGE = 2
_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM}
_WRITE_PHRASES = ("No space left", "File too large", "Disk quota exceeded", "Read-only file system", "Input/output error")


def directory_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


class _Terminated(BaseException):
    """Raised by the SIGTERM handler so that cleanup runs like it does for Ctrl-C."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated()


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into an exception for the block, so ``finally`` clauses run."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    except _Terminated:
        raise SystemExit(143) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_failure(exc: BaseException, target: object) -> WriteFailed | None:
    """A one-line :class:`WriteFailed` naming the user's ``target`` if ``exc`` is a write error."""
    text = " ".join(str(exc).split())
    is_write_error = (isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS) or any(p in text for p in _WRITE_PHRASES)
    if not is_write_error or isinstance(exc, OdExportError):
        return None
    reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else next(
        (p for p in _WRITE_PHRASES if p in text), text)
    return WriteFailed(
        f"cannot write the export to {target}: {reason}; nothing was written and any earlier export there is "
        "unchanged; free space (or choose another location) and run the export again"
    )


def _exchange(first: Path, second: Path) -> bool:
    """Atomically swap two directories; False where the kernel or file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _swap_into_place(staging: Path, target: Path) -> Path | None:
    """Publish ``staging`` as ``target``; return where the replaced export now is (to delete)."""
    if not target.exists():
        staging.rename(target)
        return None
    if _exchange(staging, target):
        return staging  # now holds the old export
    retired = target.parent / retired_name(target.name, os.urandom(4).hex())
    target.rename(retired)
    try:
        staging.rename(target)
    except OSError:
        retired.rename(target)  # put the earlier export back untouched
        raise
    return retired


@contextlib.contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """Yield an empty staging directory that replaces ``target`` if the block succeeds.

    The caller has checked the target and holds its lock (:mod:`od_export.storage.output`).
    """
    staging = Path(tempfile.mkdtemp(prefix=staging_name(target.name), dir=target.parent))
    staging.chmod(directory_mode())  # mkdtemp's 0700 would surprise users sharing exports
    try:
        with sigterm_unwinds():
            try:
                yield staging
                replaced = _swap_into_place(staging, target)
            except Exception as exc:
                failure = write_failure(exc, target)
                if failure is not None:
                    raise failure from exc
                raise
        if replaced is not None:
            shutil.rmtree(replaced, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def recover_retired(target: Path) -> None:
    """Put back an earlier export left under a retired name by a writer killed mid-swap."""
    if target.exists() or not target.parent.is_dir():
        return
    for entry in sorted(target.parent.iterdir()):
        owned = parse_owned_name(entry.name)
        if owned and owned.is_retired and owned.target == target.name and owner_alive(owned) is False:
            entry.rename(target)
            logger.warning(f"restored the earlier export {target}, left aside by {owned.describe()} that was killed")
            return


def remove_stale(directory: Path, target_name: str) -> list[Path]:
    """Delete staging/retired leftovers for ``target_name`` whose owner is gone; return them."""
    removed = []
    if not directory.is_dir():
        return removed
    for entry in sorted(directory.iterdir()):
        owned = parse_owned_name(entry.name)
        if owned is None or owned.target != target_name:
            continue
        alive = owner_alive(owned)
        if alive is False:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        elif alive is None:
            logger.warning(f"left {entry} alone: it belongs to {owned.describe()}, which cannot be checked from here")
    if removed:
        logger.info(f"removed {len(removed)} unfinished export(s) left by killed od-export processes: "
                 + ", ".join(p.name for p in removed))
    return removed
