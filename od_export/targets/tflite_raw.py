"""The tflite target without post-processing: one fp32 file that ends at the raw boxes and scores.

The OD API's TFLite modules always end in ``TFLite_Detection_PostProcess``, so this
file is converted from the export's own serving function instead (the SavedModel's),
cut at ``raw_detection_boxes`` and ``raw_detection_scores`` with its input fixed at the
resizer's size: the converter keeps no non-maximum suppression.  It takes what the
SavedModel's signature takes (uint8 pixels for ``image_tensor``), preprocessing
included, and is verified against the SavedModel's raw outputs on the same resized
pixels.  Reduced precision is judged by detection agreement, which a file without
detections cannot show, so it is written in fp32 only.  It carries no TFLite metadata:
the Task Library's ObjectDetector reads detections.
"""
from __future__ import annotations

from typing import Any

from od_export.errors import ExportFailed
from od_export.source.pipeline_config import model_input_size
from od_export.storage.location import AnyPath
from od_export.targets.base import ExportContext, pixels_as
from od_export.targets.onnx import RAW_NOTE, RAW_OUTPUTS, input_spec, raw_function, read_bytes, run_failure
from od_export.targets.tflite_check import describe_file
from od_export.targets.tflite_convert import convert
from od_export.verify.reference import Reference
from od_export.verify.report import ArtifactCheck, Tolerance, compare_runs
from od_export.verify.samples import resize_image

RAW_FILE = "model_fp32.tflite"


def convert_raw(context: ExportContext) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The raw file and its io_spec.json entries."""
    height, width = model_input_size(context.config)
    data = convert(_static_raw_function(context, height, width), "fp32", context,
                   {"policy": "stretch", "size": [height, width]}, ([0.0] * 3, [1.0] * 3))
    spec = {
        "format": "tflite", "architecture": context.architecture, "input_size": [height, width],
        "postprocessing": RAW_NOTE,
        "normalization": {"mean": [0.0] * 3, "std": [1.0] * 3,
                          "formula": f"none: the file takes the SavedModel's input (pixels) resized to {height}x{width}, "
                                     "and preprocesses it itself"},
        "metadata": "none: the TFLite Task Library's ObjectDetector reads detections, which this file does not give",
        "files": {"fp32": {"file": RAW_FILE, **describe_file(data)}},
    }
    return {RAW_FILE: data}, spec


def _static_raw_function(context: ExportContext, height: int, width: int) -> Any:
    """The serving function cut at the raw outputs, for one image of the resizer's size.

    The converter cannot lower the loops of a function traced for an open batch or image
    size, so the model in memory is traced again at that one shape.  Converting an export
    without its model uses the SavedModel's function, which must then take one image.
    """
    from od_export.source.tracing import detection_module, trace

    shape = [1, height, width, 3]
    if context.model is None:
        spec = input_spec(context.traced.concrete)
        if spec.shape.rank != 4 or spec.shape[0] != 1:
            raise ExportFailed("this SavedModel takes a batch of any size, which the TFLite converter cannot cut at "
                               "the raw outputs; export the checkpoint again with the tflite target")
        return raw_function(context.traced.concrete, shape)
    module = detection_module(context.model, context.input_type, context.options.side_inputs)
    return raw_function(trace(module, context.input_type, context.architecture, shape=shape).concrete)


def verify_raw(name: str, directory: AnyPath, spec: dict[str, Any], reference: Reference,
               tolerance: Tolerance) -> list[ArtifactCheck]:
    """The file's raw outputs against the SavedModel's, each image resized to the file's input size."""
    check = ArtifactCheck(reference.unit.name, f"{name}:fp32", reference.input_type)
    entry = spec["files"]["fp32"]
    try:
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_content=read_bytes(directory / entry["file"])).get_signature_runner("serving_default")
        height, width = spec["input_size"]
        pixels = [resize_image(image, height, width) for image in reference.images]
        expected = [{key: reference.run(image)[key] for key in RAW_OUTPUTS} for image in pixels]
    except Exception as exc:  # LiteRT's load errors have no common base class
        return [run_failure(check, exc)]
    dtype = entry["input"]["dtype"]
    return [compare_runs(check, expected, lambda i: runner(input_tensor=pixels_as(dtype, pixels[i])), tolerance)]
