"""One writer per output directory: an advisory ``flock`` held for the whole export.

Two exports to the same target would otherwise both build a complete export and
the second swap would silently replace the first.  The lock file sits beside the
target (so processes sharing a volume see it) and records its holder, so the one
that is turned away can say who is writing.  ``flock`` is released by the kernel
when its holder dies, so ``kill -9`` never leaves a target locked; the lock file
itself is removed by the holder when it finishes (safely: a waiter that opened a
file which was then unlinked notices the inode changed and tries again).
"""
from __future__ import annotations

import logging
import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from od_export.errors import OutputBusy, option
from od_export.storage.owners import LOCK_PREFIX, owner_token


logger = logging.getLogger(__name__)

def lock_path_for(target: Path | str, local_parent: Path | None) -> Path:
    """Beside a local target; in the temp directory (keyed by URL) for a remote one."""
    if local_parent is not None:
        return local_parent / f"{LOCK_PREFIX}{Path(str(target)).name}"
    digest = hashlib.sha256(str(target).encode("utf-8")).hexdigest()[:16]
    directory = Path(tempfile.gettempdir()) / "od-export-locks"
    directory.mkdir(exist_ok=True)
    return directory / f"{LOCK_PREFIX}{digest}"


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return "another process"
    pid = text.split(".")[0]
    return f"od-export process {pid}" if pid.isdigit() else "another process"


def _open_locked(path: Path, wait: bool) -> int | None:
    """An fd holding the lock on the file now at ``path``, or None if busy and not waiting."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the previous holder unlinked it after we opened it: try again


@contextlib.contextmanager
def target_lock(target: Path | str, lock_file: Path, wait: bool) -> Iterator[None]:
    """Hold the target's lock for the block; busy is an :class:`OutputBusy` unless ``wait``."""
    fd = _open_locked(lock_file, wait=False)
    if fd is None:
        holder = _holder(lock_file)
        if not wait:
            raise OutputBusy(
                f"output {target} is being written by {holder}; wait for it to finish, or use {option('wait')} to wait for it"
            )
        logger.info(f"waiting for {holder} to finish writing {target}")
        started = time.monotonic()
        while fd is None:  # a blocking flock returns only once it holds the lock
            fd = _open_locked(lock_file, wait=True)
        logger.info(f"waited {time.monotonic() - started:.1f} s for {target}")
    try:
        os.ftruncate(fd, 0)
        os.write(fd, owner_token().encode("ascii"))
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_file)
        os.close(fd)
