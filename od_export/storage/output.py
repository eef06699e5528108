"""Where an export goes: every check that needs no TensorFlow, then the writer's reservation.

:func:`plan_output` runs before TensorFlow is imported (bad output paths fail in
milliseconds): it resolves symlinks, refuses a file, an existing directory without
overwrite, a place inside (or around) the checkpoint directory, and a parent that
cannot be written (tested by creating and removing a probe directory, because
``os.access`` says yes to root even on ``/proc``).  :func:`reserve` then creates the
parents, takes the target's lock and clears leftovers of killed writers;
:func:`staged_output` yields the directory to build in and publishes it whole.
"""
from __future__ import annotations

import logging
import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from od_export.errors import OutputError, option
from od_export.storage import remote
from od_export.storage.location import AnyPath, RemotePath, location
from od_export.storage.lock import lock_path_for, target_lock
from od_export.storage.ownership import check_replaceable
from od_export.storage.staging import recover_retired, remove_stale, sigterm_unwinds, staged_directory


logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class OutputPlan:
    """The checked output location: ``requested`` as the user wrote it, ``target`` resolved."""

    requested: str
    target: AnyPath
    overwrite: bool
    #: The writer carries the target's files over (``convert``), so it replaces nothing it did not write.
    keeps_contents: bool = False

    @property
    def is_remote(self) -> bool:
        return isinstance(self.target, RemotePath)


def _resolve_local(requested: str) -> Path:
    absolute = Path(os.path.abspath(requested))
    if absolute.is_symlink():
        resolved = Path(os.path.realpath(absolute))
        if not resolved.exists():
            raise OutputError(f"output {requested} is a symlink to {resolved}, which does not exist; "
                              "point it at a directory or choose another path")
        logger.info(f"output {requested} is a symlink: writing the export to {resolved}")
        return resolved
    return Path(os.path.realpath(absolute.parent)) / absolute.name


def _relation(target: Path, other: Path) -> str | None:
    other = Path(os.path.realpath(other))
    if target == other:
        return "is"
    if other in target.parents:
        return "is inside"
    if target in other.parents:
        return "contains"
    return None


def _check_not_sources(requested: str, target: Path, sources: Sequence[tuple[str, AnyPath]]) -> None:
    for what, source in sources:
        if isinstance(source, RemotePath):
            continue
        relation = _relation(target, Path(os.path.abspath(source)))
        if relation:
            raise OutputError(f"output {requested} {relation} the {what} {source}; an export there would mix with "
                              "(or, when replaced, delete) the training run: choose a path outside it")


def check_apart(requested: str, sources: Sequence[tuple[str, AnyPath]]) -> None:
    """Refuse an output inside, equal to or around any of ``sources`` (nothing else is checked)."""
    path = location(requested)
    if isinstance(path, RemotePath):
        return
    try:
        _check_not_sources(requested, _resolve_local(str(path)), sources)
    except OSError as exc:
        raise OutputError(f"cannot use output {requested}: {exc.strerror or exc}; choose another path") from None


def _check_writable(requested: str, target: Path) -> None:
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        if ancestor.is_symlink():
            raise OutputError(f"cannot create output {requested}: {ancestor} is a symlink that leads nowhere (dangling, "
                              "or a loop); fix the link or choose another path")
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"cannot create output {requested}: {ancestor} is not a directory; choose another path")
    try:
        Path(tempfile.mkdtemp(prefix=".od-export-probe-", dir=ancestor)).rmdir()
    except OSError as exc:
        raise OutputError(f"cannot write output {requested}: nothing can be created in {ancestor} "
                          f"({exc.strerror}); choose an output path you can write") from exc


def plan_output(requested: str | Path, overwrite: bool, sources: Sequence[tuple[str, AnyPath]] = (),
                keeps_contents: bool = False) -> OutputPlan:
    """Check the output location without TensorFlow (a remote one is checked by :mod:`remote`).

    ``sources`` are the inputs (what, path): none may be inside, equal to or around the output.
    """
    requested = str(requested)
    path = location(requested)
    if isinstance(path, RemotePath):
        return OutputPlan(requested, path, overwrite, keeps_contents)
    try:
        target = _resolve_local(str(path))
        _check_not_sources(requested, target, sources)
        if target.exists() or target.is_symlink():
            if not target.is_dir():
                raise OutputError(f"output {requested} exists and is not a directory; remove it or choose another path")
            if not overwrite:
                raise OutputError(f"output {requested} already exists; pass {option('overwrite')} to replace it or "
                                  "choose another path")
            if not keeps_contents:
                check_replaceable(requested, target)
        _check_writable(requested, target)
    except OSError as exc:  # a name too long, a symlink loop among the parents, ...
        raise OutputError(f"cannot use output {requested}: {exc.strerror or exc}; choose another path") from None
    return OutputPlan(requested, target, overwrite, keeps_contents)


def _create_parents(directory: Path) -> list[Path]:
    """``mkdir -p`` that returns what it created (to remove again if the export fails)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
    return missing


@contextlib.contextmanager
def reserve(plan: OutputPlan, wait: bool = False) -> Iterator[None]:
    """Hold the target for the block: parents created, lock taken, leftovers of killed writers cleared."""
    created: list[Path] = []
    if plan.is_remote:
        lock_file = lock_path_for(plan.target, None)
    else:
        try:
            created = _create_parents(plan.target.parent)
        except OSError as exc:
            raise OutputError(f"cannot create output {plan.requested}: {exc.strerror or exc}; choose another path") from None
        lock_file = lock_path_for(plan.target, plan.target.parent)
    try:
        with sigterm_unwinds(), target_lock(plan.requested, lock_file, wait):
            if not plan.is_remote:
                recover_retired(plan.target)
                # another writer may have finished meanwhile
                plan_output(plan.requested, plan.overwrite, keeps_contents=plan.keeps_contents)
                remove_stale(plan.target.parent, plan.target.name)
            remove_stale(Path(tempfile.gettempdir()), plan.target.name)
            yield
    except BaseException:
        for directory in created:  # innermost first; only the empty ones we made
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise


@contextlib.contextmanager
def staged_output(plan: OutputPlan) -> Iterator[Path]:
    """A local directory to build the export in; published whole at ``plan.target`` on success."""
    if plan.is_remote:
        with remote.staged_remote(plan.target, plan.overwrite) as staging:
            yield staging
    else:
        with staged_directory(plan.target) as staging:
            yield staging
