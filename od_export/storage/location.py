"""Local paths and remote URLs (``gs://``, ``s3://``, ``ram://``…) behind one small API.

``pathlib.Path("gs://bucket/run")`` silently becomes the *local* relative path
``gs:/bucket/run``; that bug made an export to a bucket land in the working
directory.  :func:`location` keeps local paths as :class:`pathlib.Path` and turns a
URL into a :class:`RemotePath`, which offers the part of the ``Path`` API that
od-export uses (joining, ``name``/``parent``, existence, listing, reading) on top of
``tf.io.gfile``, the layer the OD API's own tools use for remote storage.

Nothing here imports TensorFlow until a remote path is actually touched, so local
paths stay checkable in milliseconds.
"""
from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Union

from od_export.errors import InputError

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>.*)$")


def scheme_of(text: str | Path | RemotePath) -> str | None:
    """``"gs"`` for ``gs://b/x``; None for a local path."""
    if isinstance(text, Path):
        return None
    match = _URL.match(str(text))
    return match.group("scheme").lower() if match else None


def is_remote(text: str | Path | RemotePath) -> bool:
    return scheme_of(text) is not None and scheme_of(text) != "file"


def _gfile() -> Any:
    from od_export import compat

    return compat.import_tensorflow().io.gfile


class RemotePath:
    """A ``scheme://`` location with the subset of :class:`pathlib.Path` od-export needs."""

    def __init__(self, url: str) -> None:
        match = _URL.match(url)
        if match is None:
            raise ValueError(f"not a URL: {url}")
        rest = match.group("rest")
        normalized = posixpath.normpath(rest) if rest else ""
        self._scheme = match.group("scheme")
        self._rest = "" if normalized == "." else normalized

    # -- naming -----------------------------------------------------------
    def __str__(self) -> str:
        return f"{self._scheme}://{self._rest}"

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __truediv__(self, child: str | Path) -> RemotePath:
        return RemotePath(f"{self._scheme}://{posixpath.join(self._rest, str(child))}")

    @property
    def scheme(self) -> str:
        return self._scheme

    @property
    def name(self) -> str:
        return posixpath.basename(self._rest)

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    @property
    def parent(self) -> RemotePath:
        return RemotePath(f"{self._scheme}://{posixpath.dirname(self._rest)}")

    def with_name(self, name: str) -> RemotePath:
        return self.parent / name

    def absolute(self) -> RemotePath:
        return self

    def is_absolute(self) -> bool:
        return True

    def relative_to(self, other: RemotePath) -> Path:
        return Path(posixpath.relpath(self._rest, other._rest))

    # -- queries (tf.io.gfile) ---------------------------------------------
    def exists(self) -> bool:
        return bool(_gfile().exists(str(self)))

    def is_dir(self) -> bool:
        return bool(_gfile().isdir(str(self)))

    def is_file(self) -> bool:
        gfile = _gfile()
        return bool(gfile.exists(str(self))) and not self._listable()

    def _listable(self) -> bool:
        """A real directory: it has entries (object stores have no empty directories)."""
        gfile = _gfile()
        try:
            return gfile.isdir(str(self)) and bool(gfile.listdir(str(self)))
        except Exception:  # noqa: BLE001 - any gfile error means "not a listable directory"
            return False

    def iterdir(self) -> Iterator[RemotePath]:
        for entry in sorted(_gfile().listdir(str(self))):
            yield self / entry.rstrip("/")

    def glob(self, pattern: str) -> Iterator[RemotePath]:
        if not self.is_dir():
            return iter(())
        return (p for p in self.iterdir() if fnmatch.fnmatchcase(p.name, pattern))

    def rglob(self, pattern: str) -> Iterator[RemotePath]:
        for directory, _, files in _gfile().walk(str(self)):
            for name in sorted(files):
                if fnmatch.fnmatchcase(name, pattern):
                    yield RemotePath(posixpath.join(str(directory), name))

    def stat_size(self) -> int:
        return int(_gfile().stat(str(self)).length)

    # -- content -------------------------------------------------------------
    def open(self, mode: str = "r", encoding: str | None = None) -> IO[Any]:
        return _gfile().GFile(str(self), mode)

    def read_bytes(self) -> bytes:
        with self.open("rb") as handle:
            return bytes(handle.read())

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        with self.open("wb") as handle:
            handle.write(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))


AnyPath = Union[Path, RemotePath]


def location(value: str | Path | RemotePath) -> AnyPath:
    """A user's path or URL as :class:`Path` (local, ``file://`` included) or :class:`RemotePath`."""
    if isinstance(value, (Path, RemotePath)):
        return value
    text = str(value)
    if "\x00" in text:
        raise InputError(f"path {text!r} contains a NUL byte; no file system accepts that")
    if not text.strip():
        raise InputError(f"a path is empty ({text!r}), which would mean the current directory; a variable that "
                         "should hold it is probably unset: give the path")
    scheme = scheme_of(text)
    if scheme is None:
        return Path(text)
    if scheme == "file":
        return Path(text[len("file://"):] or "/")
    return RemotePath(text)


def check_scheme_supported(path: AnyPath, what: str) -> None:
    """Refuse a URL whose scheme this TensorFlow cannot open (imports TensorFlow)."""
    if not isinstance(path, RemotePath):
        return
    registered = set(_gfile().get_registered_schemes())
    if path.scheme not in registered and path.scheme in _TENSORFLOW_IO_SCHEMES:
        _try_tensorflow_io()
        registered = set(_gfile().get_registered_schemes())
    if path.scheme not in registered:
        hint = " (install tensorflow-io, which adds it)" if path.scheme in _TENSORFLOW_IO_SCHEMES else ""
        known = ", ".join(f"{s}://" for s in sorted(registered) if s)
        raise InputError(
            f"{what} {path}: this TensorFlow cannot open {path.scheme}:// paths{hint}; it supports {known} "
            "and local paths"
        )


#: Schemes that the tensorflow-io package registers with tf.io.gfile when imported.
_TENSORFLOW_IO_SCHEMES = frozenset({"s3", "hdfs", "viewfs", "az", "http", "https"})


def _try_tensorflow_io() -> None:
    """Import the real tensorflow_io (which registers s3:// and friends), if it is installed."""
    import importlib
    import sys

    placeholder = sys.modules.pop("tensorflow_io", None)
    try:
        importlib.import_module("tensorflow_io")
    except Exception:  # noqa: BLE001 - missing or broken: the caller reports the scheme
        if placeholder is not None:
            sys.modules["tensorflow_io"] = placeholder
