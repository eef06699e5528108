"""A reference implementation of TensorRT's ``CropAndResize`` plugin, in NumPy.

The plugin (``plugin/cropAndResizePlugin``) crops with TensorFlow's ``crop_and_resize``
semantics: a normalised box ``[y1, x1, y2, x2]`` is sampled on a ``crop_height`` ×
``crop_width`` grid at ``y1*(H-1) + i*(y2-y1)*(H-1)/(crop_height-1)`` (the box centre
for a crop of one), bilinearly; a sample outside ``[0, H-1]`` reads 0.  Positions are
computed in float32, operation by operation, as TensorFlow's CPU kernel computes them:
the result equals ``tf.image.crop_and_resize`` bit for bit (``tests/test_plugin_graph.py``).

Inputs as the plugin takes them: features ``[N, C, H, W]`` and boxes ``[N, R, 4]`` (or
``[N, R, 4, 1]``); output ``[N, R, C, crop_height, crop_width]``.
"""
from __future__ import annotations

import numpy as np


def _samples(start: np.ndarray, end: np.ndarray, size: int, crop: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample positions [R, crop] (float32, TensorFlow's rounding) and whether each lies inside the map."""
    f32 = np.float32
    span = f32(size - 1)
    if crop > 1:
        scale = (end - start) * span / f32(crop - 1)
        positions = start[:, None] * span + np.arange(crop, dtype=f32)[None] * scale[:, None]
    else:
        positions = (f32(0.5) * (start + end) * span)[:, None]
    return positions, (positions >= 0) & (positions <= span)


def crop_and_resize(features: np.ndarray, boxes: np.ndarray, crop_height: int, crop_width: int) -> np.ndarray:
    features = np.asarray(features, np.float32)
    boxes = np.asarray(boxes, np.float32).reshape(boxes.shape[0], boxes.shape[1], 4)
    batch, _, height, width = features.shape
    out = np.zeros((batch, boxes.shape[1], features.shape[1], crop_height, crop_width), np.float32)
    for item in range(batch):
        y, y_inside = _samples(boxes[item, :, 0], boxes[item, :, 2], height, crop_height)
        x, x_inside = _samples(boxes[item, :, 1], boxes[item, :, 3], width, crop_width)
        top, left = np.floor(y), np.floor(x)
        dy, dx = (y - top)[:, None, :, None], (x - left)[:, None, None, :]
        top_i, bottom_i = (np.clip(v, 0, height - 1).astype(np.intp) for v in (top, np.ceil(y)))
        left_i, right_i = (np.clip(v, 0, width - 1).astype(np.intp) for v in (left, np.ceil(x)))
        plane = features[item]

        def at(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:  # [R, C, crop_height, crop_width]
            return plane[:, rows[:, :, None], cols[:, None, :]].transpose(1, 0, 2, 3)

        upper = at(top_i, left_i) + (at(top_i, right_i) - at(top_i, left_i)) * dx
        lower = at(bottom_i, left_i) + (at(bottom_i, right_i) - at(bottom_i, left_i)) * dx
        inside = (y_inside[:, :, None] & x_inside[:, None, :])[:, None]
        out[item] = np.where(inside, upper + (lower - upper) * dy, np.float32(0))
    return out
