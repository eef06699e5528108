"""How closely an artifact must reproduce the SavedModel; the reasoning is in :mod:`od_export.verify.compare`."""
from __future__ import annotations

from dataclasses import dataclass

#: Normalised units (scores and box coordinates live in [0, 1]); justified in verify/compare.py.
DEFAULT_ATOL = 1e-2
DEFAULT_SCORE_THRESHOLD = 0.05
#: Precision → the detection agreement (see verify/agreement.py) an artifact must reach by default.
#: fp16 keeps ~3 significant digits, so it finds the same objects; int8 trades some of them
#: for a file about 4× smaller.
DEFAULT_MIN_AGREEMENT = {"fp16": 0.9, "int8": 0.5}


@dataclass(frozen=True)
class Tolerance:
    atol: float = DEFAULT_ATOL
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    #: Detection agreement required of fp16/int8 artifacts; None: the precision's default.
    min_agreement: float | None = None
