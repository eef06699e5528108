"""Which models take the TFLite path, at which fixed input, and how a client feeds a padded-resizer model.

The OD API's ``export_tflite_graph_tf2`` accepts SSD and CenterNet with a
``fixed_shape_resizer`` only.  Two limits of it are lifted here:

* **EfficientDet** is the SSD meta-architecture (EfficientNet + BiFPN features, the
  same box predictor and post-processing): nothing in ``SSDModule`` depends on the
  feature extractor, so it is not refused.
* **``keep_aspect_ratio_resizer`` with ``pad_to_max_dimension``** (every published
  EfficientDet and CenterNet config): the model always sees a ``max_dimension``-square
  image, the picture resized to fit and padded at the bottom and right.  The file is
  built at that square (the module gets a copy of the config whose resizer is a
  ``fixed_shape_resizer`` of that size), and the resize-and-pad runs **before the
  file**, in the client: ``io_spec.json`` and the metadata say how.  Boxes and
  keypoints then come out normalised to the padded square; ``to_image_frame`` turns
  them into the picture's frame, as the SavedModel gives them.

A ``keep_aspect_ratio_resizer`` without padding feeds the model images of varying
shape, which a file of one input shape cannot reproduce, and two-stage models have
no TFLite module in the OD API: both are refused before any work.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from od_export.errors import InputError

PAD_POLICY = "keep_aspect_ratio_pad"


def check_tflite_request(architecture: str, config: Any) -> None:
    """SSD (EfficientDet included) and CenterNet, with a fixed resizer or a padded keep-aspect one."""
    if architecture not in ("ssd", "center_net"):
        fpn = architecture == "faster_rcnn" and "fpn" in config.model.faster_rcnn.feature_extractor.type
        others = "onnx and openvino" if fpn or architecture != "faster_rcnn" else "onnx, tensorrt and openvino"
        raise InputError(f"{architecture} has no TFLite path: the OD API's TFLite modules cover single-stage models "
                         f"(SSD, EfficientDet, CenterNet); this model's targets are saved_model, frozen_graph, {others}")
    resizer = getattr(config.model, architecture).image_resizer
    kind = resizer.WhichOneof("image_resizer_oneof")
    if kind == "keep_aspect_ratio_resizer" and not resizer.keep_aspect_ratio_resizer.pad_to_max_dimension:
        raise InputError("this config's keep_aspect_ratio_resizer does not pad (pad_to_max_dimension is false), so the "
                         "model sees images of varying shape, and a TFLite file has one input shape; train with "
                         "pad_to_max_dimension: true or a fixed_shape_resizer to deploy to TFLite")
    if kind not in ("fixed_shape_resizer", "keep_aspect_ratio_resizer"):
        raise InputError(f"the TFLite path needs a fixed_shape_resizer or a padded keep_aspect_ratio_resizer, and this "
                         f"config has a {kind}; train (or fine-tune) with one of those to deploy to TFLite")


def _padded(config: Any) -> Any | None:
    """The padded keep_aspect_ratio_resizer message, or None for a fixed_shape_resizer."""
    resizer = getattr(config.model, config.model.WhichOneof("model")).image_resizer
    if resizer.WhichOneof("image_resizer_oneof") == "keep_aspect_ratio_resizer":
        return resizer.keep_aspect_ratio_resizer
    return None


def module_config(config: Any) -> Any:
    """A copy of the config the OD API's TFLite module accepts: a padded resizer becomes its fixed square."""
    copy = type(config)()
    copy.CopyFrom(config)
    padded = _padded(copy)
    if padded is not None:
        side, grayscale = padded.max_dimension, padded.convert_to_grayscale
        resizer = getattr(copy.model, copy.model.WhichOneof("model")).image_resizer
        resizer.fixed_shape_resizer.height = side
        resizer.fixed_shape_resizer.width = side
        resizer.fixed_shape_resizer.convert_to_grayscale = grayscale
    return copy


def resize_spec(config: Any, height: int, width: int) -> dict[str, Any]:
    """``io_spec.json``'s ``resize``: how a client turns a picture into the file's input."""
    padded = _padded(config)
    if padded is None:
        return {"policy": "stretch", "size": [height, width],
                "how": f"resize the picture to {height}x{width} (bilinear), ignoring its aspect ratio"}
    low, high = int(padded.min_dimension), int(padded.max_dimension)
    pad = [float(v) for v in padded.per_channel_pad_value] or [0.0, 0.0, 0.0]
    return {"policy": PAD_POLICY, "size": [high, high], "min_dimension": low, "max_dimension": high,
            "pad_value": pad,
            "how": (f"scale the picture (bilinear, aspect ratio kept) so its short side is {low} unless its long "
                    f"side would pass {high}, then its long side is {high}; normalise it; put it at the top left of a "
                    f"{high}x{high} input and fill the rest with pad_value (in the input's own units)"),
            "outputs_frame": ("boxes and keypoints are normalised to the padded square: multiply y by "
                              f"{high}/resized_height and x by {high}/resized_width for the picture's frame")}


def letterbox(image: np.ndarray, resize: dict[str, Any]) -> tuple[np.ndarray, tuple[int, int]]:
    """The picture as float pixels resized as the OD API's resize_to_range does, before padding; and its size."""
    from od_export import compat

    tf = compat.import_tensorflow()
    low, high = resize["min_dimension"], resize["max_dimension"]
    target = [low, high] if image.shape[0] < image.shape[1] else [high, low]
    resized = tf.compat.v1.image.resize_images(tf.constant(image, tf.float32), target, align_corners=False,
                                               preserve_aspect_ratio=True).numpy()
    return resized, (int(resized.shape[0]), int(resized.shape[1]))


def pad_to_square(normalised: np.ndarray, side: int, fill: np.ndarray) -> np.ndarray:
    """``normalised`` [h, w, C] at the top left of a ``side``-square filled with ``fill`` (per channel)."""
    square = np.broadcast_to(np.asarray(fill, np.float32), (side, side, normalised.shape[-1])).copy()
    square[:normalised.shape[0], :normalised.shape[1]] = normalised
    return square


def to_image_frame(outputs: dict[str, np.ndarray], side: int, resized: tuple[int, int]) -> dict[str, np.ndarray]:
    """Boxes and keypoints normalised to the padded square → normalised to the picture (as the SavedModel's)."""
    scale_y, scale_x = side / resized[0], side / resized[1]
    result = dict(outputs)
    if "detection_boxes" in result:
        boxes = result["detection_boxes"] * np.array([scale_y, scale_x, scale_y, scale_x], np.float32)
        result["detection_boxes"] = np.clip(boxes, 0.0, 1.0)  # the model clips to the picture, not the square
    if "detection_keypoints" in result:
        result["detection_keypoints"] = result["detection_keypoints"] * np.array([scale_y, scale_x], np.float32)
    return result


def client_input(image: np.ndarray, resize: dict[str, Any], mean: np.ndarray,
                 std: np.ndarray) -> tuple[np.ndarray, tuple[int, int] | None]:
    """One picture as the file's float input [1, H, W, C], as ``resize`` tells a client; and a padded file's frame.

    A fixed-size file's picture is resized (bilinear) unless it already has the input
    size; an ``io_spec.json`` without ``resize`` (older exports) means it has.
    """
    frame = None
    pixels = image.astype(np.float32)
    if resize.get("policy") == PAD_POLICY:
        pixels, frame = letterbox(image, resize)
    elif resize and tuple(image.shape[:2]) != tuple(resize["size"]):
        from od_export import compat

        pixels = compat.import_tensorflow().image.resize(pixels, resize["size"]).numpy()
    normalised = (pixels - mean) / std
    if frame is not None:
        normalised = pad_to_square(normalised, resize["max_dimension"], np.asarray(resize["pad_value"], np.float32))
    return normalised[np.newaxis].astype(np.float32), frame
