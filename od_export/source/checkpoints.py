"""Find the checkpoint prefix a user means, in every layout training runs leave behind.

Pure file-system logic (no TensorFlow), so every layout is unit-tested quickly:

* a training ``model_dir`` with a ``checkpoint`` state file (latest by default);
* the same without the state file (the highest ``ckpt-N`` is used, and we say so);
* a model-zoo style directory whose checkpoints live in ``checkpoint/``;
* an explicit prefix (``.../ckpt-7``), or ``--checkpoint ckpt-7`` within the directory;
* a state file that names checkpoints which are gone: the error lists those present.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from od_export.errors import CheckpointError, option
from od_export.storage.location import AnyPath, is_remote, location

STATE_FILE = "checkpoint"
_STATE_LINE = re.compile(r'^\s*model_checkpoint_path\s*:\s*"(.*)"\s*$', re.M)
_TRAILING_NUMBER = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class ResolvedCheckpoint:
    prefix: AnyPath
    directory: AnyPath
    available: tuple[str, ...]
    note: str = ""

    @property
    def name(self) -> str:
        return self.prefix.name


def _number(name: str) -> tuple[int, str]:
    match = _TRAILING_NUMBER.search(name)
    return (int(match.group(1)) if match else -1, name)


def available_checkpoints(directory: AnyPath) -> tuple[str, ...]:
    """Checkpoint prefixes (``ckpt-3``, ...) with an index file in ``directory``, oldest first."""
    try:
        names = [p.name[: -len(".index")] for p in directory.glob("*.index") if p.is_file()]
    except OSError as exc:  # unreadable directory, symlink loop
        raise CheckpointError(f"cannot list checkpoint directory {directory}: {exc.strerror or exc}") from exc
    return tuple(sorted(names, key=_number))


def prefix_exists(prefix: AnyPath) -> bool:
    if not prefix.name:  # "." or "/": a directory, never a prefix
        return False
    return prefix.with_name(prefix.name + ".index").is_file()


def _checkpoint_directory(path: AnyPath) -> AnyPath:
    """Descend into a zoo-style ``checkpoint/`` folder when the directory itself has none."""
    nested = path / STATE_FILE
    if nested.is_dir() and not available_checkpoints(path):
        return nested
    return path


def is_prefix(path: AnyPath) -> bool:
    """A checkpoint prefix (``run/ckpt-7``) rather than a directory of checkpoints.

    Checked before ``is_dir``: on object stores (and TF's ``ram://``) any prefix of an
    object name counts as a directory.
    """
    if not prefix_exists(path):
        return False
    try:
        return not (path.is_dir() and available_checkpoints(path))
    except CheckpointError:
        return True


def _listing(available: tuple[str, ...]) -> str:
    return ", ".join(available) if available else "none"


def resolve_checkpoint(path: str | AnyPath, choice: str = "latest") -> ResolvedCheckpoint:
    """Return the checkpoint prefix that ``--checkpoint-dir path --checkpoint choice`` means."""
    path = location(path)
    if path.name.endswith(".index") or ".data-" in path.name:  # a file of a checkpoint
        path = path.with_name(re.sub(r"\.(index|data-\d+-of-\d+)$", "", path.name))
    if is_prefix(path):
        directory = path.parent
        return ResolvedCheckpoint(path, directory, available_checkpoints(directory))
    if not path.exists():
        raise CheckpointError(f"checkpoint directory {path} does not exist; pass your training run's model_dir")
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a checkpoint directory or prefix; pass your training run's model_dir")
    directory = _checkpoint_directory(path)
    available = available_checkpoints(directory)
    if choice != "latest":
        return _explicit_choice(directory, available, choice)
    if not available:
        raise CheckpointError(
            f"no checkpoint (ckpt-N.index) in {directory}; pass the directory your training run wrote checkpoints to"
        )
    state_file = directory / STATE_FILE
    if state_file.is_file():
        return _from_state_file(directory, available, state_file)
    latest = available[-1]
    return ResolvedCheckpoint(
        directory / latest,
        directory,
        available,
        note=f"{directory} has no `checkpoint` state file; using the highest checkpoint present, {latest}",
    )


def _explicit_choice(directory: AnyPath, available: tuple[str, ...], choice: str) -> ResolvedCheckpoint:
    candidates = [directory / choice, location(choice)]
    if choice.isdigit():
        candidates.insert(0, directory / f"ckpt-{choice}")
    for candidate in candidates:
        if prefix_exists(candidate):
            return ResolvedCheckpoint(candidate, candidate.parent, available_checkpoints(candidate.parent))
    raise CheckpointError(
        f"checkpoint {choice!r} not found in {directory}; checkpoints present: {_listing(available)}"
    )


def _read_state_file(state_file: AnyPath) -> str:
    try:
        return state_file.read_bytes()[:1 << 20].decode("utf-8", errors="replace")
    except OSError as exc:
        raise CheckpointError(f"cannot read {state_file}: {exc.strerror or exc}") from exc


def _from_state_file(directory: AnyPath, available: tuple[str, ...], state_file: AnyPath) -> ResolvedCheckpoint:
    match = _STATE_LINE.search(_read_state_file(state_file))
    if match is None:
        latest = available[-1]
        return ResolvedCheckpoint(
            directory / latest, directory, available,
            note=f"{state_file} names no checkpoint; using the highest present, {latest}",
        )
    text = match.group(1)
    named = location(text)
    prefix = named if is_remote(text) or named.is_absolute() else directory / text
    if prefix_exists(prefix):
        return ResolvedCheckpoint(prefix, prefix.parent, available)
    if named.is_absolute() and prefix_exists(directory / named.name):
        # A run copied from another machine: the state file keeps the old absolute path.
        return ResolvedCheckpoint(
            directory / named.name, directory, available,
            note=f"{state_file} names {named}, which is elsewhere; using {named.name} from {directory}",
        )
    raise CheckpointError(
        f"{state_file} names {named.name}, which is not in {directory}; checkpoints present: "
        f"{_listing(available)}; pass {option('checkpoint')} {available[-1]} or fix the state file"
    )
