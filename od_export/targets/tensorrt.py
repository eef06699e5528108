"""``tensorrt/model.onnx``: an ONNX file that TensorRT builds without surgery.

* float32 input of a **static** shape ``[B,H,W,3]`` (or ``[B,3,H,W]``), whatever the
  export's input type, with the model's own preprocessing inside the graph: a client
  feeds raw pixel values exactly as it would to the SavedModel;
* for SSD-family models (SSD, SSD FPN-lite, EfficientDet) the graph ends at the
  decoded boxes and converted scores that the model computes before NMS
  (``raw_detection_boxes``/``raw_detection_scores``); one ``EfficientNMS_TRT`` node,
  configured from the config's ``post_processing``, replaces TensorFlow's NMS, and
  the clip to the image window that TensorFlow applies after NMS follows it.  No op
  names are matched: the traced function simply stops before NMS;
* CenterNet needs no plugin (max-pool and top-k): its graph is the whole model;
* Faster R-CNN (two NMS stages) is refused.

Verification (:mod:`od_export.targets.tensorrt_check`) runs without a GPU.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import re

import numpy as np

from od_export.errors import InputError, option
from od_export.source.pipeline_config import num_classes
from od_export.storage.location import AnyPath
from od_export.targets.base import ArtifactRunner, ExportContext, Target
from od_export.targets.onnx import (ONNX_FILE, ONNX_MODULES, OPSET, STRING_INPUT_TYPES, convert_function, inspect_onnx,
                                    write_onnx)
from od_export.targets.settings import Setting
from od_export.targets.tensorrt_graph import finish_detections
from od_export.targets.tensorrt_two_stage import check_two_stage, stage_functions, two_stage_graph
from od_export.targets.tensorrt_check import RAW_OUTPUTS, TensorRTOnnxRunner, verify_tensorrt_onnx
from od_export.verify.reference import Reference
from od_export.verify.report import ArtifactCheck, Tolerance

if TYPE_CHECKING:
    from od_export.options import ExportOptions

TENSORRT_DIR = "tensorrt"
#: Meta-architecture → how its post-processing becomes TensorRT-ready.
SUPPORTED = {"ssd": "efficient_nms", "center_net": "in_graph", "faster_rcnn": "two_stage"}
INPUT_FORMATS: tuple[str, ...] = ("NHWC", "NCHW")


def parse_input_shape(text: str | None) -> tuple[int, int] | None:
    """``"320,320"`` (or ``320x320``) → (320, 320)."""
    if text is None:
        return None
    parts = re.split(r"[,x]", text.strip())
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise InputError(f"input shape {text!r} is not a height and width; write it like 320,320")
    return int(parts[0]), int(parts[1])


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise InputError(f"batch size {batch_size} is below 1; give a batch size of 1 or more")


def _check_input_shape(shape: tuple[int, int] | None) -> None:
    if shape is not None and (len(shape) != 2 or min(shape) < 1):
        raise InputError(f"input shape {shape} is not a height and width of at least 1; write it like 320,320")


BATCH_SIZE = Setting("batch_size", 1, "static batch size", kind=int, check_value=_check_batch_size)
INPUT_SHAPE = Setting("input_shape", None, "input height and width for a model whose resizer has no fixed size",
                      kind=tuple, parse=parse_input_shape, check_value=_check_input_shape, metavar="H,W")
INPUT_FORMAT = Setting("input_format", "NHWC", "the input's layout", choices=INPUT_FORMATS)


def static_input_size(config: Any, options: ExportOptions) -> tuple[int, int]:
    """(height, width) of the static input: the user's, else the size the resizer always produces."""
    given = options.conversion.value(INPUT_SHAPE)
    if given is not None:
        return given
    architecture = config.model.WhichOneof("model")
    resizer = getattr(config.model, architecture).image_resizer
    kind = resizer.WhichOneof("image_resizer_oneof")
    if kind == "fixed_shape_resizer":
        return resizer.fixed_shape_resizer.height, resizer.fixed_shape_resizer.width
    keep = resizer.keep_aspect_ratio_resizer
    if kind == "keep_aspect_ratio_resizer" and keep.pad_to_max_dimension:
        return keep.max_dimension, keep.max_dimension
    raise InputError(f"this model's {kind} gives no fixed input size, and TensorRT needs one; "
                     f"give the input height and width ({option('input_shape')})")


def nms_settings(config: Any) -> Any:
    """The final NMS's settings: ``post_processing``, or a two-stage model's ``second_stage_post_processing``."""
    model = getattr(config.model, config.model.WhichOneof("model"))
    processing = model.second_stage_post_processing if config.model.HasField("faster_rcnn") else model.post_processing
    return processing.batch_non_max_suppression


def _static_function(context: ExportContext, height: int, width: int, keys: tuple[str, ...] | None) -> Any:
    """The serving function at a static float32 shape, ending at ``keys`` (all outputs when None)."""
    from od_export import compat
    from od_export.source.tracing import batched_serving_function

    tf = compat.import_tensorflow()
    conversion = context.options.conversion
    layout = conversion.value(INPUT_FORMAT)
    if context.model is not None:
        serve = batched_serving_function(context.model)
    else:  # an existing export: its signature, fed the dtype it takes
        dtype = context.traced.concrete.structured_input_signature[1]["input_tensor"].dtype
        serve = lambda images: context.traced.concrete(input_tensor=tf.cast(images, dtype))  # noqa: E731

    def static(input_tensor: Any) -> dict[str, Any]:
        images = tf.transpose(input_tensor, [0, 2, 3, 1]) if layout == "NCHW" else input_tensor
        outputs = serve(images)
        return {k: outputs[k] for k in (keys or outputs)}

    shape = [conversion.value(BATCH_SIZE)] + ([3, height, width] if layout == "NCHW" else [height, width, 3])
    spec = tf.TensorSpec(shape, tf.float32, name="input_tensor")
    return tf.function(static, input_signature=[spec], autograph=False).get_concrete_function()


def clip_window(context: ExportContext, height: int, width: int) -> np.ndarray:
    """[ymin, xmin, ymax, xmax] of the real image inside the preprocessed one (padding excluded)."""
    from od_export import compat
    from od_export.source.model import build_model

    tf = compat.import_tensorflow()
    model = context.model if context.model is not None else build_model(context.config)
    preprocessed, true_shapes = model.preprocess(tf.zeros([1, height, width, 3], tf.float32))
    padded = np.array(preprocessed.shape[1:3], np.float32)
    return np.concatenate([[0.0, 0.0], np.asarray(true_shapes)[0, :2] / padded]).astype(np.float32)


def append_nms(model_proto: Any, config: Any, window: np.ndarray) -> Any:
    """Raw boxes/scores → ``EfficientNMS_TRT`` → window clip (+ coordinate change) → the four outputs."""
    import onnx_graphsurgeon as gs

    graph = gs.import_onnx(model_proto)
    tensors = graph.tensors()
    return finish_detections(graph, tensors["raw_detection_boxes"], tensors["raw_detection_scores"],
                             nms_settings(config), window, model_proto.producer_name, model_proto.producer_version,
                             classes=num_classes(config))


class TensorRTTarget(Target):
    name = "tensorrt"
    directory = TENSORRT_DIR
    extra = "onnx"
    modules = ONNX_MODULES + ("onnx_graphsurgeon",)
    settings = (OPSET, BATCH_SIZE, INPUT_SHAPE, INPUT_FORMAT)

    def check_options(self, options: ExportOptions) -> None:
        if options.dynamic_batch:
            raise InputError("the TensorRT file has a static batch by design (its batch size is a setting); "
                             f"export it without {option('dynamic_batch')}, or leave out the tensorrt target")

    def check_request(self, architecture: str, config: Any, options: ExportOptions) -> None:
        if architecture not in SUPPORTED:
            raise InputError(f"the tensorrt target supports SSD, EfficientDet, CenterNet and Faster R-CNN, not "
                             f"{architecture}; this model's targets are saved_model, frozen_graph, onnx and openvino")
        if architecture == "faster_rcnn":
            check_two_stage(config)
        static_input_size(config, options)

    def unsupported_reason(self, input_type: str) -> str:
        if input_type in STRING_INPUT_TYPES:  # verified against a SavedModel that sees the same pixels
            return "the TensorRT file takes pixels; it is written beside the image_tensor and float_image_tensor SavedModels"
        return ""

    def write(self, context: ExportContext, directory: Path) -> list[Path]:
        """Float input whatever the unit's (pixel) input type, so one conversion serves every unit."""
        done = context.shared.get(self.name)
        if done is None:
            done = context.shared[self.name] = self._convert(context)
        model_proto, spec = done
        return write_onnx(model_proto, directory, spec, context.labels)

    def _convert(self, context: ExportContext) -> tuple[Any, dict[str, Any]]:
        height, width = static_input_size(context.config, context.options)
        kind = SUPPORTED[context.architecture]
        keys = RAW_OUTPUTS if kind == "efficient_nms" else None
        conversion = context.options.conversion
        if kind == "two_stage":
            model_proto = self._two_stage(context, height, width)
        else:
            model_proto = convert_function(_static_function(context, height, width, keys), conversion.value(OPSET))
        spec: dict[str, Any] = {"input_type": "float_image_tensor", "input_format": conversion.value(INPUT_FORMAT),
                                "input_size": [height, width], "batch_size": conversion.value(BATCH_SIZE),
                                "postprocessing": kind}
        if kind == "efficient_nms":
            model_proto = append_nms(model_proto, context.config, clip_window(context, height, width))
        if kind in ("efficient_nms", "two_stage"):
            spec["clip_window"] = [float(v) for v in clip_window(context, height, width)]
            spec["max_detections_per_class"] = int(nms_settings(context.config).max_detections_per_class)
            spec["classes"] = ("int32; numbered as the SavedModel's detection_classes (1 = the first class of the "
                               "label map); the plugin's padding rows have class 0 and score 0")
            spec["boxes"] = "[ymin, xmin, ymax, xmax], normalised to the image, as the SavedModel's"
        if kind == "two_stage" and any(o.name == "detection_masks" for o in model_proto.graph.output):
            spec["masks"] = ("float32 [batch, detections, height, width]: each detection's mask of its class, as "
                             "probabilities over its box (the SavedModel's detection_masks; cut at 0.5)")
        return model_proto, spec

    @staticmethod
    def _two_stage(context: ExportContext, height: int, width: int) -> Any:
        if context.model is None:
            raise InputError("the two-stage TensorRT file is traced from the model itself; export it from the "
                             "checkpoint with the tensorrt target instead of converting an export")
        conversion = context.options.conversion
        first, second, third = stage_functions(context.model, context.config, conversion.value(BATCH_SIZE), height,
                                               width, conversion.value(INPUT_FORMAT))
        opset = conversion.value(OPSET)
        return two_stage_graph(context, convert_function(first, opset), convert_function(second, opset),
                               clip_window(context, height, width),
                               convert_function(third, opset) if third is not None else None)

    def find(self, unit_dir: AnyPath) -> AnyPath | None:
        path = unit_dir / TENSORRT_DIR / ONNX_FILE
        return path if path.is_file() else None

    def inspect_file(self, path: AnyPath) -> dict[str, Any]:
        self.check_available()
        return inspect_onnx(path)  # on its own, inspect reads it as the ONNX file it is

    def runners(self, artifact: AnyPath) -> list[ArtifactRunner]:
        return [TensorRTOnnxRunner(self.name, [artifact])]

    def verify(self, artifact: AnyPath, reference: Reference, tolerance: Tolerance) -> ArtifactCheck:
        return verify_tensorrt_onnx(self.name, artifact, reference, tolerance)
