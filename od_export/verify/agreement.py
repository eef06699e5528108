"""Detection-level agreement: how a reduced-precision artifact (fp16, int8) is judged.

Quantised weights and activations move every score and box a little, so an fp16 or
int8 artifact cannot reproduce the SavedModel's outputs within float32 tolerances,
and should not be asked to.  What its users care about is whether it finds the same
objects.  The metric, per check:

* **agreement**: the fraction of the SavedModel's detections above the score
  threshold that the artifact also reports, with the same class and IoU ≥ 0.5
  (greedy, highest score first, as in :func:`od_export.verify.compare.match_detections`);
* **extra**: the artifact's detections above the threshold that match none of the
  SavedModel's (reported, so that a model that finds everything plus noise shows it);
* **max score difference** and **mean IoU** over the matched pairs.

The check passes when the agreement reaches ``min_agreement``.  Each precision has a
default (:data:`od_export.verify.tolerance.DEFAULT_MIN_AGREEMENT`) that a user may replace,
precision by precision.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from od_export.verify.compare import box_iou, match_detections
from od_export.verify.tolerance import Tolerance


@dataclass(frozen=True)
class Agreement:
    precision: str
    matched: int
    total: int
    extra: int
    max_score_diff: float
    mean_iou: float
    score_threshold: float
    min_agreement: float

    @property
    def fraction(self) -> float:
        return self.matched / self.total if self.total else 1.0

    @property
    def ok(self) -> bool:
        return self.fraction >= self.min_agreement

    def describe(self) -> str:
        return (f"{self.precision}: {self.matched}/{self.total} = {self.fraction:.2f} of the SavedModel's detections "
                f"above {self.score_threshold:g} found (same class, IoU >= 0.5; required {self.min_agreement:g}), "
                f"{self.extra} extra, max score diff {self.max_score_diff:.3g}, mean IoU {self.mean_iou:.3f}")

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "agreement": round(self.fraction, 4), "matched": self.matched,
                "total": self.total, "extra": self.extra, "max_score_diff": self.max_score_diff,
                "mean_iou": self.mean_iou, "score_threshold": self.score_threshold,
                "min_agreement": self.min_agreement, "ok": self.ok}


def detection_agreement(references: Sequence[dict[str, np.ndarray]], candidates: Sequence[dict[str, np.ndarray]],
                        precision: str, tolerance: Tolerance) -> Agreement:
    """Agreement of ``candidates[i]`` with ``references[i]`` over every image and batch item.

    Boxes with no area (an untrained model's, say) have no IoU: two of them whose
    coordinates agree within ``tolerance.atol`` count as the same box.
    """
    score_threshold = tolerance.score_threshold
    min_agreement = tolerance.min_agreement_for(precision)
    matched = total = extra = 0
    score_diffs: list[float] = [0.0]
    ious: list[float] = []
    for reference, candidate in zip(references, candidates):
        for item in range(np.asarray(reference["detection_scores"]).shape[0]):
            matching = match_detections(reference, candidate, item, score_threshold, tolerance.atol)
            ref_scores, cand_scores = reference["detection_scores"][item], candidate["detection_scores"][item]
            total += int(np.sum(ref_scores > score_threshold))
            matched += len(matching.pairs)
            extra += int(np.sum(cand_scores > score_threshold)) - len(matching.pairs)
            for ref_index, cand_index in matching.pairs:
                score_diffs.append(abs(float(ref_scores[ref_index]) - float(cand_scores[cand_index])))
                ref_box, cand_box = reference["detection_boxes"][item][[ref_index]], candidate["detection_boxes"][item][[cand_index]]
                iou = float(box_iou(ref_box, cand_box)[0, 0])
                if iou == 0.0:  # boxes with no area that the matching paired because they coincide within atol
                    iou = 1.0
                ious.append(iou)
    return Agreement(precision, matched, total, extra, max(score_diffs), float(np.mean(ious)) if ious else 0.0,
                     score_threshold, min_agreement)
