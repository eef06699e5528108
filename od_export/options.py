"""The typed request for one export.  The CLI and YAML batches both build this.

Validation here is pure Python (no TensorFlow import), so bad values fail in
milliseconds with a message that lists the valid choices.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from od_export.errors import InputError, option
from od_export.verify.tolerance import Thresholds, thresholds

INPUT_TYPES: tuple[str, ...] = (
    "image_tensor",
    "float_image_tensor",
    "encoded_image_string_tensor",
    "tf_example",
)
#: Accepted when the installed OD API has it (mask models with predict_masks_from_boxes).
OPTIONAL_INPUT_TYPES: tuple[str, ...] = ("image_and_boxes_tensor",)
SIGNATURE_KEYS: tuple[str, ...] = ("serving_default",)
#: With one SavedModel for every input type, each input type is a signature key too.
SINGLE_SAVED_MODEL_NOTE = "one SavedModel for every input type adds one signature per input type"
FROZEN_FORMATS: tuple[str, ...] = ("pb", "pbtxt", "both")
SIDE_INPUT_DTYPES: tuple[str, ...] = ("float32", "float16", "int32", "int64", "uint8", "string", "bool")


@dataclass(frozen=True)
class SideInput:
    """One extra ``image_tensor`` signature input (exporter_main_v2's --side_input_*)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class ConversionOptions:
    """The converter targets' settings as given, by name; each target declares its own
    (:mod:`od_export.targets.settings`) and reads it, or its default, with :meth:`value`."""

    #: (setting name, value) pairs, sorted by name; build with :meth:`of`.
    settings: tuple[tuple[str, Any], ...] = ()
    #: JPEG/PNG images that calibrate the int8 files; None: the run's training records.
    calibration_images: str | Path | None = None
    #: Detection agreement each reduced precision must reach, as (precision, fraction) pairs;
    #: a precision left out keeps its default.
    min_agreement: Thresholds = ()

    @classmethod
    def of(cls, calibration_images: str | Path | None = None, min_agreement: Thresholds = (),
           **settings: Any) -> ConversionOptions:
        """``ConversionOptions.of(opset=15, tflite_precisions=("fp32", "int8"))``."""
        return cls(tuple(sorted(settings.items())), calibration_images, min_agreement)

    def given(self) -> dict[str, Any]:
        return dict(self.settings)

    def value(self, setting: Any) -> Any:
        """The value given for ``setting`` (a :class:`~od_export.targets.settings.Setting`), else its default."""
        return self.given().get(setting.name, setting.default)

    def check(self, calibrated: bool) -> None:
        """What needs no target: the thresholds, and calibration images only where an int8 file
        (``calibrated``, as the registry says) is asked for.  The targets check their own settings
        (:func:`od_export.targets.check_conversion`)."""
        thresholds(self.min_agreement)
        if self.calibration_images is None:
            return
        if not calibrated:
            raise InputError("calibration images are used by the int8 files only (TFLite int8 or int8_full, "
                             "OpenVINO int8); add an int8 precision or leave the calibration images out")
        if "://" in str(self.calibration_images):
            raise InputError(f"calibration images {self.calibration_images} must be a local directory; copy them here")
        calibration_files(Path(self.calibration_images))


@dataclass(frozen=True)
class BenchmarkRequest:
    """``od-export benchmark`` of a finished export, with gates that fail it (see :mod:`od_export.benchmark`)."""

    max_images: int = 100  # 0: every evaluation image
    min_map: float | None = None
    max_map_drop: float | None = None
    #: Evaluation TFRecords (default: the config's eval_input_reader).
    data: tuple[str, ...] = ()

    def check(self) -> None:
        if self.max_images < 0:
            raise InputError(f"benchmark images must be 0 (all) or more, not {self.max_images}")
        for name, value in (("min_map", self.min_map), ("max_map_drop", self.max_map_drop)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise InputError(f"benchmark {name} is a COCO mAP figure between 0 and 1, not {value:g}")


@dataclass(frozen=True)
class ExportOptions:
    """Paths may be local (``str``/``Path``) or URLs (``gs://…``) as ``str``."""

    pipeline_config: str | Path
    checkpoint_dir: str | Path
    output_dir: str | Path
    input_types: tuple[str, ...] = ("image_tensor",)
    checkpoint: str = "latest"
    config_overrides: tuple[str, ...] = ()
    side_inputs: tuple[SideInput, ...] = ()
    signature_key: str = "serving_default"
    freeze: bool = True
    frozen_format: str = "pb"
    full_object_graph: bool = False
    overwrite: bool = False
    validate: bool = False
    wait: bool = False
    #: Publish the artifacts that pass their checks and record those that fail (the result is then not ok).
    keep_going: bool = False
    #: Targets beyond the SavedModel and frozen graph (see :mod:`od_export.targets`).
    targets: tuple[str, ...] = ()
    conversion: ConversionOptions = field(default_factory=lambda: ConversionOptions())
    #: One ``saved_model/`` for every input type (a signature each) instead of one unit per input type.
    single_saved_model: bool = False
    #: Benchmark the published export; a gate it fails makes the result not ok.
    benchmark: BenchmarkRequest | None = None
    #: False: the targets that can (ONNX) end at the raw boxes and scores, before non-maximum suppression.
    postprocessing: bool = True
    #: image_tensor's batch dimension open (None) instead of the exporter's 1, in the SavedModel and what follows it.
    dynamic_batch: bool = False
    #: The run's label map (default: the one the config's input readers name); its names go into every artifact.
    label_map: str | Path | None = None

    @property
    def signature_keys(self) -> tuple[str, ...]:
        """The SavedModel's signatures: ``serving_default``, plus each input type's in a single SavedModel."""
        return SIGNATURE_KEYS + (self.input_types if self.single_saved_model else ())

    @property
    def selected_input_type(self) -> str:
        """The input type whose function the frozen graph and converter targets start from."""
        return self.signature_key if self.signature_key in self.input_types else self.input_types[0]

    def check(self) -> None:
        """Raise :class:`InputError` for any value that cannot work, before any heavy work.

        What the targets declare (their names, their settings) is checked by the registry:
        :func:`od_export.targets.check_export_options` runs this and those checks."""
        check_input_types(self.input_types)
        if self.signature_key not in self.signature_keys:
            hint = "" if self.single_saved_model else f" ({SINGLE_SAVED_MODEL_NOTE}: {option('single_saved_model')})"
            raise InputError(
                f"unknown signature key {self.signature_key!r}; this export has: {', '.join(self.signature_keys)}{hint}"
            )
        if self.frozen_format not in FROZEN_FORMATS:
            raise InputError(f"unknown frozen format {self.frozen_format!r}; choose one of: {', '.join(FROZEN_FORMATS)}")
        if self.benchmark is not None:
            self.benchmark.check()
        if self.side_inputs and self.input_types != ("image_tensor",):
            raise InputError(f"side inputs work with {option('input_types')} image_tensor only (as in exporter_main_v2)")


CALIBRATION_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Enough images to settle the activation ranges of these models; more only adds time.
MAX_CALIBRATION_IMAGES = 100


def calibration_files(directory: Path) -> list[Path]:
    """The JPEG/PNG files of a calibration directory (the first 100 by name)."""
    if not directory.is_dir():
        raise InputError(f"calibration images directory {directory} does not exist; give a directory of JPEG or PNG images")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in CALIBRATION_SUFFIXES)
    if not files:
        raise InputError(f"no JPEG or PNG images in {directory}; give a directory of representative images for int8")
    return files[:MAX_CALIBRATION_IMAGES]


def check_input_types(input_types: tuple[str, ...]) -> None:
    if not input_types:
        raise InputError(f"no input type given; choose from: {', '.join(INPUT_TYPES)}")
    for input_type in input_types:
        if input_type not in INPUT_TYPES + OPTIONAL_INPUT_TYPES:
            raise InputError(f"unknown input type {input_type!r}; choose from: {', '.join(INPUT_TYPES)}")
    duplicates = sorted({t for t in input_types if input_types.count(t) > 1})
    if duplicates:
        raise InputError(f"input type {duplicates[0]} is given twice; give each input type once")


def parse_side_inputs(shapes: str, dtypes: str, names: str) -> tuple[SideInput, ...]:
    """Parse exporter_main_v2's side-input flags, without its ``eval``.

    ``shapes`` is ``/``-separated lists of comma-separated dims (``-1`` or ``None`` for
    unknown), ``dtypes`` comma-separated (``tf.float32`` or ``float32``), ``names``
    comma-separated.  All three must list the same number of inputs.
    """
    shape_list = [s for s in shapes.split("/")] if shapes else []
    dtype_list = [d.strip() for d in dtypes.split(",")] if dtypes else []
    name_list = [n.strip() for n in names.split(",")] if names else []
    if not (len(shape_list) == len(dtype_list) == len(name_list)) or not name_list:
        raise InputError(
            "side inputs need as many shapes (/-separated), types and names (comma-separated); "
            f"got {len(shape_list)}, {len(dtype_list)} and {len(name_list)}"
        )
    result = []
    for raw_shape, raw_dtype, name in zip(shape_list, dtype_list, name_list):
        dtype = re.sub(r"^(tf\.)", "", raw_dtype)
        if dtype not in SIDE_INPUT_DTYPES:
            raise InputError(f"side input {name!r} has unknown type {raw_dtype!r}; use one of: {', '.join(SIDE_INPUT_DTYPES)}")
        try:
            dims = ast.literal_eval("[" + raw_shape.replace("None", "-1") + "]")
        except (ValueError, SyntaxError) as exc:
            raise InputError(f"side input {name!r} has a malformed shape {raw_shape!r}; write it like 1,-1,4") from exc
        if not all(isinstance(d, int) for d in dims):
            raise InputError(f"side input {name!r} has a malformed shape {raw_shape!r}; write it like 1,-1,4")
        result.append(SideInput(name, dtype, tuple(None if d < 0 else d for d in dims)))
    return tuple(result)
