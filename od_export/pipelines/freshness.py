"""Is an export up to date?  And ``OUTPUT/latest`` of a multi-checkpoint job.

An export is up to date when its manifest records the same od-export version, the
same pipeline config and checkpoint (by sha256), the same request (every option that
shapes the content, :func:`export_request`), and its files still match the
manifest's inventory.  All of this is read without TensorFlow, so a batch whose
exports are all current finishes in about the time it takes to hash its files.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, replace
from typing import Any

from od_export import __version__
from od_export.errors import OdExportError
from od_export.manifest import checkpoint_files, export_request, read_manifest, sha256_of, verify_inventory
from od_export.options import ExportOptions
from od_export.pipelines.jobs import Task
from od_export.source.checkpoints import resolve_checkpoint
from od_export.storage.location import AnyPath, RemotePath, location
from od_export.storage.markers import INCOMPLETE_MARKER
from od_export.storage.ownership import is_our_manifest, is_replaceable


@dataclass(frozen=True)
class Freshness:
    up_to_date: bool
    reason: str  # why not, for the progress display
    ours: bool  # the output holds only what od-export wrote (storage/ownership.py), so a batch may replace it


def stale_reason(options: ExportOptions) -> Freshness:
    output = location(options.output_dir)
    manifest = read_manifest(output)
    if manifest is None or not is_our_manifest(manifest):
        return Freshness(False, "no export yet", False)
    if not is_replaceable(output):
        return Freshness(False, "it holds files od-export did not write", False)
    source: dict[str, Any] = manifest.get("source") or {}
    mismatch = _first_mismatch(options, manifest, source)
    if mismatch is None and (output / INCOMPLETE_MARKER).exists():
        mismatch = "its publication was interrupted"
    if mismatch is None:
        problems = verify_inventory(output, manifest)
        mismatch = problems[0] if problems else None
    return Freshness(mismatch is None, mismatch or "", True)


def task_options(task: Task, force: bool, freshness: Freshness) -> ExportOptions:
    """The task's options as a batch runs them: an export this batch wrote earlier is replaced, anything else
    only with overwrite (and even then only what od-export wrote, see storage/ownership.py)."""
    return replace(task.options, overwrite=True) if force or freshness.ours else task.options


def _first_mismatch(options: ExportOptions, manifest: dict[str, Any], source: dict[str, Any]) -> str | None:
    if (manifest.get("versions") or {}).get("od_export") != __version__:
        return "written by another od-export version"
    if manifest.get("request") != export_request(options):
        return "written with other options"
    if manifest.get("failed"):
        return "an artifact failed its check and was left out"
    if options.benchmark is not None and (manifest.get("benchmark") or {}).get("ok") is not True:
        return "it has no benchmark that passed its gates"
    if (source.get("pipeline_config") or {}).get("sha256") != sha256_of([location(options.pipeline_config)]):
        return "the pipeline config changed"
    try:
        prefix = resolve_checkpoint(options.checkpoint_dir, options.checkpoint).prefix
    except OdExportError:
        return "its checkpoint cannot be resolved"
    if (source.get("checkpoint") or {}).get("sha256") != sha256_of(checkpoint_files(prefix)):
        return "the checkpoint changed"
    return None


def _number(name: str) -> int:
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)) if match else -1


def update_latest(task: Task) -> None:
    """Point ``OUTPUT/latest`` at this task's checkpoint unless it already names a newer one.

    Locally a symlink, replaced atomically (a new link renamed over the old); on object
    storage, which has no links, a small ``latest`` object holding the name.
    """
    link = task.latest_link
    if link is None or task.checkpoint is None:  # a single-checkpoint job has no latest link
        return
    current = _current_latest(link)
    if current is not None and _number(current) > _number(task.checkpoint):
        return
    if isinstance(link, RemotePath):
        link.write_text(task.checkpoint + "\n")
        return
    if (link.exists() or link.is_symlink()) and not link.is_symlink():
        logging.getLogger(__name__).warning(f"{link} is not od-export's link (a checkpoint named {link.name}?): left "
                                            "as it is; the newest export is not linked")
        return
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    os.symlink(task.checkpoint, temporary)
    try:
        os.replace(temporary, link)
    finally:
        temporary.unlink(missing_ok=True)


def _current_latest(link: AnyPath) -> str | None:
    if isinstance(link, RemotePath):
        return link.read_text().strip() if link.is_file() else None
    return os.readlink(link) if link.is_symlink() else None
