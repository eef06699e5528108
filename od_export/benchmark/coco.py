"""COCO metrics by the OD API's own evaluator, as ``model_lib_v2``'s evaluation computes them.

Ground truth and detections go to ``CocoDetectionEvaluator`` in absolute pixel
coordinates of each original image, as ``eval_util.result_dict_for_batched_example``
scales them for the evaluation loop.  The precision-recall curves for the pictures
come from the same evaluation (pycocotools' accumulated precision at IoU 0.5).
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from od_export import compat
from od_export.benchmark.data import EvalImage

MAP = "DetectionBoxes_Precision/mAP"
MAP50 = "DetectionBoxes_Precision/mAP@.50IOU"
AR100 = "DetectionBoxes_Recall/AR@100"


@dataclass
class CocoResult:
    """The headline metrics, every metric the evaluator reports, and the IoU-0.5 precision-recall curve."""

    map: float
    map50: float
    ar100: float
    metrics: dict[str, float] = field(default_factory=dict)
    recall: list[float] = field(default_factory=list)
    precision: list[float] = field(default_factory=list)


def categories(num_classes: int, names: dict[int, str]) -> list[dict[str, Any]]:
    return [{"id": i, "name": names.get(i, f"class {i}")} for i in range(1, num_classes + 1)]


def evaluate(images: Sequence[EvalImage], detections: Sequence[dict[str, np.ndarray]],
             category_list: list[dict[str, Any]]) -> CocoResult:
    """``detections[i]`` (the SavedModel's conventions, batch of one) for ``images[i]`` → COCO metrics."""
    compat.import_object_detection()
    from object_detection.core import standard_fields as fields
    from object_detection.metrics import coco_evaluation, coco_tools

    evaluator = coco_evaluation.CocoDetectionEvaluator(category_list)
    for image, found in zip(images, detections):
        evaluator.add_single_ground_truth_image_info(image.image_id, {
            fields.InputDataFields.groundtruth_boxes: image.absolute_boxes,
            fields.InputDataFields.groundtruth_classes: image.classes.astype(np.int32)})
        count = int(np.asarray(found["num_detections"]).reshape(-1)[0])
        height, width = image.pixels.shape[:2]
        scale = np.array([height, width, height, width], np.float32)
        evaluator.add_single_detected_image_info(image.image_id, {
            fields.DetectionResultFields.detection_boxes: np.asarray(found["detection_boxes"][0][:count]) * scale,
            fields.DetectionResultFields.detection_scores: np.asarray(found["detection_scores"][0][:count]),
            fields.DetectionResultFields.detection_classes: np.asarray(found["detection_classes"][0][:count]).astype(np.int32)})
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its summary; stdout is for --json
        if not evaluator._detection_boxes_list:  # nothing detected: the evaluator's own figures (all zero)
            metrics = {k: float(v) for k, v in evaluator.evaluate().items()}
            return CocoResult(metrics[MAP], metrics[MAP50], metrics[AR100], metrics)
        metrics, box_evaluator = _evaluate(evaluator, coco_tools)
    recall, precision = _pr_curve(box_evaluator)
    return CocoResult(metrics[MAP], metrics[MAP50], metrics[AR100], metrics, recall, precision)


def _evaluate(evaluator: Any, coco_tools: Any) -> tuple[dict[str, float], Any]:
    """``CocoDetectionEvaluator.evaluate``, step by step, keeping its ``COCOEvalWrapper`` for the curves."""
    groundtruth = {"annotations": evaluator._groundtruth_list,
                   "images": [{"id": image_id} for image_id in evaluator._image_ids],
                   "categories": evaluator._categories}
    wrapped = coco_tools.COCOWrapper(groundtruth)
    box_evaluator = coco_tools.COCOEvalWrapper(wrapped, wrapped.LoadAnnotations(evaluator._detection_boxes_list),
                                               agnostic_mode=False)
    metrics, per_category = box_evaluator.ComputeMetrics(
        include_metrics_per_category=evaluator._include_metrics_per_category,
        all_metrics_per_category=evaluator._all_metrics_per_category)
    metrics.update(per_category)
    return {"DetectionBoxes_" + k: float(v) for k, v in metrics.items()}, box_evaluator


def _pr_curve(box_evaluator: Any) -> tuple[list[float], list[float]]:
    """Precision at 101 recall points, IoU 0.5, all areas, 100 detections, averaged over classes with data."""
    table = box_evaluator.eval["precision"][0, :, :, 0, -1]  # [recall points, classes]
    valid = (table > -1).all(axis=0)
    curve = table[:, valid].mean(axis=1) if valid.any() else np.zeros(table.shape[0])
    return [float(r) for r in box_evaluator.params.recThrs], [float(p) for p in curve]
