"""Generic graphs (not OD API exports): sample inputs from their specs, and output comparison.

A TF1 graph says little about its inputs beyond dtype and shape, so the samples are
built from those: an image-shaped input gets the smooth sample image (uint8 pixels,
or the same values as floats), a string vector gets PNG bytes of it (lossless, so a
decoding front end sees the very same pixels), other numbers are seeded random
values.  Unknown dimensions become 1 for the batch and 64 elsewhere.  Every artifact
receives the same arrays and must reproduce the checkpointed graph's outputs within
float32 rounding (integer and string outputs exactly).  Detection outputs
(``detection_boxes``, ``detection_scores``, ``detection_classes``) are judged as every
export's are (:mod:`od_export.verify.compare`): a TF2 runtime's grappler reorders
float sums, and near-tied detections may swap places.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from od_export import compat
from od_export.verify import samples

UNKNOWN_BATCH = 1
UNKNOWN_DIM = 64
#: float32 rounding through a reordered graph (grappler folds constants the session computed).
RTOL = 1e-4
ATOL = 1e-4
DETECTION_KEYS = frozenset({"detection_boxes", "detection_scores", "detection_classes"})


def _dims(shape: list[int | None] | None) -> list[int]:
    if shape is None:
        return [UNKNOWN_BATCH]
    return [(UNKNOWN_BATCH if i == 0 else UNKNOWN_DIM) if d is None else d for i, d in enumerate(shape)]


def png_bytes(image: np.ndarray) -> bytes:
    tf = compat.import_tensorflow()
    return bytes(tf.io.encode_png(image).numpy())


def sample_value(spec: dict[str, Any], seed: int = 0) -> np.ndarray:
    """One sample array for an input described as ``{"dtype": ..., "shape": [...]}``."""
    dtype, dims = spec["dtype"], _dims(spec["shape"])
    rng = np.random.default_rng(seed)
    if len(dims) == 4 and dims[3] in (1, 3) and dtype in ("uint8", "float32", "float16"):
        image = samples.sample_image(dims[1], dims[2], seed=seed)
        image = image if dims[3] == 3 else image.mean(axis=2, keepdims=True).astype(np.uint8)
        return np.repeat(image[np.newaxis], dims[0], axis=0).astype(dtype)
    if dtype == "string":
        image = samples.sample_image(UNKNOWN_DIM, UNKNOWN_DIM, seed=seed)
        return np.array([png_bytes(image)] * int(np.prod(dims)), dtype=object).reshape(dims)
    if dtype == "bool":
        return np.zeros(dims, dtype=bool)
    if dtype.startswith(("int", "uint")):
        return rng.integers(0, 5, size=dims).astype(dtype)
    return rng.normal(size=dims).astype(dtype)


def sample_candidates(spec: dict[str, Any], seed: int = 0) -> list[np.ndarray]:
    """Sample values to try in order: a string input may want image bytes or a serialized tf.Example."""
    spec = {**spec, "dtype": spec.get("dtype") or "float32"}
    first = sample_value(spec, seed)
    if spec["dtype"] != "string":
        return [first]
    example = np.vectorize(_tf_example_of_png, otypes=[object])(first)
    return [first, example]


def _tf_example_of_png(encoded: bytes) -> bytes:
    tf = compat.import_tensorflow()
    feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
               "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"png"]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@dataclass(frozen=True)
class Mismatch:
    key: str
    detail: str

    def describe(self) -> str:
        return f"{self.key}: {self.detail}"


def compare_outputs(expected: dict[str, np.ndarray], actual: dict[str, Any]) -> list[Mismatch]:
    """Every output of ``expected`` must be in ``actual`` with the same shape and values."""
    if DETECTION_KEYS <= set(expected):
        from od_export.verify import compare

        differences = compare.compare_outputs(expected, {k: np.asarray(v) for k, v in actual.items() if k in expected})
        return [Mismatch(d.key, f"max |diff| {d.max_abs_diff:.3g}") for d in differences if not d.ok]
    problems = []
    for key, want in expected.items():
        if key not in actual:
            problems.append(Mismatch(key, "missing"))
            continue
        got = np.asarray(actual[key])
        want = np.asarray(want)
        if got.shape != want.shape:
            problems.append(Mismatch(key, f"shape {list(got.shape)}, expected {list(want.shape)}"))
        elif want.dtype.kind in "fc":
            if not np.allclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True):
                problems.append(Mismatch(key, f"max |diff| {float(np.max(np.abs(got - want))):.3g}"))
        elif not np.array_equal(got, want):
            problems.append(Mismatch(key, f"{int(np.sum(got != want))} of {want.size} values differ"))
    return problems


def run_signature(function: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A loaded SavedModel signature on ``feeds`` (keys are the signature's input keys)."""
    tf = compat.import_tensorflow()
    return {k: v.numpy() for k, v in function(**{k: tf.constant(v) for k, v in feeds.items()}).items()}
