"""``tflite/model_{fp32,fp16,int8,int8_full}.tflite``: the OD API's TFLite path, converted and verified in LiteRT.

The model goes through the OD API's own TFLite modules
(``object_detection.export_tflite_graph_lib_tf2``), in memory, with no intermediate
SavedModel:

* **SSD** (MobileNet, FPN-lite): ``SSDModule`` ends the graph at the raw box
  encodings and converted class scores, plus the anchors as a constant; the TFLite
  converter turns its ``experimental_implements`` function into the
  ``TFLite_Detection_PostProcess`` op, with the config's NMS thresholds.  Its input
  is the image *after* the model's normalisation (``io_spec.json`` gives mean and
  std), as every TFLite detection model from the OD API takes it.
* **CenterNet**: ``CenterNetModule`` keeps preprocessing and post-processing in the
  graph; its input is raw pixel values.

Both take one image of the fixed resizer's size; EfficientDet and configs with a padded
``keep_aspect_ratio_resizer`` take the padded square, resized and padded by the client
(:mod:`.tflite_resize`).  A CenterNet keypoint model's file also gives
``detection_keypoints`` and ``detection_keypoint_scores``.  The outputs are named after the
SavedModel's (``detection_boxes``, ``detection_classes``, ``detection_scores``,
``num_detections``) in the file's signature, and ``io_spec.json`` maps each output
index to its meaning, so nobody has to guess the order of the op's four outputs.

``int8_full`` is the full-integer file Edge TPU and NPU delegates need: uint8 input
and outputs (``io_spec.json`` gives each one's scale and zero point), and for SSD only
``TFLite_Detection_PostProcess`` and the conversions around it in float, which
``io_spec.json`` lists under ``float_ops``.  CenterNet has none (its peak finding
needs float ops).

Each file carries TFLite Support metadata (:mod:`.tflite_metadata`): input
normalisation, output roles and the class names, as the Task Library reads them.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from od_export.errors import InputError
from od_export.layout import IO_SPEC_NAME
from od_export.source.pipeline_config import model_input_size, num_classes
from od_export.storage.location import AnyPath
from od_export.targets.base import ArtifactRunner, ExportContext, Target
from od_export.targets.onnx import STRING_INPUT_TYPES, is_raw
from od_export.targets.settings import Setting
from od_export.targets.tflite_check import describe_file, inspect_tflite, tflite_runners, verify_tflite_directory
from od_export.targets.tflite_convert import carry_over_precisions, convert
from od_export.targets.tflite_metadata import metadata_summary, with_metadata
from od_export.targets.tflite_raw import convert_raw, verify_raw
from od_export.targets.tflite_keypoints import check_keypoint_tasks, fixed_shape_keypoints
from od_export.targets.tflite_resize import check_tflite_request, module_config, resize_spec
from od_export.targets.tflite_runner import KEYPOINT_KEYS
from od_export.verify.reference import Reference
from od_export.verify.report import ArtifactCheck, Tolerance

if TYPE_CHECKING:
    from od_export.options import ConversionOptions, ExportOptions

logger = logging.getLogger(__name__)

TFLITE_DIR = "tflite"
#: The order in which the OD API's modules return their outputs (the op's own order, reversed).
OUTPUT_KEYS = ("num_detections", "detection_scores", "detection_classes", "detection_boxes")
TFLITE_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8", "int8_full")

def _check_max_detections(count: int) -> None:
    if count < 1:
        raise InputError(f"max detections {count} is below 1; give 1 or more")


PRECISIONS = Setting("tflite_precisions", ("fp32",), "one file each", repeatable=True, choices=TFLITE_PRECISIONS,
                     flag="--tflite-precision", metavar="P", label="TFLite precision")
MAX_DETECTIONS = Setting("max_detections", 10, "detections per image (as the OD API's export_tflite_graph_tf2)",
                         kind=int, check_value=_check_max_detections)
#: The precisions quantised from calibration images.
CALIBRATED = ("int8", "int8_full")


def tflite_file(precision: str) -> str:
    return f"model_{precision}.tflite"


def _detection_module(context: ExportContext, max_detections: int) -> Any:
    """The OD API's TFLite module for the model, holding the restored weights."""
    from object_detection import export_tflite_graph_lib_tf2 as lib

    if context.model is None:
        raise InputError("the tflite target rebuilds the model, and this export has no checkpoint/ckpt-0 beside its "
                         "SavedModel; export from the training checkpoint instead")
    if context.architecture == "ssd":
        settings = context.config.model.ssd.post_processing.batch_non_max_suppression
        return lib.SSDModule(module_config(context.config), context.model, max_detections,
                             use_regular_nms=not settings.use_class_agnostic_nms)
    return _center_net_module(lib, context, max_detections)


def _center_net_module(lib: Any, context: ExportContext, max_detections: int) -> Any:
    """CenterNetModule builds its own model (it edits a copy of the config): give it our weights."""
    import tempfile

    from od_export import compat
    from od_export.source.model import create_variables, restore_checked

    tf = compat.import_tensorflow()
    config = module_config(context.config)
    keypoints = bool(config.model.center_net.keypoint_estimation_task)
    module = lib.CenterNetModule(config, max_detections, include_keypoints=keypoints)
    if keypoints:
        fixed_shape_keypoints(module.get_model())
    create_variables(module.get_model(), config)
    with tempfile.TemporaryDirectory(prefix=".od-export-tflite-") as scratch:
        prefix = tf.train.Checkpoint(model=context.model).save(str(Path(scratch) / "weights"))
        restore_checked(module.get_model(), prefix)
    return module


def named_function(module: Any) -> Any:
    """The module's inference function with outputs named as the SavedModel's, at its fixed input shape."""
    from od_export import compat

    tf = compat.import_tensorflow()

    def serve(input_tensor: Any) -> dict[str, Any]:
        outputs = module.inference_fn(input_tensor)
        return dict(zip(KEYPOINT_KEYS + OUTPUT_KEYS if len(outputs) > len(OUTPUT_KEYS) else OUTPUT_KEYS, outputs))

    spec = tf.TensorSpec(module.input_shape(), tf.float32, name="input_tensor")
    return tf.function(serve, input_signature=[spec], autograph=False).get_concrete_function()


def normalization(context: ExportContext, height: int, width: int) -> tuple[list[float], list[float]]:
    """Per-channel (mean, std) such that the TFLite input is ``(pixel - mean) / std``.

    SSD's TFLite graph starts after the model's preprocessing, so that is measured
    from the model itself (it is affine per channel for every SSD feature extractor);
    CenterNet's graph preprocesses, so its input is plain pixels.
    """
    if context.architecture != "ssd":
        return [0.0] * 3, [1.0] * 3
    from od_export import compat

    tf = compat.import_tensorflow()
    low, _ = context.model.preprocess(tf.zeros([1, height, width, 3], tf.float32))
    high, _ = context.model.preprocess(tf.fill([1, height, width, 3], 255.0))
    low, high = low.numpy()[0, 0, 0].astype(np.float64), high.numpy()[0, 0, 0].astype(np.float64)
    scale = (high - low) / 255.0
    return [float(v) for v in -low / scale], [float(v) for v in 1.0 / scale]


def _writes_metadata() -> bool:
    """Whether tflite-support's metadata writer is installed (a warning says what is lost when not)."""
    from od_export import compat_extras

    if compat_extras.tflite_metadata_schema_available():
        return True
    logger.warning("the TFLite files carry no metadata, which the TFLite Task Library's ObjectDetector needs; "
                   + compat_extras.TFLITE_SUPPORT_HINT)
    return False


class TFLiteTarget(Target):
    name = "tflite"
    directory = TFLITE_DIR
    extra = "tflite"
    modules = ("ai_edge_litert",)
    settings = (PRECISIONS, MAX_DETECTIONS)
    raw_outputs = True  # fp32 only, converted from the serving function (see tflite_raw)
    class_offset = 1  # the OD API's TFLite outputs number classes from 0

    def check_options(self, options: ExportOptions) -> None:
        if not options.postprocessing and options.conversion.value(PRECISIONS) != ("fp32",):
            raise InputError("without post-processing the TFLite file is written in fp32 only (reduced precision is "
                             "judged by its detections, which a raw file does not give); ask for fp32 alone")

    def calibrates(self, conversion: ConversionOptions) -> bool:
        return bool(set(CALIBRATED) & set(conversion.value(PRECISIONS)))

    def check_request(self, architecture: str, config: Any, options: ExportOptions) -> None:
        check_tflite_request(architecture, config)
        if architecture == "center_net":
            check_keypoint_tasks(config)
        if architecture == "center_net" and "int8_full" in options.conversion.value(PRECISIONS):
            raise InputError("CenterNet finds its peaks with float ops that int8 cannot express, so it has no "
                             "full-integer (int8_full) TFLite file; use int8, whose input and outputs stay float32")

    def unsupported_reason(self, input_type: str) -> str:
        if input_type in STRING_INPUT_TYPES:
            return "a TFLite file takes pixels; it is written beside the image_tensor and float_image_tensor SavedModels"
        return ""

    def write(self, context: ExportContext, directory: Path) -> list[Path]:
        """One conversion per precision, shared by every unit of the export."""
        if self.name not in context.shared:
            context.shared[self.name] = self._convert(context)
        files, spec = context.shared[self.name]
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name, data in files.items():
            (directory / name).write_bytes(data)
            written.append(directory / name)
        (directory / IO_SPEC_NAME).write_text(json.dumps({**spec, "input_type": context.input_type}, indent=2) + "\n",
                                              encoding="utf-8")
        return written + [directory / IO_SPEC_NAME]

    def _convert(self, context: ExportContext) -> tuple[dict[str, bytes], dict[str, Any]]:
        from od_export.source.calibration import shared_calibration_set

        if not context.options.postprocessing:
            return convert_raw(context)
        conversion = context.options.conversion
        height, width = model_input_size(context.config)
        module = _detection_module(context, conversion.value(MAX_DETECTIONS))
        concrete = named_function(module)
        mean, std = normalization(context, height, width)
        files: dict[str, bytes] = {}
        spec: dict[str, Any] = {
            "format": "tflite", "architecture": context.architecture, "input_size": [height, width],
            "resize": resize_spec(context.config, height, width),
            "normalization": {"mean": mean, "std": std, "formula": "x = (pixel - mean) / std, per RGB channel, "
                              "after resizing the picture as `resize` says"},
            "max_detections": conversion.value(MAX_DETECTIONS), "files": {},
        }
        if context.architecture == "ssd":
            settings = context.config.model.ssd.post_processing.batch_non_max_suppression
            spec["postprocessing"] = ("TFLite_Detection_PostProcess, " + (
                "fast (class-agnostic) NMS" if settings.use_class_agnostic_nms else "regular (per-class) NMS"))
            spec["max_detections_per_class"] = int(settings.max_detections_per_class)
            spec["boxes_clipped"] = False
        labels = context.labels.lines(num_classes(context.config)) if context.labels is not None else None
        metadata = _writes_metadata()
        if not metadata:
            spec["metadata"] = "none: tflite-support's metadata writer is not installed"
        for precision in conversion.value(PRECISIONS):
            logger.info(f"converting to TFLite ({precision})")
            data = convert(concrete, precision, context, spec["resize"], (mean, std))
            entry = {"file": tflite_file(precision), **describe_file(data, integer=precision.startswith("int8"))}
            if metadata:
                data = with_metadata(data, entry, spec["normalization"], context.architecture, labels, spec["resize"])
                entry["metadata"] = metadata_summary(entry, spec["normalization"], labels is not None, spec["resize"])
            files[tflite_file(precision)] = data
            spec["files"][precision] = entry
            if precision in ("int8", "int8_full"):
                spec["files"][precision]["calibration"] = shared_calibration_set(context).source
        return files, spec

    def carry_over(self, previous: Path, written: Path) -> list[str]:
        return carry_over_precisions(previous, written)

    def find(self, unit_dir: AnyPath) -> AnyPath | None:
        directory = unit_dir / TFLITE_DIR
        return directory if (directory / IO_SPEC_NAME).is_file() else None

    file_description = "a .tflite file"

    def claims(self, path: AnyPath) -> bool:
        return path.suffix == ".tflite"

    def inspect_file(self, path: AnyPath) -> dict[str, Any]:
        self.check_available()
        return inspect_tflite(path)

    def inspect_artifact(self, artifact: AnyPath) -> dict[str, Any]:
        spec = json.loads((artifact / IO_SPEC_NAME).read_text(encoding="utf-8"))
        return {"path": str(artifact), "files": spec["files"], **({"labels": spec["labels"]} if "labels" in spec else {})}

    def discard(self, unit_dir: Path, check_name: str) -> None:
        """Only the failed precision's file goes (``tflite:int8``); the directory goes with its last file."""
        directory = unit_dir / TFLITE_DIR
        spec_path = directory / IO_SPEC_NAME
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        entry = spec["files"].pop(check_name.partition(":")[2], None)
        if entry is None or not spec["files"]:
            return super().discard(unit_dir, check_name)
        (directory / entry["file"]).unlink(missing_ok=True)
        spec_path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")

    def runners(self, artifact: AnyPath) -> list[ArtifactRunner]:
        if is_raw(_spec(artifact)):
            logger.warning(f"{self.name}: written without post-processing, it has no detections to benchmark")
            return []
        return tflite_runners(self.name, artifact)

    def verify_all(self, artifact: AnyPath, reference: Reference, tolerance: Tolerance) -> list[ArtifactCheck]:
        spec = _spec(artifact)
        if is_raw(spec):
            return verify_raw(self.name, artifact, spec, reference, tolerance)
        return verify_tflite_directory(self.name, artifact, reference, tolerance)


def _spec(directory: AnyPath) -> dict[str, Any]:
    """The directory's io_spec.json ({} when unreadable: the check then names the problem)."""
    try:
        return json.loads((directory / IO_SPEC_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
