"""Run one .tflite file through the TFLite Task Library's ObjectDetector; print its detections as JSON.

Run by tests/test_tflite_metadata.py with the Python of the separate environment that
scripts/setup.sh makes for the Task Library (tflite-support 0.4.4 needs protobuf < 4):

    python task_library_detect.py MODEL.tflite IMAGE.npy

IMAGE.npy holds one RGB uint8 image [H, W, 3].  A file the ObjectDetector refuses
(no metadata, say) prints its error and exits 3.
"""
import ctypes
import importlib.util
import json
import sys
from pathlib import Path

try:  # the Task Library's native modules link libusb-1.0.so.0; the libusb-package wheel carries one
    ctypes.CDLL("libusb-1.0.so.0")
except OSError:
    ctypes.CDLL(str(next(Path(importlib.util.find_spec("libusb_package").origin).parent.glob("libusb-1.0*"))))

import numpy as np  # noqa: E402
from tflite_support.task import core, processor, vision  # noqa: E402


def main(model: str, image: str) -> int:
    options = vision.ObjectDetectorOptions(
        base_options=core.BaseOptions(file_name=model),
        detection_options=processor.DetectionOptions(score_threshold=0.0))
    try:
        detector = vision.ObjectDetector.create_from_options(options)
        result = detector.detect(vision.TensorImage.create_from_array(np.load(image)))
    except Exception as exc:  # the Task Library raises ValueError/RuntimeError for a file it refuses
        print(json.dumps({"error": " ".join(str(exc).split())}))
        return 3
    print(json.dumps({"detections": [
        {"box": [d.bounding_box.origin_x, d.bounding_box.origin_y, d.bounding_box.width, d.bounding_box.height],
         "index": d.categories[0].index, "name": d.categories[0].category_name, "score": d.categories[0].score}
        for d in result.detections]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
