"""How closely an artifact must reproduce the SavedModel; the reasoning is in :mod:`od_export.verify.compare`."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from od_export.errors import InputError

#: Normalised units (scores and box coordinates live in [0, 1]); justified in verify/compare.py.
DEFAULT_ATOL = 1e-2
#: Raw boxes of an untrained model reach far outside the image, where float32 rounding
#: grows with the coordinate: raw outputs may also differ by this fraction of their size.
DEFAULT_RTOL = 1e-2
DEFAULT_SCORE_THRESHOLD = 0.05
#: Precision → the detection agreement (see verify/agreement.py) an artifact must reach by default.
#: fp16 keeps ~3 significant digits, so it finds the same objects.  bf16 (OpenVINO's CPU default
#: on CPUs with AVX512_BF16 or AMX) keeps an 8-bit significand, about as coarse as int8's 256
#: levels, and gets int8's threshold; int8 trades some objects for a file about 4× smaller.
DEFAULT_MIN_AGREEMENT = {"fp16": 0.9, "bf16": 0.5, "int8": 0.5}
REDUCED_PRECISIONS = tuple(DEFAULT_MIN_AGREEMENT)
#: Precisions judged by another's threshold: the same 8-bit integer arithmetic.
SAME_THRESHOLD = {"int8_full": "int8"}
#: Precision → minimum agreement, as given by the user (precisions left out keep their default).
Thresholds = tuple[tuple[str, float], ...]


def thresholds(values: Mapping[str, float] | Iterable[tuple[str, float]]) -> Thresholds:
    """Checked, sorted ``(precision, fraction)`` pairs; an unknown precision or a non-fraction is an InputError."""
    pairs = dict(values.items() if isinstance(values, Mapping) else values)
    for precision, value in pairs.items():
        if precision not in DEFAULT_MIN_AGREEMENT:
            raise InputError(f"unknown precision {precision!r} for a minimum agreement; choose from: "
                             f"{', '.join(REDUCED_PRECISIONS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise InputError(f"minimum agreement {value} for {precision} is not a fraction; give a value from 0 to 1")
    return tuple(sorted((p, float(v)) for p, v in pairs.items()))


def parse_threshold(text: str) -> tuple[str, float]:
    """``"int8=0.3"`` → ``("int8", 0.3)``; a bare number names no precision and is refused."""
    precision, sep, value = text.partition("=")
    if not sep:
        raise InputError(f"minimum agreement {text!r} names no precision; write it as PRECISION=FRACTION, "
                         f"like int8=0.3 (precisions: {', '.join(REDUCED_PRECISIONS)})")
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"minimum agreement {text!r} is not PRECISION=FRACTION; write it like int8=0.3") from None
    [pair] = thresholds({precision.strip(): number})
    return pair


def describe_defaults() -> str:
    return ", ".join(f"{p} {v:g}" for p, v in DEFAULT_MIN_AGREEMENT.items())


@dataclass(frozen=True)
class Tolerance:
    atol: float = DEFAULT_ATOL
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    #: Detection agreement required of reduced-precision artifacts, per precision; others: the default.
    min_agreement: Thresholds = ()
    rtol: float = DEFAULT_RTOL

    def min_agreement_for(self, precision: str) -> float:
        """The threshold for a precision; integer files (TFLite int8_full, OpenVINO int8) have int8's."""
        precision = SAME_THRESHOLD.get(precision, precision)
        return dict(self.min_agreement).get(precision, DEFAULT_MIN_AGREEMENT[precision])
