"""Publishing an export to object storage (``gs://``, ``s3://``, ``ram://``…) via ``tf.io.gfile``.

Object stores have no atomic directory rename, so completeness is carried by
markers instead:

1. The export is built and verified in a local staging directory (as for a local
   target), then uploaded whole under a unique prefix beside the target
   (``.od-export-staging-<target>.<owner>…``); the target is not touched yet.
2. Only then is the target claimed: ``.od-export-incomplete`` is written into it
   first, the earlier export's ``manifest.json`` is deleted, then its other files.
3. Every file is moved from the staging prefix into the target, ``manifest.json``
   last (the completion marker), and finally ``.od-export-incomplete`` is deleted.

A reader (inspect, validate) takes a remote directory for a finished od-export export
only when it has ``manifest.json`` and no ``.od-export-incomplete``.  A writer killed
at any point leaves either the old complete export, the new complete export, or a
directory marked incomplete; never a mix that looks finished.
"""
from __future__ import annotations

import logging
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from od_export.errors import OutputError, option
from od_export.storage.location import RemotePath, check_scheme_supported
from od_export.storage.markers import INCOMPLETE_MARKER, MANIFEST_NAME
from od_export.storage.ownership import check_replaceable
from od_export.storage.owners import owner_alive, parse_owned_name, staging_name
from od_export.storage.staging import directory_mode, sigterm_unwinds, write_failure



logger = logging.getLogger(__name__)

def _gfile() -> Any:
    from od_export import compat

    return compat.import_tensorflow().io.gfile


def remove_tree(root: RemotePath) -> None:
    """Delete every object under ``root`` (object stores delete objects, not directories)."""
    gfile = _gfile()
    for path in list(root.rglob("*")):
        gfile.remove(str(path))
    if gfile.exists(str(root)):
        with contextlib.suppress(Exception):
            gfile.rmtree(str(root))


def check_remote_target(target: RemotePath, overwrite: bool) -> None:
    """After TensorFlow is imported, before any work: scheme, existing export, writability."""
    check_scheme_supported(target, "output")
    gfile = _gfile()
    if target.exists():
        if target.is_file():
            raise OutputError(f"output {target} exists and is not a directory; remove it or choose another path")
        if not overwrite:
            raise OutputError(f"output {target} already exists; pass {option('overwrite')} to replace it or choose another path")
        check_replaceable(str(target), target)
    probe = target.parent / f".od-export-probe-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        probe.write_bytes(b"")
        gfile.remove(str(probe))
    except Exception as exc:  # noqa: BLE001 - any gfile error: the location is unusable
        raise OutputError(f"cannot write output {target}: {' '.join(str(exc).split())[:200]}; "
                          "choose a location you can write") from exc
    _remove_stale_prefixes(target)


def _remove_stale_prefixes(target: RemotePath) -> None:
    parent = target.parent
    if not parent.is_dir():
        return
    for entry in parent.iterdir():
        owned = parse_owned_name(entry.name)
        if owned and owned.target == target.name and owner_alive(owned) is False:
            remove_tree(entry)
            logger.info(f"removed {entry}, left by {owned.describe()} that was killed")


def _upload(local: Path, destination: RemotePath) -> None:
    gfile = _gfile()
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        remote_path = destination / str(path.relative_to(local))
        gfile.makedirs(str(remote_path.parent))
        gfile.copy(str(path), str(remote_path), overwrite=True)


def _move(source: RemotePath, destination: RemotePath) -> None:
    gfile = _gfile()
    gfile.makedirs(str(destination.parent))
    try:
        gfile.rename(str(source), str(destination), overwrite=True)
    except Exception:  # noqa: BLE001 - a store without server-side rename: copy, then delete
        gfile.copy(str(source), str(destination), overwrite=True)
        gfile.remove(str(source))


def _clear_earlier_export(target: RemotePath) -> None:
    gfile = _gfile()
    manifest = target / MANIFEST_NAME
    if manifest.exists():
        gfile.remove(str(manifest))  # first: from here on the old export is not a finished one
    for entry in list(target.iterdir()):
        if entry.name == INCOMPLETE_MARKER:
            continue
        if entry.is_dir():
            remove_tree(entry)
        else:
            gfile.remove(str(entry))


def publish(staging: RemotePath, target: RemotePath) -> None:
    """Steps 2 and 3 of the module docstring: claim the target, move files, manifest last."""
    gfile = _gfile()
    gfile.makedirs(str(target))
    (target / INCOMPLETE_MARKER).write_bytes(b"an od-export export is being published here\n")
    _clear_earlier_export(target)
    ordered = sorted(staging.rglob("*"), key=lambda p: (p.name == MANIFEST_NAME, str(p)))
    for path in ordered:
        _move(path, target / str(path.relative_to(staging)))
    gfile.remove(str(target / INCOMPLETE_MARKER))
    remove_tree(staging)


@contextlib.contextmanager
def staged_remote(target: RemotePath, overwrite: bool) -> Iterator[Path]:
    """Build locally, then upload under a unique prefix and :func:`publish` it."""
    local = Path(tempfile.mkdtemp(prefix=staging_name(target.name)))
    local.chmod(directory_mode())
    remote_staging = target.parent / f"{local.name}"
    try:
        with sigterm_unwinds():
            yield local
            try:
                logger.info(f"uploading to {target}")
                _upload(local, remote_staging)
                check_remote_target(target, overwrite)  # it may have appeared while we worked
                publish(remote_staging, target)
            except Exception as exc:
                with contextlib.suppress(Exception):
                    remove_tree(remote_staging)
                failure = write_failure(exc, target)
                if failure is not None:
                    raise failure from exc
                raise
    finally:
        shutil.rmtree(local, ignore_errors=True)
