"""Verify each ``.tflite`` file of an export in the LiteRT interpreter, as its users run it.

Every image is first resized to the file's fixed input size, and the SavedModel runs
on those same pixels, so both sides see identical input.  The file is fed as
``io_spec.json`` says (normalised, and quantised for a uint8 input) and its outputs
are turned into the SavedModel's conventions before comparing: class indices + 1,
and for SSD's ``TFLite_Detection_PostProcess`` (which neither clips boxes nor caps
them per class) the clip to the image, the drop of boxes left empty, and the
per-class cap that TensorFlow applies after NMS.  The SavedModel's list is cut to the
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
from od_export.verify.agreement import detection_agreement
from od_export.verify.compare import compare_outputs
from od_export.verify.efficient_nms import as_tensorflow_would
from od_export.verify.reference import Reference
from od_export.verify.report import ArtifactCheck, Tolerance, merge
from od_export.verify.samples import resize_image

DETECTION_KEYS = ("detection_boxes", "detection_scores", "detection_classes")
MEANINGS = {
    "detection_boxes": "float32 [1, N, 4]: [ymin, xmin, ymax, xmax] normalised to the input image",
    "detection_classes": "float32 [1, N]: 0-based class index; add 1 for the label map id (the SavedModel's "
                         "detection_classes)",
    "detection_scores": "float32 [1, N]: score of each detection, best first",
    "num_detections": "float32 [1]: how many of the N rows are detections",
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


def trimmed(outputs: dict[str, np.ndarray], keep: int) -> dict[str, np.ndarray]:
    """The SavedModel's best ``keep`` detections (its lists are sorted by score)."""
    result = {key: np.asarray(outputs[key])[:, :keep] for key in DETECTION_KEYS}
    result["num_detections"] = np.minimum(np.asarray(outputs["num_detections"], np.float32), keep)
    return result


class TFLiteRunner:
    """A .tflite file in LiteRT's interpreter with its default delegates, fed as its io_spec says."""

    def __init__(self, model: bytes, entry: dict[str, Any], normalization: dict[str, Any]) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=model)
        self.runner = self.interpreter.get_signature_runner("serving_default")
        self.input = entry["input"]
        self.quantization = {o["name"]: o["quantization"] for o in entry.get("outputs", []) if "quantization" in o}
        self.mean = np.asarray(normalization["mean"], np.float32)
        self.std = np.asarray(normalization["std"], np.float32)

    def feed(self, pixels: np.ndarray) -> np.ndarray:
        normalised = ((pixels.astype(np.float32) - self.mean) / self.std)[np.newaxis]
        quantization = self.input.get("quantization")
        if quantization is None:
            return normalised.astype(np.float32)
        dtype = np.dtype(self.input["dtype"])
        limits = np.iinfo(dtype)
        quantised = np.round(normalised / quantization["scale"] + quantization["zero_point"])
        return np.clip(quantised, limits.min, limits.max).astype(dtype)

    def run(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        return self.dequantised(self.runner(input_tensor=self.feed(pixels)))

    def dequantised(self, raw: dict[str, Any]) -> dict[str, np.ndarray]:
        """Outputs as float values: an integer output is (q - zero_point) × scale, as its io_spec says."""
        outputs = {}
        for key, value in raw.items():
            quantization = self.quantization.get(key)
            value = np.asarray(value)
            outputs[key] = value if quantization is None else (
                (value.astype(np.float32) - quantization["zero_point"]) * quantization["scale"])
        return outputs


def as_saved_model_outputs(raw: dict[str, np.ndarray], spec: dict[str, Any]) -> tuple[dict[str, np.ndarray], int, int]:
    """TFLite outputs in the SavedModel's conventions; also how many boxes TensorFlow would have set aside."""
    # Counts and class indices are whole numbers; a uint8 output dequantises them to 1.9999 or 2.0039: round.
    outputs = {"detection_boxes": raw["detection_boxes"].astype(np.float32),
               "detection_scores": raw["detection_scores"].astype(np.float32),
               "detection_classes": np.round(raw["detection_classes"]).astype(np.float32) + 1.0,
               "num_detections": np.round(raw["num_detections"]).astype(np.float32).reshape(-1, 1)}
    capped = empty = 0
    if spec.get("boxes_clipped") is False:
        outputs["detection_boxes"] = np.clip(outputs["detection_boxes"], 0.0, 1.0)
        outputs, capped, empty = as_tensorflow_would(outputs, int(spec["max_detections_per_class"]))
    outputs["num_detections"] = outputs["num_detections"].reshape(-1)
    return outputs, capped, empty


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


def verify_tflite_directory(name: str, directory: AnyPath, reference: Reference, tolerance: Tolerance) -> list[ArtifactCheck]:
    """One check per precision listed in the directory's ``io_spec.json``."""
    try:
        spec = json.loads((directory / IO_SPEC_NAME).read_text(encoding="utf-8"))
        height, width = spec["input_size"]
        pixels = [resize_image(image, height, width) for image in reference.images]
        expected = [trimmed(reference.run(image), int(spec["max_detections"])) for image in pixels]
    except Exception as exc:  # an unreadable spec or a reference that rejects the pixels: one failed check
        return [run_failure(ArtifactCheck(reference.unit.name, name, reference.input_type), exc)]
    checks = []
    for precision, entry in spec["files"].items():
        check = ArtifactCheck(reference.unit.name, f"{name}:{precision}", reference.input_type)
        try:
            data = read_bytes(directory / entry["file"])
            _check_file(check, TFLiteRunner(data, entry, spec["normalization"]), precision, spec, pixels, expected,
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
        self.input_size = tuple(spec["input_size"])

    def load(self) -> None:
        self.runner = TFLiteRunner(read_bytes(self.files[0]), self.entry, self.spec["normalization"])

    def feed(self, pixels: Any, encoded: bytes) -> Any:
        return self.runner.feed(pixels)

    def infer(self, feed: Any) -> Any:
        return self.runner.runner(input_tensor=feed)

    def detections(self, raw: Any) -> dict[str, Any]:
        return as_saved_model_outputs(self.runner.dequantised(raw), self.spec)[0]


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
