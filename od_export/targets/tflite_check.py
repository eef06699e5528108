"""Verify each ``.tflite`` file of an export in the LiteRT interpreter, as its users run it.

For a fixed-size file every image is first resized to the file's input size, and the
SavedModel runs on those same pixels, so both sides see identical input.  A
padded-resizer file (:mod:`.tflite_resize`) is verified on the pictures as they are,
landscape and portrait: the SavedModel resizes and pads them itself, the file gets
them resized and padded as its ``io_spec.json`` tells a client to.  The file is fed
and read as :mod:`.tflite_runner` says, and the SavedModel's list is cut to the
file's ``max_detections``.

* ``fp32`` must give the same detections (:func:`od_export.verify.compare.compare_outputs`);
* ``fp16`` and ``int8`` must reach a detection agreement
  (:mod:`od_export.verify.agreement`), which the report shows.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from od_export.errors import InputError
from od_export.layout import IO_SPEC_NAME
from od_export.storage.location import AnyPath
from od_export.targets.base import ArtifactRunner
from od_export.targets.onnx import read_bytes, run_failure
from od_export.targets.tflite_resize import PAD_POLICY
from od_export.targets.tflite_runner import TFLiteRunner, as_saved_model_outputs, trimmed
from od_export.verify.agreement import detection_agreement
from od_export.verify.compare import compare_outputs
from od_export.verify.reference import Reference
from od_export.verify.report import ArtifactCheck, Tolerance, merge
from od_export.verify.samples import resize_image

MEANINGS = {
    "detection_boxes": "float32 [1, N, 4]: [ymin, xmin, ymax, xmax] normalised to the input image",
    "detection_classes": "float32 [1, N]: 0-based class index; add 1 for the label map id (the SavedModel's "
                         "detection_classes)",
    "detection_scores": "float32 [1, N]: score of each detection, best first",
    "num_detections": "float32 [1]: how many of the N rows are detections",
    "detection_keypoints": "float32 [1, N, K, 2]: each detection's K keypoints as (y, x), normalised to the input "
                           "image, in the keypoint label map's order",
    "detection_keypoint_scores": "float32 [1, N, K]: the confidence of each keypoint",
}


def _output_table(interpreter: Any) -> list[dict[str, Any]]:
    """Each output, by its index in the interpreter's output list, with its signature name and meaning."""
    signatures = interpreter._get_full_signature_list()
    names = {index: name for name, index in (next(iter(signatures.values()))["outputs"] if signatures else {}).items()}
    table = []
    for position, detail in enumerate(interpreter.get_output_details()):
        name = names.get(detail["index"], detail["name"])
        entry = {"index": position, "name": name, "tensor": detail["name"], "dtype": detail["dtype"].__name__,
                 "shape": [int(d) for d in detail["shape"]]}
        if name in MEANINGS:
            entry["meaning"] = MEANINGS[name]
        scale, zero_point = detail["quantization"]
        if scale:
            entry["quantization"] = {"scale": float(scale), "zero_point": int(zero_point),
                                     "read": "(q - zero_point) * scale; rounded for counts and classes"}
        table.append(entry)
    return table


def _input_entry(interpreter: Any) -> dict[str, Any]:
    detail = interpreter.get_input_details()[0]
    entry: dict[str, Any] = {"name": "input_tensor", "dtype": detail["dtype"].__name__,
                             "shape": [int(d) for d in detail["shape"]]}
    scale, zero_point = detail["quantization"]
    if scale:
        entry["quantization"] = {"scale": float(scale), "zero_point": int(zero_point),
                                 "feed": "round(x / scale + zero_point), x being the normalised image"}
    return entry


def describe_file(model: bytes, integer: bool = False) -> dict[str, Any]:
    """Input and outputs of a converted file, read back from it by the LiteRT interpreter.

    For an integer file also the ops that still read or write float32 tensors, by op
    name (``QUANTIZE``/``DEQUANTIZE`` are the conversions at the float boundaries).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    described = {"input": _input_entry(interpreter), "outputs": _output_table(interpreter)}
    if integer:  # ops as written, before a delegate takes some over
        plain = Interpreter(model_content=model,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        plain.allocate_tensors()
        described["float_ops"] = float_ops(plain)
    return described


def float_ops(interpreter: Any) -> dict[str, int]:
    """Op name → how many of its ops read or write a float32 tensor."""
    dtypes = {detail["index"]: detail["dtype"] for detail in interpreter.get_tensor_details()}
    counts: dict[str, int] = {}
    for op in interpreter._get_ops_details():
        tensors = [t for t in [*op["inputs"], *op["outputs"]] if t >= 0]
        if any(dtypes.get(t) == np.float32 for t in tensors):
            counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return dict(sorted(counts.items()))


def _check_file(check: ArtifactCheck, runner: TFLiteRunner, precision: str, spec: dict[str, Any],
                pixels: list[np.ndarray], expected: list[dict[str, np.ndarray]], tolerance: Tolerance) -> None:
    set_aside = [0, 0]
    parts = []
    for image, reference in zip(pixels, expected):
        candidate, capped, empty = as_saved_model_outputs(runner.run(image), spec)
        set_aside = [set_aside[0] + capped, set_aside[1] + empty]
        check.outputs.append(candidate)
        if precision == "fp32":
            full = candidate["num_detections"] >= candidate["detection_scores"].shape[1]
            floors = np.where(full, candidate["detection_scores"][:, -1], -np.inf)
            parts.append(compare_outputs(reference, candidate, tolerance.atol, tolerance.score_threshold, floors))
    check.differences = merge(parts)
    check.expected = list(expected)
    if precision != "fp32":
        check.agreement = detection_agreement(expected, check.outputs, precision, tolerance)
    if spec.get("boxes_clipped") is False:
        check.notes.append(f"{precision}: boxes clipped to the image as TensorFlow does after NMS; set aside as "
                           f"TensorFlow would: {set_aside[0]} over the per-class cap, {set_aside[1]} empty after clipping")


def _check_metadata(check: ArtifactCheck, data: bytes, entry: dict[str, Any], spec: dict[str, Any],
                    directory: AnyPath) -> None:
    """The file's TFLite metadata, read back with its schema, against io_spec.json and the labels.txt beside it."""
    from od_export import compat_extras
    from od_export.targets.tflite_metadata import LABELS_NAME, metadata_problem

    if not compat_extras.tflite_metadata_schema_available():
        check.notes.append(f"TFLite metadata not read back: {compat_extras.TFLITE_SUPPORT_HINT}")
        return
    labels = None
    if entry["metadata"].get("labels"):
        labels = read_bytes(directory / LABELS_NAME).decode("utf-8").splitlines()
    problem = metadata_problem(data, entry, spec["normalization"], labels)
    if problem:
        check.error = f"TFLite metadata: {problem}"
    else:
        check.notes.append(f"{check.artifact.partition(':')[2]}: TFLite metadata read back: input normalisation, "
                           f"output roles{' and ' + str(len(labels)) + ' packed labels' if labels else ''} as written")


def verification_pictures(images: list[np.ndarray], spec: dict[str, Any]) -> list[np.ndarray]:
    """Pictures at the file's input size; for a padded file as they are, plus a portrait one (other aspect ratios)."""
    if spec.get("resize", {}).get("policy") == PAD_POLICY:
        return [*images, np.ascontiguousarray(images[0].transpose(1, 0, 2)[:, ::2])]
    height, width = spec["input_size"]
    return [resize_image(image, height, width) for image in images]


def verify_tflite_directory(name: str, directory: AnyPath, reference: Reference, tolerance: Tolerance) -> list[ArtifactCheck]:
    """One check per precision listed in the directory's ``io_spec.json``."""
    try:
        spec = json.loads((directory / IO_SPEC_NAME).read_text(encoding="utf-8"))
        pixels = verification_pictures(reference.images, spec)
        expected = [trimmed(reference.run(image), int(spec["max_detections"])) for image in pixels]
    except Exception as exc:  # an unreadable spec or a reference that rejects the pixels: one failed check
        return [run_failure(ArtifactCheck(reference.unit.name, name, reference.input_type), exc)]
    checks = []
    for precision, entry in spec["files"].items():
        check = ArtifactCheck(reference.unit.name, f"{name}:{precision}", reference.input_type)
        try:
            data = read_bytes(directory / entry["file"])
            _check_file(check, TFLiteRunner(data, entry, spec), precision, spec, pixels, expected,
                        tolerance)
            if "metadata" in entry:
                _check_metadata(check, data, entry, spec, directory)
        except Exception as exc:  # LiteRT's load and run errors have no common base class
            run_failure(check, exc)
        checks.append(check)
    return checks


class TFLiteFileRunner(ArtifactRunner):
    """``benchmark``'s view of one ``.tflite`` file: LiteRT's interpreter, fed as ``io_spec.json`` says."""

    runtime = "LiteRT"

    def __init__(self, name: str, directory: AnyPath, precision: str, spec: dict[str, Any]) -> None:
        self.entry = spec["files"][precision]
        super().__init__(name, [directory / self.entry["file"]])
        self.spec = spec
        if spec.get("resize", {}).get("policy") != PAD_POLICY:  # a padded file resizes each picture itself
            self.input_size = tuple(spec["input_size"])

    def load(self) -> None:
        self.runner = TFLiteRunner(read_bytes(self.files[0]), self.entry, self.spec)

    def feed(self, pixels: Any, encoded: bytes) -> Any:
        return self.runner.prepare(pixels)

    def infer(self, feed: Any) -> Any:
        tensor, frame = feed
        return self.runner.runner(input_tensor=tensor), frame

    def detections(self, raw: Any) -> dict[str, Any]:
        outputs, frame = raw
        return as_saved_model_outputs(self.runner.in_picture_frame(self.runner.dequantised(outputs), frame),
                                      self.spec)[0]


def tflite_runners(name: str, directory: AnyPath) -> list[ArtifactRunner]:
    """One runner per precision the directory's ``io_spec.json`` lists."""
    spec = json.loads((directory / IO_SPEC_NAME).read_text(encoding="utf-8"))
    return [TFLiteFileRunner(f"{name}:{precision}", directory, precision, spec) for precision in spec["files"]]


def inspect_tflite(path: AnyPath) -> dict[str, Any]:
    """Input (with quantisation), outputs by index (with meaning when they carry the SavedModel's names), custom
    ops, and the file's TFLite metadata (None when it has none)."""
    from ai_edge_litert.interpreter import Interpreter

    from od_export import compat_extras
    from od_export.targets.tflite_metadata import read_metadata

    data = read_bytes(path)
    try:
        interpreter = Interpreter(model_content=data)
    except Exception as exc:  # LiteRT raises ValueError/RuntimeError for a file it cannot read
        raise InputError(f"{path} is not a TFLite model ({' '.join(str(exc).split())[:200]})") from exc
    custom = sorted({op["op_name"] for op in interpreter._get_ops_details() if op["op_name"].startswith("TFLite_")})
    described = {"format": "tflite", "bytes": len(data), **describe_file(data), "custom_ops": custom}
    if compat_extras.tflite_metadata_schema_available():
        try:
            described["metadata"] = read_metadata(data)
        except ValueError as exc:
            described["metadata"] = f"unreadable: {exc}"
    return described
