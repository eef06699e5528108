"""The registry of targets: every artifact kind od-export writes, reads back and verifies.

The order is the order in which an export writes them; the SavedModel comes first
because it is the reference for every other one.  A new target is one module under
this package and one entry here.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from od_export.errors import InputError
from od_export.layout import SAVED_MODEL_DIR, SAVED_MODEL_FILE, Unit, unit_directories
from od_export.manifest import require_finished
from od_export.storage.location import AnyPath
from od_export.targets.base import ExportContext, Target
from od_export.targets.settings import Setting
from od_export.targets.frozen_graph import FrozenGraphTarget
from od_export.targets.onnx import OnnxTarget
from od_export.targets.openvino import OpenVinoTarget
from od_export.targets.saved_model import SavedModelTarget
from od_export.targets.tensorrt import TensorRTTarget
from od_export.targets.tflite import TFLiteTarget
from od_export.targets.triton import TritonTarget

if TYPE_CHECKING:
    from od_export.options import ConversionOptions, ExportOptions

logger = logging.getLogger(__name__)

TARGETS: dict[str, Target] = {
    target.name: target
    for target in (SavedModelTarget(), FrozenGraphTarget(), OnnxTarget(), TensorRTTarget(), TFLiteTarget(),
                   OpenVinoTarget(), TritonTarget())
}
#: Targets a user can ask for (the SavedModel is always written).
OPTIONAL_TARGETS: tuple[str, ...] = tuple(name for name in TARGETS if name != "saved_model")
#: Every target's settings by name, in registry order (targets may share one, as ONNX and TensorRT share the opset).
SETTINGS: dict[str, Setting] = {setting.name: setting for target in TARGETS.values() for setting in target.settings}

__all__ = ["ExportContext", "OPTIONAL_TARGETS", "SETTINGS", "TARGETS", "Target", "calibrates", "check_conversion",
           "check_export_options", "find_artifacts", "find_units", "get_target", "setting_targets",
           "warn_unread_settings"]


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise InputError(f"unknown target {name!r}; choose from: {', '.join(OPTIONAL_TARGETS)}")
    return TARGETS[name]


def setting_targets(name: str) -> tuple[str, ...]:
    """The targets that read the setting ``name``."""
    return tuple(t.name for t in TARGETS.values() if any(s.name == name for s in t.settings))


def warn_unread_settings(conversion: ConversionOptions, targets: list[str]) -> None:
    """Warn of each setting given for which none of ``targets`` is requested (it would change nothing)."""
    for name, _ in conversion.settings:
        readers = setting_targets(name)
        if readers and not set(readers) & set(targets):
            logger.warning(f"{name} is a setting of the {', '.join(readers)} target"
                           f"{'s' if len(readers) > 1 else ''}, none of which is requested: it changes nothing")


def calibrates(conversion: ConversionOptions) -> bool:
    """Whether any file ``conversion`` asks for is quantised from calibration images."""
    return any(target.calibrates(conversion) for target in TARGETS.values())


def check_conversion(conversion: ConversionOptions) -> None:
    """Each setting given against its target's declaration, then what needs no target."""
    for name, value in conversion.settings:
        if name not in SETTINGS:
            raise InputError(f"unknown target setting {name!r}; known settings: {', '.join(SETTINGS)}")
        SETTINGS[name].check(value)
    conversion.check(calibrated=calibrates(conversion))


def check_export_options(options: ExportOptions) -> None:
    """Every check of an export request that needs no TensorFlow: its own, its targets' names and settings."""
    options.check()
    for name in options.targets:
        get_target(name).check_options(options)
    if not options.postprocessing:
        _check_raw_targets(options.targets)
    check_conversion(options.conversion)


def _check_raw_targets(names: tuple[str, ...]) -> None:
    """Without post-processing: at least one target that can, and none that cannot (the reference keeps its own)."""
    takers = [name for name, target in TARGETS.items() if target.raw_outputs]
    refused = [name for name in names if not TARGETS[name].raw_outputs and name != "frozen_graph"]
    if refused:
        raise InputError(f"the {refused[0]} target cannot be written without post-processing (only "
                         f"{' and '.join(takers)} can); export it in another run, with post-processing")
    if not any(name in takers for name in names):
        raise InputError(f"without post-processing only the {' and '.join(takers)} files are written (the SavedModel "
                         f"and frozen graph keep theirs, as the reference); add {' or '.join(takers)} to the targets")


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


def find_units(export_dir: AnyPath, staged: bool = False) -> list[Unit]:
    """Every unit of an export (od-export's or exporter_main_v2's), or a bare SavedModel directory."""
    if not export_dir.is_dir():
        raise InputError(f"{export_dir} is not a directory; pass the output directory of an export")
    if not staged:
        require_finished(export_dir)
    if (export_dir / SAVED_MODEL_FILE).is_file():  # a bare SavedModel directory
        return [Unit(export_dir.name, export_dir, export_dir)]
    units = [Unit(d.name, d, d / SAVED_MODEL_DIR, find_artifacts(d)) for d in unit_directories(export_dir)]
    if not units:
        raise InputError(f"no SavedModel found in {export_dir}; pass an export written by od-export or exporter_main_v2")
    return units
