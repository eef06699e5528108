"""TFLite past the OD API's own limits: EfficientDet and padded keep-aspect resizers, and CenterNet keypoints.

The OD API's ``export_tflite_graph_tf2`` refuses EfficientDet's config (for its
``keep_aspect_ratio_resizer``) and drops a CenterNet pose model's keypoints.  Here the
padded-resizer file takes the padded square, the client resizes and pads (as
``io_spec.json`` says), and it is verified on landscape and portrait pictures; the
keypoint model's file carries its keypoints, and so do its ONNX and OpenVINO files.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from od_export.cli import main
from od_export.targets.tflite_resize import letterbox, pad_to_square, to_image_frame

pytestmark = pytest.mark.integration
KEYPOINT_KEYS = ("detection_keypoints", "detection_keypoint_scores")


@pytest.fixture(scope="module")
def padded_and_keypoint_exports(workspace, demo_checkpoint):
    """EfficientDet-D0 (256² padded resizer) to TFLite; the keypoint CenterNet to TFLite, ONNX and OpenVINO."""
    from od_export import ExportOptions, export
    from tests.conftest import built_once

    made = {}
    for name, targets in (("efficientdet_d0", ("tflite",)), ("centernet_keypoints", ("tflite", "onnx", "openvino"))):
        run = demo_checkpoint(name)
        made[name] = built_once(workspace, f"tflite_resize/{name}", lambda run=run, name=name, targets=targets: export(
            ExportOptions(run / "pipeline.config", run, workspace / "tflite_resize" / name, targets=targets,
                          freeze=False, validate=True)))
    return made


def test_letterbox_is_the_od_api_resize_to_range():
    """Short side to min_dimension unless the long side passes max_dimension, as resize_to_range computes it."""
    resize = {"min_dimension": 96, "max_dimension": 128}
    image = np.zeros((150, 170, 3), np.uint8)
    assert letterbox(image, resize)[1] == (96, 109)  # 170 * 96/150 = 108.8
    assert letterbox(image.transpose(1, 0, 2), resize)[1] == (109, 96)
    assert letterbox(np.zeros((100, 400, 3), np.uint8), resize)[1] == (32, 128)  # the long side caps it
    square = pad_to_square(np.ones((96, 109, 3), np.float32), 128, np.float32([0.5, 0.5, 0.5]))
    assert square.shape == (128, 128, 3) and square[100, 0, 0] == 0.5 and square[0, 0, 0] == 1.0
    boxes = to_image_frame({"detection_boxes": np.float32([[[0.0, 0.0, 0.75, 0.5]]])}, 128, (96, 64))
    assert np.allclose(boxes["detection_boxes"], [[[0.0, 0.0, 1.0, 1.0]]])


def test_efficientdet_reaches_tflite_and_is_verified_on_other_aspect_ratios(padded_and_keypoint_exports):
    result = padded_and_keypoint_exports["efficientdet_d0"]
    checks = {c["artifact"]: c for c in result.validation["checks"]}
    fp32 = checks["tflite:fp32"]
    assert fp32["ok"] and fp32["outputs"]["unmatched_detections"]["max_abs_diff"] == 0.0
    assert fp32["outputs"]["detection_boxes"]["max_abs_diff"] < 1e-3
    spec = json.loads((result.output_dir / "tflite" / "io_spec.json").read_text())
    assert spec["input_size"] == [256, 256] and spec["files"]["fp32"]["input"]["shape"] == [1, 256, 256, 3]
    assert spec["resize"]["policy"] == "keep_aspect_ratio_pad" and spec["resize"]["max_dimension"] == 256
    assert "padded square" in spec["resize"]["outputs_frame"]
    described = spec["files"]["fp32"]["metadata"]["input"]["description"]
    assert "aspect ratio kept" in described and "padded square" in described


def test_a_client_that_resizes_otherwise_than_the_model_is_caught(padded_and_keypoint_exports, tmp_path, capsys):
    """The tampered artifact: io_spec.json resizes pictures to a smaller short side than the model does."""
    copy = tmp_path / "stretched"
    shutil.copytree(padded_and_keypoint_exports["efficientdet_d0"].output_dir, copy,
                    ignore=shutil.ignore_patterns("manifest.json"))
    spec_path = copy / "tflite" / "io_spec.json"
    spec = json.loads(spec_path.read_text())
    spec["resize"]["min_dimension"] = 128
    spec_path.write_text(json.dumps(spec))
    code = main(["validate", str(copy), "--json"])
    report = json.loads(capsys.readouterr().out)
    check = next(c for c in report["checks"] if c["artifact"] == "tflite:fp32")
    assert code == 1 and check["ok"] is False, check


def test_centernet_keypoints_reach_tflite_onnx_and_openvino(padded_and_keypoint_exports):
    result = padded_and_keypoint_exports["centernet_keypoints"]
    checks = {c["artifact"]: c for c in result.validation["checks"]}
    for artifact in ("tflite:fp32", "onnx", "openvino"):
        if artifact not in checks:  # OpenVINO ran in bf16 (an AVX512_BF16 CPU): judged by agreement
            assert artifact == "openvino" and checks["openvino:bf16"]["ok"]
            continue
        outputs = checks[artifact]["outputs"]
        assert checks[artifact]["ok"] and all(outputs[k]["ok"] for k in KEYPOINT_KEYS), (artifact, outputs)
    spec = json.loads((result.output_dir / "tflite" / "io_spec.json").read_text())
    shapes = {o["name"]: o["shape"] for o in spec["files"]["fp32"]["outputs"]}
    assert shapes["detection_keypoints"] == [1, 10, 3, 2] and shapes["detection_keypoint_scores"] == [1, 10, 3]
    meanings = {o["name"]: o.get("meaning", "") for o in spec["files"]["fp32"]["outputs"]}
    assert "keypoints as (y, x)" in meanings["detection_keypoints"]
    # with 3 classes the OD API's keypoint path gathers the triangles with tf.where, whose size depends on the
    # picture, and LiteRT fails on a picture with none among the top detections; the file has fixed shapes only
    from od_export import compat

    interpreter = compat.import_tensorflow().lite.Interpreter(str(result.output_dir / "tflite" / "model_fp32.tflite"))
    dynamic = [t["name"] for t in interpreter.get_tensor_details() if -1 in list(t["shape_signature"])]
    assert dynamic == [], dynamic[:5]
