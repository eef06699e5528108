"""Faster R-CNN's crop traced with ops that convert exactly (for the ONNX targets).

TensorFlow's ``CropAndResize`` does not convert faithfully (see
:func:`portable_crop_and_resize`); the ONNX targets trace a two-stage model inside that
context manager.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from od_export import compat


def _round_to_float32(value: Any) -> Any:
    """A float64 tensor rounded to float32's 24-bit significand, kept in float64 (Veltkamp's split).

    A cast pair (float64 → float32 → float64) would do the same, but converters drop
    such pairs as lossless; ``c - (c - x)`` survives tf2onnx and onnxruntime.
    """
    split = value * 536870913.0  # 2**29 + 1: splits off the 29 low bits of a float64 significand
    return split - (split - value)


def _crop_weights(tf: Any, start: Any, end: Any, size: int, crop: int) -> Any:
    """Bilinear sampling weights [..., crop, size], computed as TF's CropAndResize CPU kernel does.

    The kernel samples at ``start*(size-1) + i*scale`` with ``scale = (end-start)*(size-1)/(crop-1)``,
    each operation rounded to float32, and fills a sample that lands outside
    ``[0, size-1]`` with 0.  Rounding puts the last sample of a box ending at 1.0 just
    outside on some boxes, so TensorFlow's crop has a row of zeros there.  Each step is
    done here in float64 and rounded to float32 explicitly, so the same samples fall outside.
    """
    rounded = _round_to_float32
    span = float(size - 1)
    start, end = tf.cast(start, tf.float64), tf.cast(end, tf.float64)
    scale = rounded(rounded(rounded(end - start) * span) / float(crop - 1))
    steps = tf.range(crop, dtype=tf.float64)
    coords = rounded(rounded(start * span)[..., None] + rounded(steps * scale[..., None]))
    inside = tf.cast((coords >= 0.0) & (coords <= span), tf.float32)
    low, high = tf.floor(coords), tf.math.ceil(coords)
    lerp = tf.cast(coords - low, tf.float32)
    weights = (tf.one_hot(tf.cast(low, tf.int32), size) * (1.0 - lerp)[..., None]
               + tf.one_hot(tf.cast(high, tf.int32), size) * lerp[..., None])
    return weights * inside[..., None]


def _portable_crop_and_resize(features: list[Any], boxes: Any, box_levels: Any, crop_size: list[int],
                              scope: Any = None) -> Any:
    """The OD API's ``multilevel_native_crop_and_resize`` for one feature level, as two einsums."""
    tf = compat.import_tensorflow()
    images = features[0]
    y1, x1, y2, x2 = tf.unstack(boxes, axis=-1)
    rows = _crop_weights(tf, y1, y2, images.shape[1], crop_size[0])
    columns = _crop_weights(tf, x1, x2, images.shape[2], crop_size[1])
    return tf.einsum("bnyxc,bnwx->bnywc", tf.einsum("bnyh,bhxc->bnyxc", rows, images), columns)


def uses_native_crop_and_resize(model: Any) -> bool:
    """True for a two-stage model that crops with ``tf.image.crop_and_resize`` (the OD API's default)."""
    crop = getattr(model, "_crop_and_resize_fn", None)
    return getattr(crop, "__name__", "") == "multilevel_native_crop_and_resize"


@contextlib.contextmanager
def portable_crop_and_resize(model: Any) -> Iterator[None]:
    """Trace a Faster R-CNN without ``CropAndResize``, which does not convert faithfully.

    tf2onnx turns ``CropAndResize`` into ONNX ``Resize`` (``tf_crop_and_resize``), which
    samples the last row of some boxes ending at the image border where TensorFlow's
    kernel yields 0 (measured: crops differ by up to 4.7 on the sample model, and so do
    its detections).  Proposals are clipped to the image, so every Faster R-CNN meets
    this.  The replacement reproduces the kernel, border rows included, with ops that
    convert exactly; verification checks the result against the SavedModel.  Models
    without the attribute, with several feature levels, or configured with
    ``use_matmul_crop_and_resize`` (the OD API's gather-based crop, which converts as
    it is) are traced unchanged.

    The replica agrees with TensorFlow only while the proposal boxes agree to the bit:
    TensorFlow's own choice of a zero border row flips when a box coordinate moves by
    one float32 step, and a converted backbone moves proposals by ~1e-5.  Models with
    ``use_matmul_crop_and_resize: true`` (as the model zoo's TF2 Faster R-CNN configs
    set it) have no such edge and verify reliably.
    """
    if not uses_native_crop_and_resize(model):
        yield
        return
    original = model._crop_and_resize_fn
    model._crop_and_resize_fn = _portable_crop_and_resize
    try:
        yield
    finally:
        model._crop_and_resize_fn = original


def portable_serving_function(context: Any) -> Any:
    """The export's serving function, retraced with the portable crop where the model crops natively.

    ``context`` is the target's :class:`~od_export.targets.base.ExportContext`; without a
    model in memory (converting an existing export) its traced function is returned.
    """
    from od_export.source.tracing import detection_module, trace

    if context.model is None or not uses_native_crop_and_resize(context.model):
        return context.traced.concrete
    with portable_crop_and_resize(context.model):
        module = detection_module(context.model, context.input_type, context.options.side_inputs)
        return trace(module, context.input_type, context.architecture, context.options.dynamic_batch).concrete
