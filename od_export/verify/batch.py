"""A SavedModel whose image input takes any batch size: a batch must give each image's own detections.

The exporter maps its per-image preprocessing over the batch, and the model then
runs the batch as one tensor; a model whose layers mixed images (a batch statistic, a
reshape over the batch) would pass every single-image check and fail here.  The batch
holds the reference images resized to one size (a batch has one), and each row is
compared with the same image run alone.
"""
from __future__ import annotations

import numpy as np

from od_export import compat
from od_export.verify import samples
from od_export.verify.reference import Reference
from od_export.verify.report import ArtifactCheck, compare_runs
from od_export.verify.tolerance import Tolerance

BATCH = 4
PIXEL_TYPES = ("image_tensor", "float_image_tensor")


def opens_batch(function: object) -> bool:
    """Whether a signature's ``input_tensor`` takes a batch of any size."""
    spec = function.structured_input_signature[1]["input_tensor"]
    return spec.shape.rank is not None and spec.shape.rank > 0 and spec.shape[0] is None


def batch_checks(reference: Reference, tolerance: Tolerance) -> list[ArtifactCheck]:
    """One check (``batch of 4``) for a pixel input with an open batch; none otherwise."""
    if reference.input_type not in PIXEL_TYPES or not opens_batch(reference.function):
        return []
    tf = compat.import_tensorflow()
    height, width = reference.images[0].shape[:2]
    images = [samples.resize_image(reference.images[i % len(reference.images)], height, width) for i in range(BATCH)]
    images = [image if i < len(reference.images) else image[:, ::-1].copy() for i, image in enumerate(images)]
    singles = [reference.run(image) for image in images]
    check = ArtifactCheck(reference.unit.name, f"batch of {BATCH}", reference.input_type)
    batched: dict[str, np.ndarray] = {}

    def row(index: int) -> dict[str, np.ndarray]:
        if not batched:
            stacked = np.concatenate([reference.feed(image) for image in images])
            batched.update({k: v.numpy() for k, v in reference.function(input_tensor=tf.constant(stacked)).items()})
        return {key: value[index:index + 1] for key, value in batched.items()}

    return [compare_runs(check, singles, row, tolerance)]
