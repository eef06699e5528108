"""Verify a TensorRT-ready ONNX file on a CPU, in two parts, every time it is written or validated.

onnxruntime cannot run ``EfficientNMS_TRT``, so:

1. the graph **before** the NMS node runs in onnxruntime and must reproduce the
   SavedModel's ``raw_detection_boxes`` and ``raw_detection_scores`` (every anchor);
2. :func:`od_export.verify.efficient_nms.efficient_nms`, a reference implementation
   of the plugin with the node's own attributes, is applied to those tensors; the
   graph **after** the node (the window clip) runs in onnxruntime on its result, and
   the final detections must match the SavedModel's, by class and box overlap.
   Where the plugin differs from TensorFlow by design, the comparison accounts for
   it instead of loosening tolerances: only detections above the plugin's score
   threshold (at least 0.01) are compared, and boxes that TensorFlow would cap per
   class or drop as empty after clipping are set aside and counted in the report.

A graph without the plugin (CenterNet) runs whole in onnxruntime.  The SavedModel
sees the same pixels: each image is resized to the file's static input size first.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from od_export.layout import IO_SPEC_NAME
from od_export.storage.location import AnyPath
from od_export.targets.base import ArtifactRunner
from od_export.targets.onnx import OnnxRunner, read_bytes, run_failure
from od_export.verify.compare import compare_outputs
from od_export.verify.efficient_nms import EfficientNmsAttributes, as_tensorflow_would, efficient_nms
from od_export.verify.plugin_graph import CROP_OP, PluginGraph
from od_export.verify.reference import Reference
from od_export.verify.report import ArtifactCheck, Tolerance, merge
from od_export.verify.samples import resize_image

NMS_OP = "EfficientNMS_TRT"
#: The outputs the TensorRT file keeps before its NMS node.
RAW_OUTPUTS = ("raw_detection_boxes", "raw_detection_scores")

DETECTION_KEYS = ("detection_boxes", "detection_scores", "detection_classes")
#: Per-detection outputs beyond the boxes that a two-stage file may carry (Mask R-CNN's third stage).
MASK_KEYS = ("detection_masks",)


def _batches(reference: Reference, spec: dict[str, Any]) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(input batch for the ONNX file, the SavedModel's outputs for the same images, stacked)."""
    height, width = spec["input_size"]
    batch = int(spec["batch_size"])
    images = [resize_image(image, height, width) for image in reference.images]
    outputs = [reference.run(image) for image in images]
    groups = []
    for start in range(0, len(images), batch):
        indices = [(start + i) % len(images) for i in range(batch)]  # the last batch is filled up by cycling
        feed = np.stack([images[i] for i in indices]).astype(np.float32)
        if spec.get("input_format") == "NCHW":
            feed = feed.transpose(0, 3, 1, 2)
        stacked = {k: np.concatenate([outputs[i][k] for i in indices]) for k in outputs[0]}
        groups.append((feed, stacked))
    return groups


def _subgraph(model: Any, inputs: list[str] | None, outputs: list[str]) -> bytes:
    """The part of ``model`` between tensors ``inputs`` (None: the graph's own) and ``outputs``."""
    import onnx_graphsurgeon as gs

    graph = gs.import_onnx(model)
    tensors = graph.tensors()
    if inputs is not None:
        for node in [n for n in graph.nodes if n.op == NMS_OP]:
            node.outputs.clear()  # cut the plugin out: its outputs become graph inputs
        graph.inputs = [tensors[name] for name in inputs]
    graph.outputs = [tensors[name] for name in outputs]
    graph.cleanup().toposort()
    return gs.export_onnx(graph).SerializeToString()


def _per_image(outputs: dict[str, np.ndarray], remaining: int) -> list[dict[str, np.ndarray]]:
    """A batch's outputs split into one dict per image (batch of 1), leaving out the items that cycled back."""
    return [{k: v[i:i + 1] for k, v in outputs.items()} for i in range(min(len(outputs["detection_scores"]), remaining))]


class SplitAtNms:
    """A file with the plugin, run on a CPU: onnxruntime before and after it, the reference EfficientNMS between."""

    def __init__(self, model: Any, node: Any) -> None:
        self.box_name, self.score_name = (t.name for t in node.inputs)
        self.before = OnnxRunner(_subgraph(model, None, [self.box_name, self.score_name]))
        self.attrs = EfficientNmsAttributes.from_node(node.attrs)
        self.nms_names = [t.name for t in node.outputs]
        self.final_names = [o.name for o in model.graph.output]
        after_names = [n for n in self.final_names if n not in self.nms_names]
        self.after = OnnxRunner(_subgraph(model, self.nms_names, after_names)) if after_names else None

    def raw(self, feed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw = self.before.run({"input_tensor": feed})
        return raw[self.box_name], raw[self.score_name]

    def final(self, boxes: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
        plugin = dict(zip(self.nms_names, efficient_nms(boxes, scores, self.attrs).values()))
        final = {n: plugin[n] for n in self.final_names if n in plugin}
        if self.after is not None:
            final.update(self.after.run({i.name: plugin[i.name] for i in self.after.session.get_inputs()}))
        return final


def _final_detections(final: dict[str, np.ndarray], reference: dict[str, np.ndarray], cap: int, threshold: float,
                      tolerance: Tolerance, check: ArtifactCheck, images: int) -> tuple[Any, tuple[int, int]]:
    """The plugin's final detections against the SavedModel's, after what TensorFlow's NMS does and the plugin does
    not (the per-class cap, empty boxes); their differences and how many boxes each rule set aside."""
    full = final["num_detections"][:, 0] == final["detection_scores"].shape[1]
    floors = np.where(full, final["detection_scores"][:, -1], -np.inf)
    final, capped, empty = as_tensorflow_would(final, cap)
    keys = DETECTION_KEYS + tuple(k for k in MASK_KEYS if k in final and k in reference)
    candidate = {k: final[k].astype(np.float32) for k in keys}
    remaining = images - len(check.outputs)  # drawn by validate --save-images, beside what they were compared with
    check.expected += _per_image({k: reference[k] for k in DETECTION_KEYS}, remaining)
    check.outputs += _per_image(candidate, remaining)
    expected = {k: reference[k] for k in keys}
    return compare_outputs(expected, candidate, tolerance.atol, threshold, floors), (capped, empty)


def _with_nms(model: Any, node: Any, groups: list, tolerance: Tolerance, check: ArtifactCheck, spec: dict,
              images: int) -> ArtifactCheck:
    split = SplitAtNms(model, node)
    attrs = split.attrs
    threshold = max(tolerance.score_threshold, attrs.score_threshold)
    parts, capped, empty = [], 0, 0
    for feed, reference in groups:
        boxes, scores = split.raw(feed)
        trimmed = scores[..., 1:] if scores.shape[-1] == reference["raw_detection_scores"].shape[-1] + 1 else scores
        parts.append(compare_outputs({k: reference[k] for k in RAW_OUTPUTS},
                                     {"raw_detection_boxes": boxes, "raw_detection_scores": trimmed},
                                     tolerance.atol, threshold, rtol=tolerance.rtol))
        cap = int(spec.get("max_detections_per_class", attrs.max_output_boxes))
        difference, set_aside = _final_detections(split.final(boxes, scores), reference, cap, threshold, tolerance,
                                                  check, images)
        parts.append(difference)
        capped, empty = capped + set_aside[0], empty + set_aside[1]
    check.differences = merge(parts)
    check.notes.append(f"NMS by od-export's reference EfficientNMS (no GPU here); compared above score {threshold:g}; "
                       f"set aside as TensorFlow would: {capped} over the per-class cap, {empty} empty after clipping")
    return check


def _two_stage(model: Any, groups: list, tolerance: Tolerance, check: ArtifactCheck, spec: dict,
               source: Reference) -> ArtifactCheck:
    """Both stages through the plugin references: the second stage's raw outputs and the final detections."""
    images = len(source.images)
    graph = PluginGraph(model)
    threshold = max(tolerance.score_threshold, _final_nms(graph).attrs["score_threshold"])
    parts, capped, empty = [], 0, 0
    crops = source.crop_feed() if int(spec["batch_size"]) == 1 else None
    for index, (feed, reference) in enumerate(groups):
        values = graph.run({"input_tensor": feed}, extra=SECOND_STAGE + (PROPOSALS,))
        if crops is not None:  # the SavedModel crops natively: its later stages on the file's own boxes
            reference = _judged_on_file(crops, source, spec, index, reference, values, graph, tolerance, threshold)
        foreground = {"raw_detection_boxes": reference["raw_detection_boxes"],
                      "raw_detection_scores": reference["raw_detection_scores"][..., 1:]}
        parts.append(compare_outputs(foreground, second_stage_raw(values), tolerance.atol, threshold,
                                     rtol=tolerance.rtol))
        difference, set_aside = _final_detections({name: values[name] for name in graph.outputs}, reference,
                                                  int(spec["max_detections_per_class"]), threshold, tolerance, check,
                                                  images)
        parts.append(difference)
        capped, empty = capped + set_aside[0], empty + set_aside[1]
    check.differences = merge(parts)
    check.notes.append(f"both NMS stages and the crop by od-export's reference plugins (no GPU here); compared above "
                       f"score {threshold:g}; set aside as TensorFlow would: {capped} over the per-class cap, {empty} "
                       "empty after clipping")
    return check


#: The second stage's outputs inside the two-stage file, read by its check.
SECOND_STAGE = ("second_stage/second_stage_boxes", "second_stage/second_stage_scores")
#: The first stage's proposals (after its NMS, clipped to the window) inside the two-stage file.
PROPOSALS = "proposals"


def _judged_on_file(crops: Any, source: Reference, spec: dict, index: int, reference: dict[str, np.ndarray],
                    values: dict[str, np.ndarray], graph: PluginGraph, tolerance: Tolerance,
                    threshold: float) -> dict[str, np.ndarray]:
    """The SavedModel's outputs with its crops fed from the file's proposals and detections
    (:mod:`od_export.verify.crop_feed`)."""
    from od_export.verify import crop_feed

    height, width = spec["input_size"]
    image = source.feed(resize_image(source.images[index], height, width))
    candidate = {**second_stage_raw(values), **{name: values[name] for name in graph.outputs},
                 "proposal_boxes_normalized": values[PROPOSALS]}
    return crop_feed.judged_on(crops, image, reference, candidate, tolerance.atol, threshold)


def second_stage_raw(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The SavedModel's ``raw_detection_boxes`` and foreground ``raw_detection_scores`` from the file's second stage.

    As ``_postprocess_box_classifier`` gives them: the best class's box, clipped to the image.
    """
    boxes, scores = values[SECOND_STAGE[0]], values[SECOND_STAGE[1]]
    if boxes.shape[2] > 1:
        best = np.argmax(scores, axis=2)
        boxes = np.take_along_axis(boxes, best[:, :, None, None], axis=2)
    return {"raw_detection_boxes": np.clip(boxes[:, :, 0], 0.0, 1.0), "raw_detection_scores": scores}


def _final_nms(graph: PluginGraph) -> Any:
    return [node for node in graph.plugins if node.op == NMS_OP][-1]


def verify_tensorrt_onnx(name: str, artifact: AnyPath, reference: Reference, tolerance: Tolerance) -> ArtifactCheck:
    import onnx
    import onnx_graphsurgeon as gs

    check = ArtifactCheck(reference.unit.name, name, reference.input_type)
    try:
        spec = json.loads((artifact.parent / IO_SPEC_NAME).read_text(encoding="utf-8"))
        model = onnx.load_from_string(read_bytes(artifact))
        groups = _batches(reference, spec)
        nodes = gs.import_onnx(model).nodes
        if any(node.op == CROP_OP for node in nodes):
            return _two_stage(model, groups, tolerance, check, spec, reference)
        nms = [node for node in nodes if node.op == NMS_OP]
        if nms:
            return _with_nms(model, nms[0], groups, tolerance, check, spec, len(reference.images))
        runner = OnnxRunner(model.SerializeToString())
        runs = [(runner.run({"input_tensor": feed}), reference_outputs) for feed, reference_outputs in groups]
        for outputs, expected in runs:
            remaining = len(reference.images) - len(check.outputs)
            check.expected += _per_image(expected, remaining)
            check.outputs += _per_image(outputs, remaining)
        check.differences = merge([compare_outputs(reference_outputs, outputs, tolerance.atol, tolerance.score_threshold)
                                   for outputs, reference_outputs in runs])
    except Exception as exc:  # a file that does not load or run is a failed check, on one line
        return run_failure(check, exc)
    return check


class TensorRTOnnxRunner(ArtifactRunner):
    """``benchmark``'s view of the TensorRT file on a CPU, run as its check runs it (static size and batch)."""

    runtime = "onnxruntime + reference NMS"

    def load(self) -> None:
        import onnx
        import onnx_graphsurgeon as gs

        self.spec = json.loads((self.files[0].parent / IO_SPEC_NAME).read_text(encoding="utf-8"))
        self.input_size = tuple(self.spec["input_size"])
        model = onnx.load_from_string(read_bytes(self.files[0]))
        nodes = gs.import_onnx(model).nodes
        nms = [node for node in nodes if node.op == NMS_OP]
        self.plugins = PluginGraph(model) if any(node.op == CROP_OP for node in nodes) else None
        self.split = SplitAtNms(model, nms[0]) if nms and self.plugins is None else None
        self.whole = None if nms else OnnxRunner(model.SerializeToString())

    def feed(self, pixels: Any, encoded: bytes) -> Any:
        batch = np.repeat(pixels[None].astype(np.float32), int(self.spec["batch_size"]), axis=0)
        return batch.transpose(0, 3, 1, 2) if self.spec.get("input_format") == "NCHW" else batch

    def infer(self, feed: Any) -> Any:
        if self.plugins is not None:
            values = self.plugins.run({"input_tensor": feed})
            return {name: values[name] for name in self.plugins.outputs}
        if self.split is None:
            return self.whole.run({"input_tensor": feed})
        return self.split.final(*self.split.raw(feed))

    def detections(self, raw: Any) -> dict[str, Any]:
        if self.split is not None or self.plugins is not None:
            cap = int(self.spec.get("max_detections_per_class", raw["detection_scores"].shape[1]))
            raw = as_tensorflow_would(raw, cap)[0]
        first = {k: np.asarray(raw[k][:1], np.float32) for k in DETECTION_KEYS}
        first["num_detections"] = np.asarray(raw["num_detections"], np.float32).reshape(-1)[:1]
        return first
