"""A SavedModel that serves every input type: each signature must give ``serving_default``'s detections.

The signatures take different inputs, so they are fed what decodes to the very same
pixels: each image is JPEG-encoded once (``encoded_image_string_tensor`` gets those
bytes, ``tf_example`` an Example holding them) and decoded once (``image_tensor`` and
``float_image_tensor`` get those pixels).  The OD API decodes with the same
``decode_image``, so every signature sees identical pixels, and any difference is
the signature's own (another function, another model, other weights).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from od_export import compat
from od_export.options import INPUT_TYPES
from od_export.verify import samples
from od_export.verify.reference import Reference
from od_export.verify.report import ArtifactCheck, compare_runs
from od_export.verify.tolerance import Tolerance

STRING_TYPES = ("encoded_image_string_tensor", "tf_example")


def _decoded(image: np.ndarray) -> np.ndarray:
    tf = compat.import_tensorflow()
    return tf.io.decode_image(samples.encode_jpeg(image), channels=3).numpy()


def feed(input_type: str, image: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """The input for ``input_type`` that shows the model ``decoded`` (the JPEG round trip of ``image``)."""
    return samples.input_batch(input_type, image if input_type in STRING_TYPES else decoded)


def signature_checks(reference: Reference, tolerance: Tolerance) -> list[ArtifactCheck]:
    """One check per other signature of the reference's SavedModel (none for a one-signature SavedModel)."""
    loaded = reference.function._od_export_loaded
    own = next((key for key in loaded.signatures if loaded.signatures[key] is reference.function), None)
    keys = [key for key in loaded.signatures if key != own and (key in INPUT_TYPES or key == "serving_default")]
    if not keys:
        return []
    tf = compat.import_tensorflow()
    decoded = [_decoded(image) for image in reference.images]

    def run(function: Any, input_type: str, index: int) -> dict[str, np.ndarray]:
        value = feed(input_type, reference.images[index], decoded[index])
        return {k: v.numpy() for k, v in function(input_tensor=tf.constant(value)).items()}

    baseline = [run(reference.function, reference.input_type, i) for i in range(len(reference.images))]
    checks = []
    for key in keys:
        function = loaded.signatures[key]
        input_type = key if key in INPUT_TYPES else _input_type_of(function, lambda t: run(function, t, 0))
        checks.append(compare_runs(ArtifactCheck(reference.unit.name, f"signature {key}", input_type), baseline,
                                   lambda i, f=function, t=input_type: run(f, t, i), tolerance))
    return checks


def _input_type_of(function: Any, attempt: Any) -> str:
    """The input type a signature takes: by dtype, and for strings the first of JPEG or tf.Example it accepts."""
    dtype = function.structured_input_signature[1]["input_tensor"].dtype.name
    candidates = {"uint8": ["image_tensor"], "float32": ["float_image_tensor"]}.get(dtype, list(STRING_TYPES))
    for input_type in candidates[:-1]:
        try:
            attempt(input_type)
            return input_type
        except Exception:  # the runtime rejects this encoding: try the next
            continue
    return candidates[-1]
