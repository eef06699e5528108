"""A two-stage model's per-proposal outputs, paired by proposal before they are compared.

A single-stage model's raw rows are its anchors, always in the same order.  A
two-stage model's are the proposals its first stage kept, in score order, and
near-tied proposals trade places under float rounding as detections do.  Every output
with one row per proposal is then permuted the same way: the raw boxes and scores, and
for Mask R-CNN (whose export carries the whole prediction dictionary) the proposal
boxes, the second stage's class predictions, refined box encodings and box classifier
features.  So the candidate's proposals are paired with the reference's by their raw
box (rows that agree in place keep it; each row that differs takes the unused candidate
row with the closest box), and every per-proposal output is compared in that order.
A proposal only one side kept still fails the comparison.  Where the export carries the
first stage's normalised proposal boxes, those are the pairing key.
"""
from __future__ import annotations

import numpy as np

#: Outputs with one row per proposal: shaped [batch, proposals, ...] or, as the second stage
#: flattens them, [batch * proposals, ...].
PROPOSAL_KEYS = ("raw_detection_boxes", "raw_detection_scores", "proposal_boxes", "proposal_boxes_normalized",
                 "class_predictions_with_background", "refined_box_encodings", "box_classifier_features")
#: Reference rows whose distances to every candidate row are held at once: bounds the memory of a
#: failing check (a 320² FPN has 12,804 anchors; all pairs at once took 11.6 GB).
_ROWS_PER_BLOCK = 32


def proposal_order(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray],
                   atol: float) -> list[np.ndarray] | None:
    """Per batch item, the candidate's rows in the reference's order; None where the rows agree in place.

    Rows are paired by the first stage's own boxes where the export has them (Mask R-CNN's
    ``proposal_boxes_normalized``), so a second stage that differs shows as its own outputs
    differing, not as proposals that lost their partners; else by the raw boxes.
    """
    both = [k for k in ("proposal_boxes_normalized", "raw_detection_boxes") if k in reference and k in candidate]
    if not both:
        return None
    key = both[0]
    ref_boxes, cand_boxes = np.asarray(reference[key], np.float64), np.asarray(candidate[key], np.float64)
    if ref_boxes.shape != cand_boxes.shape or ref_boxes.ndim != 3 or ref_boxes.size == 0:
        return None
    if float(np.max(np.abs(ref_boxes - cand_boxes))) <= atol:
        return None
    return [_closest_rows(ref_item, cand_item, atol) for ref_item, cand_item in zip(ref_boxes, cand_boxes)]


def in_reference_order(key: str, candidate: np.ndarray, rows: list[np.ndarray] | None) -> np.ndarray:
    """``candidate``'s per-proposal output ``key`` reordered to the reference's proposals (others unchanged)."""
    if rows is None or key not in PROPOSAL_KEYS:
        return candidate
    batch, count = len(rows), len(rows[0])
    if candidate.ndim >= 2 and candidate.shape[:2] == (batch, count):
        return np.stack([candidate[item][order] for item, order in enumerate(rows)])
    if candidate.ndim >= 1 and candidate.shape[0] == batch * count:
        items = candidate.reshape((batch, count) + candidate.shape[1:])
        return np.stack([items[item][order] for item, order in enumerate(rows)]).reshape(candidate.shape)
    return candidate


def _closest_rows(ref_item: np.ndarray, cand_item: np.ndarray, atol: float) -> np.ndarray:
    """Greedy nearest-box assignment of candidate rows to the reference rows that differ in place."""
    order = np.arange(len(ref_item))
    moved = np.flatnonzero(np.abs(ref_item - cand_item).max(axis=-1) > atol)
    candidates = cand_item[moved]
    taken = np.zeros(len(moved))  # +inf once a candidate row is paired
    for start in range(0, len(moved), _ROWS_PER_BLOCK):
        rows = moved[start:start + _ROWS_PER_BLOCK]
        distance = np.abs(ref_item[rows, None] - candidates[None]).max(axis=-1)
        for row, distances in zip(rows, distance):
            best = int(np.argmin(distances + taken))
            taken[best] = np.inf
            order[row] = moved[best]
    return order
