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
from pathlib import Path

from od_export.errors import CheckpointError

STATE_FILE = "checkpoint"
_STATE_LINE = re.compile(r'^\s*model_checkpoint_path\s*:\s*"(.*)"\s*$', re.M)
_TRAILING_NUMBER = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class ResolvedCheckpoint:
    prefix: Path
    directory: Path
    available: tuple[str, ...]
    note: str = ""

    @property
    def name(self) -> str:
        return self.prefix.name


def _number(name: str) -> tuple[int, str]:
    match = _TRAILING_NUMBER.search(name)
    return (int(match.group(1)) if match else -1, name)


def available_checkpoints(directory: Path) -> tuple[str, ...]:
    """Checkpoint prefixes (``ckpt-3``, ...) with an index file in ``directory``, oldest first."""
    names = [p.name[: -len(".index")] for p in directory.glob("*.index") if p.is_file()]
    return tuple(sorted(names, key=_number))


def prefix_exists(prefix: Path) -> bool:
    return prefix.with_name(prefix.name + ".index").is_file()


def _checkpoint_directory(path: Path) -> Path:
    """Descend into a zoo-style ``checkpoint/`` folder when the directory itself has none."""
    nested = path / STATE_FILE
    if nested.is_dir() and not available_checkpoints(path):
        return nested
    return path


def _listing(available: tuple[str, ...]) -> str:
    return ", ".join(available) if available else "none"


def resolve_checkpoint(path: str | Path, choice: str = "latest") -> ResolvedCheckpoint:
    """Return the checkpoint prefix that ``--checkpoint-dir path --checkpoint choice`` means."""
    path = Path(path)
    if path.name.endswith(".index") or ".data-" in path.name:  # a file of a checkpoint
        path = path.with_name(re.sub(r"\.(index|data-\d+-of-\d+)$", "", path.name))
    if not path.exists() and prefix_exists(path):
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


def _explicit_choice(directory: Path, available: tuple[str, ...], choice: str) -> ResolvedCheckpoint:
    candidates = [directory / choice, Path(choice)]
    if choice.isdigit():
        candidates.insert(0, directory / f"ckpt-{choice}")
    for candidate in candidates:
        if prefix_exists(candidate):
            return ResolvedCheckpoint(candidate, candidate.parent, available_checkpoints(candidate.parent))
    raise CheckpointError(
        f"checkpoint {choice!r} not found in {directory}; checkpoints present: {_listing(available)}"
    )


def _from_state_file(directory: Path, available: tuple[str, ...], state_file: Path) -> ResolvedCheckpoint:
    match = _STATE_LINE.search(state_file.read_text(encoding="utf-8", errors="replace"))
    if match is None:
        latest = available[-1]
        return ResolvedCheckpoint(
            directory / latest, directory, available,
            note=f"{state_file} names no checkpoint; using the highest present, {latest}",
        )
    named = Path(match.group(1))
    prefix = named if named.is_absolute() else directory / named
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
        f"{_listing(available)}; pass --checkpoint {available[-1]} or fix the state file"
    )
