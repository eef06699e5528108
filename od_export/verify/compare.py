"""Compare an artifact's outputs with the SavedModel's the way a user judges detections.

No two runtimes compute a detector bit for bit alike: grappler's rewrites in a default
``tf.compat.v1.Session``, oneDNN's fused kernels, onnxruntime's graph optimisations and
every converter reorder float32 sums.  So the comparison has two parts:

* **Raw outputs** (``raw_detection_boxes``, ``raw_detection_scores``: every anchor or
  proposal before NMS) must agree element-wise within ``atol``.  The default, 1e-2 in
  normalised units (scores and box coordinates both live in [0, 1]), comes from float32
  arithmetic as measured: a reordered sum differs by a few ulps (float32's epsilon is
  1.2e-7), and through the 50–100 layers of these detectors, with random (untrained,
  so poorly conditioned) weights, that grows to at most ~7e-3 between the SavedModel
  and a default-session frozen graph (full-width FPN configs at 320²).  1e-2 keeps a
  1.4× margin; a real defect (a changed weight, a wrong preprocessing step, swapped
  outputs) moves them by 0.05 or more (see ``tests/test_validate.py``).
* **Final detections** (above ``score_threshold``) are matched by class and box overlap
  (IoU ≥ ``MATCH_IOU``, or coordinates equal within ``atol`` for boxes with no area), not by index: two detections with near-equal scores may swap
  places in NMS without being a failure.  A matched pair must agree within ``atol`` in each output's own units
  (:mod:`od_export.verify.output_units`: strided boxes, anchor indices, masks);
  a detection without a partner is a failure unless it is explained by the same
  rounding: its score lies within ``atol`` of the threshold, or the other side's list
  is full and it scores no higher than that list's last entry.
* ``num_detections`` must be equal.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from od_export.verify import output_units, proposals
from od_export.verify.output_units import PairContext as _PairContext
from od_export.verify.tolerance import DEFAULT_ATOL, DEFAULT_RTOL, DEFAULT_SCORE_THRESHOLD
MATCH_IOU = 0.5
EXACT_KEYS = ("num_detections",)
#: Before NMS: one row per anchor (single-stage) or per proposal (two-stage models).
RAW_KEYS = ("raw_detection_boxes", "raw_detection_scores")
#: Per-detection outputs compared between matched pairs; every ``detection_*`` key is one.
PER_DETECTION_PREFIX = "detection_"
UNMATCHED_KEY = "unmatched_detections"
#: Per-detection outputs the OD API flattens over the batch ([batch * detections, ...], in detection order):
#: Mask R-CNN's mask logits for every class.
FLAT_PER_DETECTION = ("mask_predictions",)


def _per_detection_rows(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``outputs`` with each flattened per-detection output shaped [batch, detections, ...] like the others."""
    scores = outputs.get("detection_scores")
    if scores is None or np.ndim(scores) != 2 or not any(k in outputs for k in FLAT_PER_DETECTION):
        return outputs
    batch, count = np.shape(scores)
    shaped = dict(outputs)
    for key in FLAT_PER_DETECTION:
        value = np.asarray(outputs.get(key, ()))
        if key in outputs and value.ndim >= 1 and value.shape[0] == batch * count:
            shaped[key] = value.reshape((batch, count) + value.shape[1:])
    return shaped


@dataclass(frozen=True)
class OutputDifference:
    key: str
    max_abs_diff: float
    ok: bool


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def _within(reference: np.ndarray, candidate: np.ndarray, atol: float, rtol: float) -> bool:
    """Every element within ``atol + rtol * |reference|`` (NaN never is)."""
    if reference.size == 0:
        return True
    ref, cand = reference.astype(np.float64), candidate.astype(np.float64)
    return bool(np.all(np.abs(ref - cand) <= atol + rtol * np.abs(ref)))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` [N,4] with every box in ``b`` [M,4] (either corner order)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    lo_a, hi_a = np.minimum(a[:, :2], a[:, 2:]), np.maximum(a[:, :2], a[:, 2:])
    lo_b, hi_b = np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])
    lo = np.maximum(lo_a[:, None], lo_b[None])
    hi = np.minimum(hi_a[:, None], hi_b[None])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a, area_b = np.prod(hi_a - lo_a, axis=-1), np.prod(hi_b - lo_b, axis=-1)
    union = area_a[:, None] + area_b[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclass(frozen=True)
class Matching:
    """Pairs (reference index, candidate index) and the detections left without a partner."""

    pairs: tuple[tuple[int, int], ...]
    unexplained: int


def _explained(score: float, other_scores: np.ndarray, other_full: bool, threshold: float, atol: float) -> bool:
    near_threshold = score <= threshold + atol
    truncated = other_full and other_scores.size > 0 and score <= float(other_scores.min()) + atol
    return near_threshold or truncated


def match_detections(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], item: int,
                     score_threshold: float, atol: float, candidate_floor: float | None = None) -> Matching:
    """Greedy match of batch item ``item``: highest reference score first, same class, best IoU.

    ``candidate_floor``: the lowest score the candidate kept before its list was cut
    (when the list was full but some of its entries were set aside afterwards).
    """
    ref_scores, cand_scores = reference["detection_scores"][item], candidate["detection_scores"][item]
    ref_keep, cand_keep = np.flatnonzero(ref_scores > score_threshold), np.flatnonzero(cand_scores > score_threshold)
    ref_keep = ref_keep[np.argsort(-ref_scores[ref_keep], kind="stable")]
    ref_boxes, cand_boxes = reference["detection_boxes"][item][ref_keep], candidate["detection_boxes"][item][cand_keep]
    iou = box_iou(ref_boxes, cand_boxes)
    # boxes with (almost) no area have no meaningful IoU: equal within atol counts as overlapping fully
    close = np.abs(ref_boxes[:, None].astype(np.float64) - cand_boxes[None]).max(axis=-1, initial=0.0) <= atol
    iou = np.where(close, 1.0, iou)
    same_class = reference["detection_classes"][item][ref_keep][:, None] == candidate["detection_classes"][item][cand_keep][None]
    iou = np.where(same_class, iou, -1.0)
    pairs, taken = [], np.zeros(len(cand_keep), bool)
    unexplained = 0
    ref_full = len(ref_scores) > 0 and ref_scores.min() > score_threshold
    cand_full = len(cand_scores) > 0 and cand_scores.min() > score_threshold
    if candidate_floor is not None:
        cand_full, cand_scores = True, np.array([candidate_floor])
    for row, ref_index in enumerate(ref_keep):
        options = np.where(taken, -1.0, iou[row]) if len(cand_keep) else np.array([])
        best = int(np.argmax(options)) if options.size else -1
        if best >= 0 and options[best] >= MATCH_IOU:
            taken[best] = True
            pairs.append((int(ref_index), int(cand_keep[best])))
        elif not _explained(float(ref_scores[ref_index]), cand_scores, cand_full, score_threshold, atol):
            unexplained += 1
    for column in np.flatnonzero(~taken):
        score = float(candidate["detection_scores"][item][cand_keep[column]])
        if not _explained(score, ref_scores, ref_full, score_threshold, atol):
            unexplained += 1
    return Matching(tuple(pairs), unexplained)


def _per_detection(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], keys: list[str],
                   score_threshold: float, atol: float, floors: np.ndarray | None) -> tuple[list[OutputDifference], int]:
    """Each per-detection output over the matched pairs, held to its own units (see ``output_units``)."""
    batch = np.asarray(reference["detection_scores"]).shape[0]
    worst = {key: 0.0 for key in keys}
    ok = {key: True for key in keys}
    unexplained = 0
    for item in range(batch):
        floor = None if floors is None or not np.isfinite(floors[item]) else float(floors[item])
        matching = match_detections(reference, candidate, item, score_threshold, atol, floor)
        unexplained += matching.unexplained
        if not matching.pairs:
            continue
        ref_rows, cand_rows = (list(rows) for rows in zip(*matching.pairs))
        for key in keys:
            ref, cand = np.asarray(reference[key][item])[ref_rows], np.asarray(candidate[key][item])[cand_rows]
            diff = _max_diff(ref, cand)
            worst[key] = max(worst[key], diff)
            ok[key] &= output_units.agrees(key, ref, cand, atol, _PairContext(reference, candidate, item,
                                                                              ref_rows, cand_rows))
    return [OutputDifference(k, d, ok[k]) for k, d in worst.items()], unexplained


def compare_outputs(
    reference: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    atol: float = DEFAULT_ATOL,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    candidate_floors: np.ndarray | None = None,
    rtol: float = DEFAULT_RTOL,
) -> tuple[OutputDifference, ...]:
    """Every output both sides have, judged as the module docstring says; missing keys fail.

    ``candidate_floors`` (per batch item, -inf where the list was not full) gives the
    last score of candidate lists that were cut and then thinned out.
    """
    reference, candidate = _per_detection_rows(reference), _per_detection_rows(candidate)
    shared = sorted(set(reference) & set(candidate))
    shaped = [k for k in shared if np.asarray(reference[k]).shape == np.asarray(candidate[k]).shape]
    differences = [OutputDifference(k, float("inf"), False) for k in shared if k not in shaped]
    detections = {"detection_boxes", "detection_scores", "detection_classes"} <= set(shaped)
    per_detection = [k for k in shaped if k.startswith(PER_DETECTION_PREFIX) or k in FLAT_PER_DETECTION] \
        if detections else []
    rows = proposals.proposal_order(reference, candidate, atol)
    for key in shaped:
        if key in per_detection:
            continue
        ref, cand = np.asarray(reference[key]), proposals.in_reference_order(key, np.asarray(candidate[key]), rows)
        diff = _max_diff(ref, cand)
        if key in RAW_KEYS:
            ok = _within(ref, cand, atol, rtol if key == RAW_KEYS[0] else 0.0)
        else:
            ok = diff == 0.0 if key in EXACT_KEYS else diff <= atol
        differences.append(OutputDifference(key, diff, ok))
    if per_detection:
        matched, unexplained = _per_detection(reference, candidate, per_detection, score_threshold, atol,
                                              candidate_floors)
        differences += matched + [OutputDifference(UNMATCHED_KEY, float(unexplained), unexplained == 0)]
    differences += [OutputDifference(k, float("inf"), False) for k in sorted(set(reference) ^ set(candidate))]
    return tuple(sorted(differences, key=lambda d: d.key))
