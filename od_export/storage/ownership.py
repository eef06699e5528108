"""What ``overwrite`` may replace: only a directory od-export wrote, holding nothing else.

A directory is od-export's when its ``manifest.json`` carries our marker (``generator:
od-export``; manifests written before the marker: ``format`` 1 with an ``od_export``
version and a file inventory) and every file in it is one the manifest accounts for:
the inventory, the manifest itself, the benchmark the manifest records,
and od-export's own temporary names.  An empty directory holds nothing to lose.  A
remote target whose publication was interrupted carries our ``.od-export-incomplete``
marker.  Anything else (a website with its own ``manifest.json``, notes added to an
export, a symlink) is refused, naming what would have been deleted.
"""
from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from od_export.errors import OutputError, option
from od_export.storage.location import AnyPath, RemotePath
from od_export.storage.markers import BENCHMARK_DIR, BENCHMARK_FILES, GENERATOR, INCOMPLETE_MARKER, MANIFEST_NAME
from od_export.storage.owners import is_od_export_temporary
from od_export.storage.reading import read_bounded

#: A manifest lists every file of an export with its hash: a few MB for the largest exports.
MAX_MANIFEST_BYTES = 64 * 2**20
_SHOWN = 3


def is_our_manifest(document: Any) -> bool:
    """A manifest od-export wrote (by its marker, or by the shape of manifests written before it)."""
    if not isinstance(document, dict):
        return False
    if document.get("generator") == GENERATOR:
        return True
    versions = document.get("versions")
    return (document.get("format") == 1 and isinstance(versions, dict) and isinstance(versions.get("od_export"), str)
            and isinstance(document.get("artifacts"), list))


def load_manifest(root: AnyPath) -> Any:
    """The parsed ``manifest.json`` in ``root``, or None when there is none or it is not JSON (bounded read)."""
    path = root / MANIFEST_NAME
    try:
        if isinstance(path, RemotePath):
            data = path.read_bytes() if path.is_file() else None
        elif path.is_file() and not path.is_symlink():
            data = read_bounded(path, "manifest", MAX_MANIFEST_BYTES, "")
        else:
            data = None
        return json.loads(data.decode("utf-8")) if data is not None else None
    except Exception:  # noqa: BLE001 - unreadable, oversized, a device, not JSON: not a manifest we can use
        return None


def accounted_files(manifest: dict[str, Any]) -> dict[str, int | None]:
    """Relative path → recorded size (None: not recorded) of every file the manifest says od-export wrote.

    A file is accounted for by its path: one od-export wrote and something later changed is a
    damaged export (``validate`` says so), which replacing repairs."""
    files: dict[str, int | None] = {MANIFEST_NAME: None}
    for entry in manifest.get("artifacts") or []:
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            size = entry.get("bytes")
            files[entry["path"]] = size if isinstance(size, int) else None
    benchmark = manifest.get("benchmark")
    if isinstance(benchmark, dict):
        written = benchmark.get("written")
        names = written if isinstance(written, list) else [f"{BENCHMARK_DIR}/{n}" for n in BENCHMARK_FILES]
        files.update({str(name): None for name in names})
    return files


def _local_entries(root: Path) -> Iterator[tuple[str, int | None]]:
    """Every non-directory entry under ``root`` (links not followed): relative path, size (None: not a file)."""
    stack = [root]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if is_od_export_temporary(entry.name):
                    continue
                relative = os.path.relpath(entry.path, root)
                status = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(status.st_mode):
                    stack.append(Path(entry.path))
                elif stat.S_ISREG(status.st_mode):
                    yield relative, status.st_size
                else:
                    yield relative, None


def _remote_entries(root: RemotePath) -> Iterator[tuple[str, int | None]]:
    for path in root.rglob("*"):
        relative = str(path.relative_to(root))
        if not any(is_od_export_temporary(part) for part in Path(relative).parts):
            yield relative, path.stat_size()


def foreign_files(root: AnyPath) -> tuple[list[str], bool, bool]:
    """Up to a few files under ``root`` that od-export did not write, whether there are more, and whether
    ``root`` has an od-export manifest."""
    if isinstance(root, RemotePath) and (root / INCOMPLETE_MARKER).exists():
        return [], False, True  # our own interrupted publication
    manifest = load_manifest(root)
    ours = is_our_manifest(manifest)
    files = accounted_files(manifest) if ours else {}
    entries = _remote_entries(root) if isinstance(root, RemotePath) else _local_entries(root)
    found: list[str] = []
    for relative, size in entries:
        if relative in files and size is not None:  # a file od-export wrote, even if since damaged
            continue
        found.append(relative + ("" if size is not None else " (not a regular file)"))
        if len(found) > _SHOWN:
            return found[:_SHOWN], True, ours
    return found, False, ours


def check_replaceable(requested: str, root: AnyPath) -> None:
    """Refuse to replace ``root`` unless od-export wrote all of it (see the module docstring)."""
    found, more, ours = foreign_files(root)
    if not found:
        return
    why = ("holds files its od-export manifest does not account for" if ours
           else "is not an od-export export (it has no od-export manifest.json)")
    names = ", ".join(found) + (", …" if more else "")
    raise OutputError(f"output {requested} {why}; replacing it would delete {names}. {option('overwrite')} replaces "
                      "only what od-export wrote: move those files out, or choose another path")


def is_replaceable(root: AnyPath) -> bool:
    """True when ``root`` holds only what od-export wrote (and so a batch may replace it)."""
    return not foreign_files(root)[0]
