"""Faster R-CNN's portable crop: TensorFlow's CropAndResize, border rows included, with ops that convert exactly."""
from __future__ import annotations

import pytest


@pytest.mark.integration
def test_portable_crop_and_resize_converts_to_onnx_exactly():
    """Faster R-CNN's crop, border rows included, is the same in TensorFlow, tf2onnx and onnxruntime."""
    import numpy as np

    from od_export import compat
    from od_export.source.portable_crop import _portable_crop_and_resize
    from od_export.targets.onnx import OnnxRunner, convert_function

    tf = compat.import_tensorflow()
    rng = np.random.default_rng(0)
    pairs = np.sort(rng.uniform(0, 1, size=(1, 60, 2, 2)), axis=3)  # (y1 < y2), (x1 < x2)
    boxes = pairs.transpose(0, 1, 3, 2).reshape(1, 60, 4).astype(np.float32)  # y1, x1, y2, x2
    boxes[0, :20, 2] = 1.0  # boxes ending at the image border: where TensorFlow's kernel yields a row of zeros
    boxes[0, 20:30, 0] = 0.0
    features = rng.normal(size=(1, 8, 8, 6)).astype(np.float32)

    def crops(images, proposals):
        native = tf.image.crop_and_resize(images, proposals[0], tf.zeros([60], tf.int32), [14, 14])
        return {"native": native, "portable": _portable_crop_and_resize([images], proposals, None, [14, 14])[0]}

    function = tf.function(crops, autograph=False, input_signature=[
        tf.TensorSpec([1, 8, 8, 6], tf.float32, name="images"), tf.TensorSpec([1, 60, 4], tf.float32, name="proposals")])
    reference = {k: v.numpy() for k, v in function(tf.constant(features), tf.constant(boxes)).items()}
    assert (reference["native"][:20, -1] == 0).all(axis=(1, 2)).any()  # the quirk is really exercised
    assert np.abs(reference["portable"] - reference["native"]).max() < 1e-5
    converted = OnnxRunner(convert_function(function.get_concrete_function(), 17).SerializeToString())
    outputs = converted.run({"images": features, "proposals": boxes})
    assert np.abs(outputs["portable"] - reference["native"]).max() < 1e-5
    assert np.abs(outputs["native"] - reference["native"]).max() > 0.1  # tf2onnx's own CropAndResize is not
