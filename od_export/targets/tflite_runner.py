"""A ``.tflite`` file fed as its ``io_spec.json`` says, with its outputs in the SavedModel's conventions.

Feeding: the picture is normalised (and for a padded-resizer file first resized with
its aspect ratio kept and then padded to the square, :mod:`.tflite_resize`), then
quantised for a uint8 input.  Outputs: an integer output is dequantised; a padded
file's boxes and keypoints go back to the picture's frame; class indices + 1; and for
SSD's ``TFLite_Detection_PostProcess`` (which neither clips boxes nor caps them per
class) the clip to the image, the drop of boxes left empty, and the per-class cap
that TensorFlow applies after NMS.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from od_export.targets.tflite_resize import client_input, to_image_frame
from od_export.verify.efficient_nms import as_tensorflow_would

DETECTION_KEYS = ("detection_boxes", "detection_scores", "detection_classes")
KEYPOINT_KEYS = ("detection_keypoint_scores", "detection_keypoints")
#: The frame a padded file's outputs are in: the resized picture's (height, width); None for the whole input.
Frame = tuple[int, int] | None


def trimmed(outputs: dict[str, np.ndarray], keep: int) -> dict[str, np.ndarray]:
    """The SavedModel's best ``keep`` detections (its lists are sorted by score), keypoints with them."""
    keys = DETECTION_KEYS + tuple(k for k in KEYPOINT_KEYS if k in outputs)
    result = {key: np.asarray(outputs[key])[:, :keep] for key in keys}
    result["num_detections"] = np.minimum(np.asarray(outputs["num_detections"], np.float32), keep)
    return result


class TFLiteRunner:
    """A .tflite file in LiteRT's interpreter with its default delegates, fed as its io_spec says."""

    def __init__(self, model: bytes, entry: dict[str, Any], spec: dict[str, Any]) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=model)
        self.runner = self.interpreter.get_signature_runner("serving_default")
        self.input = entry["input"]
        self.quantization = {o["name"]: o["quantization"] for o in entry.get("outputs", []) if "quantization" in o}
        self.mean = np.asarray(spec["normalization"]["mean"], np.float32)
        self.std = np.asarray(spec["normalization"]["std"], np.float32)
        #: Without ``resize`` (older exports) pictures come at the input size already.
        self.resize = spec.get("resize", {})

    def prepare(self, pixels: np.ndarray) -> tuple[np.ndarray, Frame]:
        """The file's input for one picture (of any size when padded, else of the input size), and its frame."""
        normalised, frame = client_input(pixels, self.resize, self.mean, self.std)
        return self.quantised(normalised), frame

    def feed(self, pixels: np.ndarray) -> np.ndarray:
        return self.prepare(pixels)[0]

    def quantised(self, normalised: np.ndarray) -> np.ndarray:
        quantization = self.input.get("quantization")
        if quantization is None:
            return normalised.astype(np.float32)
        dtype = np.dtype(self.input["dtype"])
        limits = np.iinfo(dtype)
        quantised = np.round(normalised / quantization["scale"] + quantization["zero_point"])
        return np.clip(quantised, limits.min, limits.max).astype(dtype)

    def run(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        feed, frame = self.prepare(pixels)
        return self.in_picture_frame(self.dequantised(self.runner(input_tensor=feed)), frame)

    def in_picture_frame(self, outputs: dict[str, np.ndarray], frame: Frame) -> dict[str, np.ndarray]:
        if frame is None:
            return outputs
        return to_image_frame(outputs, self.resize["max_dimension"], frame)

    def dequantised(self, raw: dict[str, Any]) -> dict[str, np.ndarray]:
        """Outputs as float values: an integer output is (q - zero_point) × scale, as its io_spec says."""
        outputs = {}
        for key, value in raw.items():
            quantization = self.quantization.get(key)
            value = np.asarray(value)
            outputs[key] = value if quantization is None else (
                (value.astype(np.float32) - quantization["zero_point"]) * quantization["scale"])
        return outputs


def as_saved_model_outputs(raw: dict[str, np.ndarray], spec: dict[str, Any]) -> tuple[dict[str, np.ndarray], int, int]:
    """TFLite outputs in the SavedModel's conventions; also how many boxes TensorFlow would have set aside."""
    # Counts and class indices are whole numbers; a uint8 output dequantises them to 1.9999 or 2.0039: round.
    outputs = {"detection_boxes": raw["detection_boxes"].astype(np.float32),
               "detection_scores": raw["detection_scores"].astype(np.float32),
               "detection_classes": np.round(raw["detection_classes"]).astype(np.float32) + 1.0,
               "num_detections": np.round(raw["num_detections"]).astype(np.float32).reshape(-1, 1)}
    outputs.update({key: raw[key].astype(np.float32) for key in KEYPOINT_KEYS if key in raw})
    capped = empty = 0
    if spec.get("boxes_clipped") is False:
        outputs["detection_boxes"] = np.clip(outputs["detection_boxes"], 0.0, 1.0)
        outputs, capped, empty = as_tensorflow_would(outputs, int(spec["max_detections_per_class"]))
    outputs["num_detections"] = outputs["num_detections"].reshape(-1)
    return outputs, capped, empty
