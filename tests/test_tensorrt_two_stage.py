"""--target tensorrt on Faster R-CNN: two EfficientNMS_TRT stages with TensorRT's CropAndResize between them,
verified on a CPU through reference plugins; a tampered file fails."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from od_export.cli import main
from od_export.verify.crop_and_resize import crop_and_resize

pytestmark = pytest.mark.integration


def _plugins(model):
    import onnx

    return [(n.op_type, {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute})
            for n in model.graph.node if n.op_type in ("EfficientNMS_TRT", "CropAndResize")]


def test_the_crop_reference_is_tensorflow_s_crop_and_resize_bit_for_bit():
    from od_export import compat

    tf = compat.import_tensorflow()
    rng = np.random.default_rng(0)
    features = (rng.normal(size=(1, 7, 9, 11)) * 5).astype(np.float32)
    corner = rng.uniform(-0.1, 0.9, (60, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(0, 0.6, (60, 2))], axis=1).astype(np.float32)
    boxes[:5] = [0.0, 0.0, 1.0, 1.0]  # a box ending at the edge: float32 rounding puts its last sample outside
    ours = crop_and_resize(features, boxes[None], 14, 14)[0].transpose(0, 2, 3, 1)
    theirs = tf.image.crop_and_resize(features.transpose(0, 2, 3, 1), boxes, np.zeros(60, np.int32), [14, 14]).numpy()
    assert np.array_equal(ours, theirs)


def test_faster_rcnn_gets_two_nms_stages_and_the_crop_plugin_and_verifies(target_export):
    import onnx

    result = target_export("faster_rcnn_resnet50")
    checks = {c["artifact"]: c for c in result.validation["checks"]}
    assert checks["tensorrt"]["ok"] is True, checks["tensorrt"]
    outputs = checks["tensorrt"]["outputs"]
    assert outputs["detection_boxes"]["max_abs_diff"] < 1e-3 and outputs["unmatched_detections"]["max_abs_diff"] == 0
    assert outputs["raw_detection_scores"]["max_abs_diff"] < 1e-3  # the second stage, every proposal
    model = onnx.load(str(result.output_dir / "tensorrt" / "model.onnx"))
    assert not {"Loop", "NonZero", "NonMaxSuppression", "If"} & {n.op_type for n in model.graph.node}
    (first, first_attrs), (crop, crop_attrs), (final, final_attrs) = _plugins(model)
    assert (first, crop, final) == ("EfficientNMS_TRT", "CropAndResize", "EfficientNMS_TRT")
    # the sample config: first stage 16 proposals at IoU 0.7, threshold 0; crop 14; second stage 20 at IoU 0.6
    assert first_attrs["max_output_boxes"] == 16 and first_attrs["iou_threshold"] == pytest.approx(0.7)
    assert first_attrs["score_threshold"] == 0.0 and first_attrs["background_class"] == -1
    assert crop_attrs == {"crop_width": 14, "crop_height": 14}
    assert final_attrs["max_output_boxes"] == 20 and final_attrs["iou_threshold"] == pytest.approx(0.6)
    spec = json.loads((result.output_dir / "tensorrt" / "io_spec.json").read_text())
    assert spec["postprocessing"] == "two_stage" and spec["max_detections_per_class"] == 20


def test_a_tampered_second_stage_or_nms_fails_its_check(target_export, tmp_path, capsys):
    """The tampered artifacts: a box-classifier weight scaled by 1.5; the first-stage NMS keeping other proposals."""
    import onnx
    from onnx import numpy_helper

    source = target_export("faster_rcnn_resnet50").output_dir
    for case in ("weight", "nms"):
        copy = tmp_path / case
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("manifest.json", "onnx", "frozen_graph"))
        path = copy / "tensorrt" / "model.onnx"
        model = onnx.load(str(path))
        if case == "weight":
            weights = [t for t in model.graph.initializer if t.name.startswith("second_stage/") and len(t.dims) == 2]
            biggest = max(weights, key=lambda t: int(np.prod(t.dims)))
            biggest.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(biggest) * 1.5, biggest.name))
        else:
            node = next(n for n in model.graph.node if n.op_type == "EfficientNMS_TRT")
            next(a for a in node.attribute if a.name == "iou_threshold").f = 0.05
        onnx.save(model, str(path))
        assert main(["validate", str(copy), "--json"]) == 1, case
        check = next(c for c in json.loads(capsys.readouterr().out)["checks"] if c["artifact"] == "tensorrt")
        assert check["ok"] is False, (case, check)


def test_benchmark_runs_the_two_stage_file_as_its_check_does(target_export):
    from od_export.targets.tensorrt_check import TensorRTOnnxRunner
    from od_export.verify.samples import resize_image, sample_image

    runner = TensorRTOnnxRunner("tensorrt", [target_export("faster_rcnn_resnet50").output_dir / "tensorrt" / "model.onnx"])
    runner.load()
    found = runner.detections(runner.infer(runner.feed(resize_image(sample_image(), 128, 128), b"")))
    assert found["detection_boxes"].shape == (1, 20, 4) and 0 < found["num_detections"][0] <= 20
