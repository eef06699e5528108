"""The registry of targets: every artifact kind od-export writes, reads back and verifies.

The order is the order in which an export writes them; the SavedModel comes first
because it is the reference for every other one.  A new target is one module under
this package and one entry here.
"""
from __future__ import annotations

from od_export.errors import InputError
from od_export.storage.location import AnyPath
from od_export.targets.base import ExportContext, Target
from od_export.targets.frozen_graph import FrozenGraphTarget
from od_export.targets.onnx import OnnxTarget
from od_export.targets.openvino import OpenVinoTarget
from od_export.targets.saved_model import SavedModelTarget
from od_export.targets.tensorrt import TensorRTTarget
from od_export.targets.tflite import TFLiteTarget

TARGETS: dict[str, Target] = {
    target.name: target
    for target in (SavedModelTarget(), FrozenGraphTarget(), OnnxTarget(), TensorRTTarget(), TFLiteTarget(),
                   OpenVinoTarget())
}
#: Targets a user can ask for (the SavedModel is always written).
OPTIONAL_TARGETS: tuple[str, ...] = tuple(name for name in TARGETS if name != "saved_model")

__all__ = ["ExportContext", "OPTIONAL_TARGETS", "TARGETS", "Target", "find_artifacts", "get_target"]


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise InputError(f"unknown target {name!r}; choose from: {', '.join(OPTIONAL_TARGETS)}")
    return TARGETS[name]


def find_artifacts(unit_dir: AnyPath) -> dict[str, AnyPath]:
    """Every non-reference artifact in an export unit, by target name, in registry order."""
    found = {}
    for name, target in TARGETS.items():
        if name == "saved_model":
            continue
        artifact = target.find(unit_dir)
        if artifact is not None:
            found[name] = artifact
    return found
