"""The typed request for one export.  The CLI and YAML batches both build this.

Validation here is pure Python (no TensorFlow import), so bad values fail in
milliseconds with a message that lists the valid choices.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

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
INPUT_FORMATS: tuple[str, ...] = ("NHWC", "NCHW")
#: The registry's names, listed here for the CLI's help without importing the targets.
OPTIONAL_TARGET_NAMES: tuple[str, ...] = ("frozen_graph", "onnx", "tensorrt", "tflite", "openvino")
TFLITE_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8", "int8_full")
OPENVINO_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
#: ONNX opsets that tf2onnx 1.17 writes and onnxruntime runs.
OPSETS = range(13, 19)


@dataclass(frozen=True)
class SideInput:
    """One extra ``image_tensor`` signature input (exporter_main_v2's --side_input_*)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class ConversionOptions:
    """Options of the converter targets (``onnx``, ``tensorrt``, ``tflite``, ``openvino``); each reads its own."""

    opset: int = 17
    batch_size: int = 1
    input_shape: tuple[int, int] | None = None  # (height, width) for a model whose resizer has none
    input_format: str = "NHWC"
    #: One .tflite file per precision.
    tflite_precisions: tuple[str, ...] = ("fp32",)
    #: Detections a TFLite file returns (the OD API's export_tflite_graph_tf2 default).
    max_detections: int = 10
    #: JPEG/PNG images that calibrate int8; None: synthetic images, with a warning.
    calibration_images: str | Path | None = None
    openvino_precision: str = "fp32"
    #: Detection agreement each reduced precision must reach, as (precision, fraction) pairs;
    #: a precision left out keeps its default.
    min_agreement: Thresholds = ()

    @property
    def calibrated(self) -> bool:
        """Whether an artifact is quantised from calibration images."""
        return bool({"int8", "int8_full"} & set(self.tflite_precisions)) or self.openvino_precision == "int8"

    def check(self) -> None:
        self._check_onnx()
        self._check_tflite()
        if self.openvino_precision not in OPENVINO_PRECISIONS:
            raise InputError(f"unknown OpenVINO precision {self.openvino_precision!r}; choose one of: "
                             f"{', '.join(OPENVINO_PRECISIONS)}")
        thresholds(self.min_agreement)

    def _check_tflite(self) -> None:
        if not self.tflite_precisions:
            raise InputError(f"no TFLite precision given; choose from: {', '.join(TFLITE_PRECISIONS)}")
        for precision in self.tflite_precisions:
            if precision not in TFLITE_PRECISIONS:
                raise InputError(f"unknown TFLite precision {precision!r}; choose from: {', '.join(TFLITE_PRECISIONS)}")
            if self.tflite_precisions.count(precision) > 1:
                raise InputError(f"TFLite precision {precision} is given twice; give each precision once")
        if self.max_detections < 1:
            raise InputError(f"max detections {self.max_detections} is below 1; give 1 or more")
        if self.calibration_images is not None:
            if not self.calibrated:
                raise InputError("calibration images are used by the int8 files only (TFLite int8 or int8_full, "
                                 "OpenVINO int8); add an int8 precision or leave the calibration images out")
            if "://" in str(self.calibration_images):
                raise InputError(f"calibration images {self.calibration_images} must be a local directory; copy them here")
            calibration_files(Path(self.calibration_images))

    def _check_onnx(self) -> None:
        if self.opset not in OPSETS:
            raise InputError(f"ONNX opset {self.opset} is not supported; choose {OPSETS.start} to {OPSETS.stop - 1}")
        if self.batch_size < 1:
            raise InputError(f"batch size {self.batch_size} is below 1; give a batch size of 1 or more")
        if self.input_shape is not None and (len(self.input_shape) != 2 or min(self.input_shape) < 1):
            raise InputError(f"input shape {self.input_shape} is not a height and width of at least 1; write it like 320,320")
        if self.input_format not in INPUT_FORMATS:
            raise InputError(f"unknown input format {self.input_format!r}; choose one of: {', '.join(INPUT_FORMATS)}")


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

    @property
    def signature_keys(self) -> tuple[str, ...]:
        """The SavedModel's signatures: ``serving_default``, plus each input type's in a single SavedModel."""
        return SIGNATURE_KEYS + (self.input_types if self.single_saved_model else ())

    @property
    def selected_input_type(self) -> str:
        """The input type whose function the frozen graph and converter targets start from."""
        return self.signature_key if self.signature_key in self.input_types else self.input_types[0]

    def check(self) -> None:
        """Raise :class:`InputError` for any value that cannot work, before any heavy work."""
        check_input_types(self.input_types)
        if self.signature_key not in self.signature_keys:
            hint = "" if self.single_saved_model else f" ({SINGLE_SAVED_MODEL_NOTE}: {option('single_saved_model')})"
            raise InputError(
                f"unknown signature key {self.signature_key!r}; this export has: {', '.join(self.signature_keys)}{hint}"
            )
        if self.single_saved_model and "openvino" in self.targets and self.selected_input_type != self.input_types[0]:
            raise InputError(f"OpenVINO converts the SavedModel's serving_default, which is {self.input_types[0]}; give "
                             f"{self.selected_input_type} as the first input type to convert its function")
        if self.frozen_format not in FROZEN_FORMATS:
            raise InputError(f"unknown frozen format {self.frozen_format!r}; choose one of: {', '.join(FROZEN_FORMATS)}")
        self.conversion.check()
        if self.benchmark is not None:
            self.benchmark.check()
        for name in self.targets:
            if name not in OPTIONAL_TARGET_NAMES:
                raise InputError(f"unknown target {name!r}; choose from: {', '.join(OPTIONAL_TARGET_NAMES)}")
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


def parse_input_shape(text: str | None) -> tuple[int, int] | None:
    """``"320,320"`` (or ``320x320``) → (320, 320)."""
    if text is None:
        return None
    parts = re.split(r"[,x]", text.strip())
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise InputError(f"input shape {text!r} is not a height and width; write it like 320,320")
    return int(parts[0]), int(parts[1])
