"""A reference implementation of TensorRT's ``EfficientNMS_TRT`` plugin, in NumPy.

onnxruntime cannot run the plugin and CI has no GPU, so the TensorRT-ready ONNX is
verified by running the graph before the NMS node in onnxruntime and applying this
function to its outputs.  It follows the plugin's documented semantics
(TensorRT's ``plugin/efficientNMSPlugin/README.md``) for ``box_coding=0`` (corner
boxes, any diagonal order) and ``score_activation=0`` (scores already converted):

* per class, except ``background_class``: boxes scoring above ``score_threshold``, in
  descending score order, greedily suppressing any box whose IoU with a kept box
  exceeds ``iou_threshold`` (across classes when ``class_agnostic`` is 1);
* then every kept box of every class, in descending score order, cut to
  ``max_output_boxes``; the class is the score column's index;
* outputs padded with zeros, and ``num_detections`` counting the real ones.

The plugin also caps its candidates at a top-k of a few thousand per image; the
sample models have fewer anchors than that, so the cap never applies here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from od_export.verify.compare import box_iou


@dataclass(frozen=True)
class EfficientNmsAttributes:
    score_threshold: float
    iou_threshold: float
    max_output_boxes: int
    background_class: int = -1
    class_agnostic: int = 0

    @classmethod
    def from_node(cls, attrs: dict[str, Any]) -> EfficientNmsAttributes:
        if int(attrs.get("box_coding", 0)) != 0 or int(attrs.get("score_activation", 0)) != 0:
            raise ValueError("the reference implements box_coding=0 and score_activation=0 only, as od-export writes them")
        return cls(float(attrs["score_threshold"]), float(attrs["iou_threshold"]), int(attrs["max_output_boxes"]),
                   int(attrs.get("background_class", -1)), int(attrs.get("class_agnostic", 0)))


def _greedy_nms(boxes: np.ndarray, order: np.ndarray, iou_threshold: float, limit: int) -> list[int]:
    """Indices kept from ``order`` (best first), at most ``limit``: no more can reach the merged top ``limit``."""
    kept: list[int] = []
    while order.size and len(kept) < limit:
        best, order = int(order[0]), order[1:]
        kept.append(best)
        if order.size:
            order = order[box_iou(boxes[[best]], boxes[order])[0] <= iou_threshold]
    return kept


def _one_image(boxes: np.ndarray, scores: np.ndarray, attrs: EfficientNmsAttributes) -> list[tuple[float, int, int]]:
    """(score, class, box index) of the kept detections of one image, best first.

    ``boxes`` [N,4] are shared by every class; [N,C,4] are one box per class (a [N,1,4] is shared).
    """
    if boxes.ndim == 3 and boxes.shape[1] == 1:
        boxes = boxes[:, 0]
    if boxes.ndim == 3 and attrs.class_agnostic:
        raise ValueError("the reference takes per-class boxes only with class_agnostic 0")
    candidates = []
    classes = [c for c in range(scores.shape[1]) if c != attrs.background_class]
    if attrs.class_agnostic:
        best = np.array(classes)[np.argmax(scores[:, classes], axis=1)]
        best_scores = scores[np.arange(len(boxes)), best]
        order = np.argsort(-best_scores, kind="stable")
        order = order[best_scores[order] > attrs.score_threshold]
        kept = _greedy_nms(boxes, np.array(order, int), attrs.iou_threshold, attrs.max_output_boxes)
        candidates = [(float(best_scores[i]), int(best[i]), i) for i in kept]
    else:
        for c in classes:
            column = scores[:, c]
            order = np.argsort(-column, kind="stable")
            order = order[column[order] > attrs.score_threshold]
            kept = _greedy_nms(boxes[:, c] if boxes.ndim == 3 else boxes, order, attrs.iou_threshold,
                               attrs.max_output_boxes)
            candidates += [(float(column[i]), c, i) for i in kept]
    candidates.sort(key=lambda item: -item[0])
    return candidates[: attrs.max_output_boxes]


def efficient_nms(boxes: np.ndarray, scores: np.ndarray, attrs: EfficientNmsAttributes) -> dict[str, np.ndarray]:
    """``boxes`` [B,N,4] (or per class [B,N,C,4]) and ``scores`` [B,N,C] → the plugin's four outputs."""
    batch, k = boxes.shape[0], attrs.max_output_boxes
    result = {
        "num_detections": np.zeros((batch, 1), np.int32),
        "detection_boxes": np.zeros((batch, k, 4), np.float32),
        "detection_scores": np.zeros((batch, k), np.float32),
        "detection_classes": np.zeros((batch, k), np.int32),
    }
    for item in range(batch):
        kept = _one_image(boxes[item], scores[item], attrs)
        result["num_detections"][item, 0] = len(kept)
        for slot, (score, cls, index) in enumerate(kept):
            box = boxes[item, index]
            result["detection_boxes"][item, slot] = box if box.ndim == 1 else box[cls if box.shape[0] > 1 else 0]
            result["detection_scores"][item, slot] = score
            result["detection_classes"][item, slot] = cls
    return result


def as_tensorflow_would(detections: dict[str, np.ndarray], max_per_class: int) -> tuple[dict[str, np.ndarray], int, int]:
    """Apply what TensorFlow's NMS does and the plugin does not, to compare like with like.

    TensorFlow keeps at most ``max_per_class`` boxes per class and drops boxes left with
    no area after clipping to the image (the plugin does neither).  Returns the adjusted
    detections and how many boxes each rule removed.
    """
    adjusted = {key: np.array(value, copy=True) for key, value in detections.items()}
    capped = empty = 0
    for item in range(adjusted["detection_scores"].shape[0]):
        seen: dict[int, int] = {}
        for slot in range(int(adjusted["num_detections"][item, 0])):
            cls = int(adjusted["detection_classes"][item, slot])
            seen[cls] = seen.get(cls, 0) + 1
            box = adjusted["detection_boxes"][item, slot]
            if seen[cls] > max_per_class:
                adjusted["detection_scores"][item, slot], capped = 0.0, capped + 1
            elif box[2] <= box[0] or box[3] <= box[1]:
                adjusted["detection_scores"][item, slot], empty = 0.0, empty + 1
    return adjusted, capped, empty
