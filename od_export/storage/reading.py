"""Bounded reads of the files users hand od-export: regular files only, sizes checked after opening.

``Path.read_bytes()`` on ``/dev/zero`` reads until the kernel kills the process, on a
FIFO it blocks forever, and ``st_size`` is 0 for both, so a size check before opening
proves nothing.  :func:`read_bounded` opens without blocking, asks the open file
(``fstat``) what it is, and reads at most ``limit + 1`` bytes.  :func:`check_regular`
does the same for files that are streamed (hashed, restored) rather than read whole.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from od_export.errors import InputError, OdExportError

_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def size_text(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _open(path: Path, what: str, fix: str, error: type[OdExportError]) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}; {fix}") from None


def _check_open(fd: int, path: Path, what: str, limit: int | None, fix: str, error: type[OdExportError]) -> int:
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        raise error(f"{what} {path} is {_kind(status.st_mode)}, not a regular file; {fix}")
    if limit is not None and status.st_size > limit:
        raise error(f"{what} {path} is {status.st_size:,} bytes, far larger than any {what} (at most "
                    f"{size_text(limit)}); {fix}")
    return status.st_size


def read_bounded(path: str | Path, what: str, limit: int, fix: str,
                 error: type[OdExportError] = InputError) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else is one ``error`` line."""
    path = Path(path)
    fd = _open(path, what, fix, error)
    try:
        _check_open(fd, path, what, limit, fix, error)
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    if total > limit:  # it grew after fstat
        raise error(f"{what} {path} is larger than the {size_text(limit)} any such file needs; {fix}")
    return b"".join(chunks)


def check_regular(path: str | Path, what: str, fix: str, limit: int | None = None,
                  error: type[OdExportError] = InputError) -> int:
    """The size of ``path`` if it is a regular file (at most ``limit`` bytes); else one ``error`` line."""
    path = Path(path)
    fd = _open(path, what, fix, error)
    try:
        return _check_open(fd, path, what, limit, fix, error)
    finally:
        os.close(fd)


def decode_text(data: bytes, path: str | Path, what: str, fix: str,
                error: type[OdExportError] = InputError) -> str:
    """UTF-8 text without NUL bytes; a binary or non-UTF-8 file is one ``error`` line."""
    if b"\0" in data:
        raise error(f"{what} {path} is a binary file, not text; {fix}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); {fix}") from None


#: protobuf cannot parse a message of 2 GiB or more: a larger .pb is not a model, whatever it holds.
PROTOBUF_LIMIT = 2**31 - 1


def check_protobuf_file(path: str | Path, what: str, fix: str, error: type[OdExportError] = InputError) -> None:
    """Refuse, before parsing, a ``.pb`` that is not a regular file or that protobuf could never parse."""
    if not isinstance(path, (str, os.PathLike)):
        return  # a remote path: tf.io.gfile reads it
    path = Path(path)
    try:
        size = os.stat(path).st_size
    except OSError:
        return  # missing: the loader names it
    if size > PROTOBUF_LIMIT:
        raise error(f"{what} {path} is {size_text(size)}, over protobuf's 2 GiB limit, so it cannot be a model; {fix}")
    check_regular(path, what, fix, PROTOBUF_LIMIT, error)
