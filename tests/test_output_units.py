"""Per-detection outputs held to their own units: strided boxes, anchor indices, masks (pure numpy)."""
from __future__ import annotations

import numpy as np
import pytest

from od_export.verify.compare import compare_outputs
from od_export.verify.output_units import mask_iou


def detections(boxes, **extra) -> dict[str, np.ndarray]:
    boxes = np.asarray(boxes, np.float32)[None]
    count = boxes.shape[1]
    return {"detection_boxes": boxes, "detection_scores": np.linspace(0.9, 0.5, count, dtype=np.float32)[None],
            "detection_classes": np.ones((1, count), np.float32), "num_detections": np.float32([count]),
            **{k: np.asarray(v, np.float32)[None] for k, v in extra.items()}}


def verdicts(reference, candidate) -> dict[str, bool]:
    return {d.key: d.ok for d in compare_outputs(reference, candidate)}


BOXES = [[0.1, 0.1, 0.5, 0.6], [0.5, 0.5, 0.9, 0.8]]


@pytest.mark.parametrize("moved, ok", [(0.595, True), (1.2, True), (5.0, False)])
def test_strided_boxes_are_held_to_the_stride_factor(moved, ok):
    """A 512² CenterNet at stride 4 gives strided boxes in 0-128: 0.595 cells is 0.0046 of the image."""
    strided = np.asarray(BOXES, np.float32) * 128
    reference = detections(BOXES, detection_boxes_strided=strided)
    candidate = detections(BOXES, detection_boxes_strided=strided + np.float32([moved, 0, 0, 0]))
    assert verdicts(reference, candidate)["detection_boxes_strided"] is ok


def test_a_normalised_box_moved_as_far_still_fails():
    moved = np.asarray(BOXES, np.float32) + np.float32([0.0, 0.0, 0.0, 0.02])
    assert verdicts(detections(BOXES), detections(moved))["detection_boxes"] is False


def raw(boxes_at: dict[int, list[float]], count: int = 8) -> np.ndarray:
    table = np.tile(np.float32([0.0, 0.0, 0.05, 0.05]), (count, 1))
    for index, box in boxes_at.items():
        table[index] = box
    return table


def test_anchor_indices_that_differ_agree_when_their_anchors_boxes_do():
    near = [0.1, 0.1, 0.5, 0.6]
    reference = detections(BOXES, detection_anchor_indices=[3, 5], raw_detection_boxes=raw({3: near, 4: near}))
    candidate = detections(BOXES, detection_anchor_indices=[4, 5],
                           raw_detection_boxes=raw({3: near, 4: np.add(near, 0.001).tolist()}))
    assert verdicts(reference, candidate)["detection_anchor_indices"] is True
    far = detections(BOXES, detection_anchor_indices=[4, 5], raw_detection_boxes=raw({3: near, 4: [0.6, 0.6, 0.9, 0.9]}))
    assert verdicts(reference, far)["detection_anchor_indices"] is False


def test_anchor_indices_without_raw_boxes_must_be_equal():
    reference, candidate = detections(BOXES, detection_anchor_indices=[3, 5]), detections(BOXES, detection_anchor_indices=[4, 5])
    assert verdicts(reference, candidate)["detection_anchor_indices"] is False
    assert verdicts(reference, detections(BOXES, detection_anchor_indices=[3, 5]))["detection_anchor_indices"] is True


def masks(count: int = 2, size: int = 33) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    disc = np.clip(1.2 - np.hypot(yy - size / 2, xx - size / 2) / (size / 3), 0, 1)
    return np.stack([disc] * count).astype(np.float32)


def test_masks_whose_pixels_near_one_half_flip_still_agree():
    reference = masks()
    candidate = reference + np.where(np.abs(reference - 0.5) < 0.03, 0.05, 0.0).astype(np.float32)  # > atol there
    assert np.abs(candidate - reference).max() > 0.01 and mask_iou(reference, candidate).min() >= 0.9
    assert verdicts(detections(BOXES, detection_masks=reference), detections(BOXES, detection_masks=candidate))[
        "detection_masks"] is True


def test_a_mask_that_is_wrong_fails():
    reference = masks()
    candidate = reference.copy()
    candidate[1] = 1.0 - candidate[1]  # the second detection's mask inverted
    assert verdicts(detections(BOXES, detection_masks=reference), detections(BOXES, detection_masks=candidate))[
        "detection_masks"] is False


def test_mask_logits_follow_their_detections_and_are_judged_as_probabilities():
    """Mask R-CNN's mask_predictions [batch * detections, classes, h, w]: two detections that trade places carry
    their masks with them; a logit of 12 against 9 (both certain) agrees, a mask turned inside out does not."""
    from od_export.verify.compare import compare_outputs

    boxes = np.float32([[[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]]])
    logits = np.full((2, 3, 4, 4), -9.0, np.float32)
    logits[0, :, :2] = 12.0
    reference = {"detection_boxes": boxes, "detection_scores": np.float32([[0.9, 0.8]]),
                 "detection_classes": np.float32([[1, 2]]), "mask_predictions": logits}
    swapped = {"detection_boxes": boxes[:, ::-1], "detection_scores": np.float32([[0.8, 0.9]]),
               "detection_classes": np.float32([[2, 1]]), "mask_predictions": np.where(logits > 0, 9.0, -12.0)[::-1]}
    verdict = {d.key: d.ok for d in compare_outputs(reference, swapped)}
    assert verdict["mask_predictions"] is True and verdict["unmatched_detections"] is True
    swapped["mask_predictions"] = -swapped["mask_predictions"]
    assert {d.key: d.ok for d in compare_outputs(reference, swapped)}["mask_predictions"] is False
