"""Compare two sets of detection outputs the way a user judges them.

``num_detections`` must be equal; for detections the reference scores above
``score_threshold`` the classes must be equal and boxes and scores within ``atol``;
every other output shared by both sides (raw boxes and scores, multiclass scores,
anchor indices) must be within ``atol`` everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXACT_KEYS = ("num_detections",)
PER_DETECTION_KEYS = ("detection_boxes", "detection_scores", "detection_classes")


@dataclass(frozen=True)
class OutputDifference:
    key: str
    max_abs_diff: float
    ok: bool


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def compare_outputs(
    reference: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    atol: float = 1e-4,
    score_threshold: float = 0.05,
) -> tuple[OutputDifference, ...]:
    differences = []
    keep = None
    if "detection_scores" in reference:
        keep = np.asarray(reference["detection_scores"]) > score_threshold
    for key in sorted(set(reference) & set(candidate)):
        ref, cand = np.asarray(reference[key]), np.asarray(candidate[key])
        if ref.shape != cand.shape:
            differences.append(OutputDifference(key, float("inf"), False))
            continue
        if key in PER_DETECTION_KEYS and keep is not None and ref.shape[: keep.ndim] == keep.shape:
            ref, cand = ref[keep], cand[keep]
        diff = _max_diff(ref, cand)
        if key in EXACT_KEYS or key == "detection_classes":
            ok = diff == 0.0
        else:
            ok = diff <= atol
        differences.append(OutputDifference(key, diff, ok))
    missing = sorted(set(reference) ^ set(candidate))
    differences.extend(OutputDifference(key, float("inf"), False) for key in missing)
    return tuple(differences)
