"""The export layout, known in one place: directory and file names, and how to read an export back.

An export holds one *unit* per input type (the output directory itself when there is
one input type, else one sub-directory named after each).  A unit is exporter_main_v2's
layout (``saved_model/``, ``checkpoint/``, ``pipeline.config``) plus one directory per
further target (``frozen_graph/``, ``onnx/``, …); each target recognises its own files
(:meth:`od_export.targets.base.Target.find`); :func:`od_export.targets.find_units` reads
an export back as its units and their artifacts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from od_export.storage.location import AnyPath
from od_export.storage.owners import is_od_export_temporary

SAVED_MODEL_DIR = "saved_model"
SAVED_MODEL_FILE = "saved_model.pb"
CHECKPOINT_DIR = "checkpoint"
PIPELINE_CONFIG_NAME = "pipeline.config"
IO_SPEC_NAME = "io_spec.json"


def unit_relative(input_type: str, single: bool) -> Path:
    """Where one input type's unit lives inside the export (``.`` for a single input type)."""
    return Path() if single else Path(input_type)


@dataclass(frozen=True)
class Unit:
    """One SavedModel and the artifacts beside it, keyed by target name."""

    name: str
    directory: AnyPath
    saved_model: AnyPath
    artifacts: dict[str, AnyPath] = field(default_factory=dict)


def is_unit(directory: AnyPath) -> bool:
    return (directory / SAVED_MODEL_DIR / SAVED_MODEL_FILE).is_file()


def _visible_subdirectories(path: AnyPath) -> list[AnyPath]:
    """Sub-directories, without od-export's own temporary ones (never part of an export)."""
    return sorted((p for p in path.iterdir() if p.is_dir() and not is_od_export_temporary(p.name)), key=str)


def unit_directories(export_dir: AnyPath) -> list[AnyPath]:
    """The export itself when it is a unit, else each sub-directory that is one."""
    if is_unit(export_dir):
        return [export_dir]
    return [p for p in _visible_subdirectories(export_dir) if is_unit(p)]


def looks_like_export(path: AnyPath) -> bool:
    return (path / SAVED_MODEL_DIR).is_dir() or any((p / SAVED_MODEL_DIR).is_dir() for p in _visible_subdirectories(path))
