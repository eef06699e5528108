"""Each per-detection output held to a tolerance in its own units, for one batch item's matched pairs.

The default tolerance ``atol`` is sized for normalised values: box coordinates,
keypoint coordinates (normalised like boxes) and scores, all in [0, 1].  Three
outputs are not in those units:

* ``detection_boxes_strided`` (CenterNet) is in output-stride cells, 0 to
  input/stride (0–128 for a 512² input at stride 4).  The same box is
  ``detection_boxes`` × (input / stride), so its tolerance is ``atol`` times that
  factor, read from the reference pair itself (strided extent over normalised extent).
* ``detection_anchor_indices`` holds indices, and two anchors (or Faster R-CNN
  proposals) with near-equal boxes may give the same detection under float rounding.
  Equal indices agree; different ones agree when the anchors they point at have
  decoded boxes (``raw_detection_boxes`` of each side) within ``atol``.  Without raw
  boxes, indices must be equal.
* ``detection_masks`` (Mask R-CNN, DeepMAC) holds per-pixel probabilities of a box's
  mask.  Values within ``atol`` agree; otherwise each pair's masks, cut at 0.5, must
  overlap with an IoU of at least ``MASK_IOU``, since a pixel whose probability sits
  near 0.5 flips with any rounding.
* ``mask_predictions`` (Mask R-CNN's export: every class's mask logits per detection,
  flattened over the batch) is paired through the detections like the outputs above
  and judged as the probabilities it gives, by the ``detection_masks`` rule per class.
* ``detection_classes`` must be equal (the matching pairs same-class detections only).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Masks cut at 0.5 must overlap this much for each matched pair whose probabilities differ by more than atol.
MASK_IOU = 0.9
#: Box extents below this (normalised) say too little about the stride factor to read it from.
_MIN_EXTENT = 1e-3


@dataclass(frozen=True)
class PairContext:
    """Both sides' full outputs, the batch item, and the matched rows (reference, candidate) in order."""

    reference: dict[str, np.ndarray]
    candidate: dict[str, np.ndarray]
    item: int
    ref_rows: list[int]
    cand_rows: list[int]


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))


def stride_factor(context: PairContext) -> float:
    """input/stride for this item: the reference's strided box extents over its normalised ones (at least 1)."""
    boxes = np.asarray(context.reference["detection_boxes"][context.item], np.float64)[context.ref_rows]
    strided = np.asarray(context.reference["detection_boxes_strided"][context.item], np.float64)[context.ref_rows]
    extent = np.abs(boxes[:, 2:] - boxes[:, :2])
    strided_extent = np.abs(strided[:, 2:] - strided[:, :2])
    usable = extent > _MIN_EXTENT
    if not usable.any():
        return max(1.0, float(np.abs(strided).max(initial=1.0)))  # boxes of no size: the largest coordinate bounds it
    return max(1.0, float(np.max(strided_extent[usable] / extent[usable])))


def _anchor_indices_agree(ref: np.ndarray, cand: np.ndarray, atol: float, context: PairContext) -> bool:
    differ = np.flatnonzero(ref != cand)
    if differ.size == 0:
        return True
    key = "raw_detection_boxes"
    if key not in context.reference or key not in context.candidate:
        return False
    ref_raw, cand_raw = context.reference[key][context.item], context.candidate[key][context.item]
    ref_index, cand_index = ref[differ].astype(np.int64), cand[differ].astype(np.int64)
    if (ref_index < 0).any() or (cand_index < 0).any() or max(ref_index.max(), cand_index.max()) >= len(ref_raw):
        return False
    return bool(np.all(_diff(ref_raw[ref_index], cand_raw[cand_index]) <= atol))


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each pair of masks [N, H, W] cut at 0.5 (1.0 for two empty masks)."""
    a, b = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    axes = tuple(range(1, a.ndim))
    inter, union = np.sum(a & b, axis=axes), np.sum(a | b, axis=axes)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def agrees(key: str, ref: np.ndarray, cand: np.ndarray, atol: float, context: PairContext) -> bool:
    """Whether the matched rows of output ``key`` agree, as the module docstring says."""
    if ref.size == 0:
        return True
    if key == "detection_classes":
        return bool(np.all(ref == cand))
    if key == "detection_anchor_indices":
        return _anchor_indices_agree(ref, cand, atol, context)
    if key == "detection_boxes_strided":
        return bool(np.all(_diff(ref, cand) <= atol * stride_factor(context)))
    if key == "mask_predictions":  # logits [N, classes, h, w]: judged as the probabilities they give, per class
        ref, cand = (1.0 / (1.0 + np.exp(-np.asarray(v, np.float64).reshape((-1,) + v.shape[2:]))) for v in (ref, cand))
        key = "detection_masks"
    if key == "detection_masks":
        close = _diff(ref, cand).reshape(len(ref), -1).max(axis=1) <= atol
        return bool(np.all(close | (mask_iou(ref, cand) >= MASK_IOU)))
    return bool(np.all(_diff(ref, cand) <= atol))
