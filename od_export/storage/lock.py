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
import re
import signal
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from od_export.errors import OutputBusy, OutputError, option
from od_export.storage.owners import LOCK_PREFIX, owner_token


logger = logging.getLogger(__name__)
#: What a lock file holds: its holder's ``<pid>.<start>.<host>`` (see owners.owner_token).
_TOKEN = re.compile(r"\d+\.\d+\.[0-9a-f]{1,8}")
_UNWINDING_SIGNALS = {signal.SIGTERM, signal.SIGINT}

def _private_lock_directory() -> Path:
    """``od-export-locks-UID`` in the temp directory: this user's, mode 0700, not a link (else refused)."""
    directory = Path(tempfile.gettempdir()) / f"od-export-locks-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    status = os.lstat(directory)
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.geteuid() or status.st_mode & 0o077:
        raise OutputError(f"the lock directory {directory} is not a private directory of this user (a link, another "
                          "user's, or open to others); remove it, or set TMPDIR to a directory of your own")
    return directory


def lock_path_for(target: Path | str, local_parent: Path | None) -> Path:
    """Beside a local target; in this user's private lock directory (keyed by URL) for a remote one."""
    if local_parent is not None:
        return local_parent / f"{LOCK_PREFIX}{Path(str(target)).name}"
    digest = hashlib.sha256(str(target).encode("utf-8")).hexdigest()[:16]
    return _private_lock_directory() / f"{LOCK_PREFIX}{digest}"


def _open_lock_file(path: Path) -> int:
    """Create the lock file, or open one od-export left; never follow a link or write into another file.

    A lock file that exists must be a regular file of this user with one link and at most an
    owner token in it: anything else (a planted symlink or hard link to a victim file) is refused.
    """
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        pass
    try:
        fd = os.open(path, flags | os.O_NONBLOCK)
    except FileNotFoundError:
        return _open_lock_file(path)  # its holder removed it meanwhile: create it
    except OSError as exc:  # ELOOP: a symlink
        raise OutputError(f"{path} is not an od-export lock file ({exc.strerror}); remove it and run again") from None
    status = os.fstat(fd)
    if (not stat.S_ISREG(status.st_mode) or status.st_uid != os.geteuid() or status.st_nlink != 1
            or status.st_size > 64 or not _TOKEN.fullmatch(os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "0.0.0")):
        os.close(fd)
        raise OutputError(f"{path} is not an od-export lock file (not a plain file of this user holding a process "
                          "token); remove it and run again")
    return fd


def _holder(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            text = os.read(fd, 64).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
    except OSError:
        return "another process"
    pid = text.split(".")[0]
    return f"od-export process {pid}" if pid.isdigit() else "another process"


def _open_locked(path: Path, wait: bool) -> int | None:
    """An fd holding the lock on the file now at ``path``, or None if busy and not waiting."""
    while True:
        fd = _open_lock_file(path)
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
    """Hold the target's lock for the block; busy is an :class:`OutputBusy` unless ``wait``.

    SIGTERM and SIGINT are held back from creating the lock file until the block that
    removes it has begun, so a signal in between never leaves the file behind.
    """
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _UNWINDING_SIGNALS)
    try:
        fd = _open_locked(lock_file, wait=False)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        raise
    if fd is None:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)  # waiting stays interruptible
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
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        os.ftruncate(fd, 0)
        os.write(fd, owner_token().encode("ascii"))
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_file)
        os.close(fd)
