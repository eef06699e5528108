"""How closely an artifact must reproduce the SavedModel; the reasoning is in :mod:`od_export.verify.compare`."""
from __future__ import annotations

from dataclasses import dataclass

#: Normalised units (scores and box coordinates live in [0, 1]); justified in verify/compare.py.
DEFAULT_ATOL = 1e-2
DEFAULT_SCORE_THRESHOLD = 0.05


@dataclass(frozen=True)
class Tolerance:
    atol: float = DEFAULT_ATOL
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
