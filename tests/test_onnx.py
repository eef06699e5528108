"""--target onnx and tensorrt on the SSD samples: files, names, verification, tampering, convert, inspect."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from od_export.cli import main
from od_export.source.pipeline_config import load_pipeline_config
from tests.conftest import sample_config

pytestmark = pytest.mark.integration


def onnx_model(path):
    import onnx

    return onnx.load(str(path))


def validate_json(capsys, *args: str) -> tuple[int, dict]:
    code = main(["validate", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", ["ssd_mobilenet_v2", pytest.param("ssd_mobilenet_v2_fpnlite", marks=pytest.mark.exhaustive)])
def test_onnx_and_tensorrt_files_are_verified_in_the_export(name, target_export):
    result = target_export(name)
    assert result.validation["ok"] is True
    checks = {c["artifact"]: c for c in result.validation["checks"]}
    assert checks["onnx"]["ok"] and checks["tensorrt"]["ok"]
    assert checks["tensorrt"]["outputs"]["unmatched_detections"] == {"max_abs_diff": 0.0, "ok": True}
    model = onnx_model(result.output_dir / "onnx" / "model.onnx")
    assert [i.name for i in model.graph.input] == ["input_tensor"]
    assert sorted(o.name for o in model.graph.output) == sorted(result.artifacts[0].signature["outputs"])
    spec = json.loads((result.output_dir / "onnx" / "io_spec.json").read_text())
    assert spec["opset"] == 17 and spec["inputs"]["input_tensor"] == {"dtype": "uint8", "shape": [1, None, None, 3]}


@pytest.mark.exhaustive  # 90 s of ResNet-50; the portable crop it relies on has its own unit test
def test_two_stage_onnx_with_the_gather_crop_is_verified(target_export):
    """Faster R-CNN with use_matmul_crop_and_resize (as the zoo sets it) converts and verifies."""
    result = target_export("faster_rcnn_resnet50")
    checks = {c["artifact"]: c for c in result.validation["checks"]}
    assert result.validation["ok"] is True and set(checks) == {"saved_model", "frozen_graph", "onnx"}
    assert checks["onnx"]["outputs"]["raw_detection_scores"]["max_abs_diff"] < 1e-2
    assert (result.output_dir / "onnx" / "model.onnx").is_file()


def test_tensorrt_file_is_static_float_with_one_nms_node_from_the_config(target_export):
    result = target_export("ssd_mobilenet_v2")
    model = onnx_model(result.output_dir / "tensorrt" / "model.onnx")
    [tensor_input] = model.graph.input
    assert tensor_input.type.tensor_type.elem_type == 1  # float32
    assert [d.dim_value for d in tensor_input.type.tensor_type.shape.dim] == [1, 128, 128, 3]
    [nms] = [n for n in model.graph.node if n.op_type == "EfficientNMS_TRT"]
    import onnx

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nms.attribute}
    settings = load_pipeline_config(sample_config("ssd_mobilenet_v2")).model.ssd.post_processing.batch_non_max_suppression
    assert attrs["max_output_boxes"] == settings.max_total_detections
    assert attrs["iou_threshold"] == pytest.approx(settings.iou_threshold)
    assert attrs["score_threshold"] == pytest.approx(0.01)  # 1e-8 in the config, raised to NVIDIA's floor
    assert (attrs["background_class"], attrs["box_coding"], attrs["score_activation"]) == (0, 0, 0)
    outputs = {o.name: (o.type.tensor_type.elem_type, [d.dim_value for d in o.type.tensor_type.shape.dim])
               for o in model.graph.output}
    assert outputs == {"num_detections": (6, [1, 1]), "detection_boxes": (1, [1, 20, 4]),
                       "detection_scores": (1, [1, 20]), "detection_classes": (6, [1, 20])}
    assert not [n for n in model.graph.node if n.op_type == "Loop"]  # the exporter's map_fn is gone


def largest_initializer_scaled(path, factor=1.5):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    largest = max(model.graph.initializer, key=lambda t: np.prod(t.dims) if t.data_type == 1 else 0)
    largest.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(largest) * factor, largest.name))
    onnx.save(model, str(path))


def test_tampered_onnx_fails_validation(target_export, tmp_path, capsys):
    copy = tmp_path / "onnx_tampered"
    shutil.copytree(target_export("ssd_mobilenet_v2").output_dir, copy,
                    ignore=shutil.ignore_patterns("manifest.json", "tflite", "openvino"))
    largest_initializer_scaled(copy / "onnx" / "model.onnx")
    code, report = validate_json(capsys, str(copy))
    [check] = [c for c in report["checks"] if c["artifact"] == "onnx"]
    assert code == 1 and check["ok"] is False and check["outputs"]["raw_detection_scores"]["ok"] is False
    assert [c["ok"] for c in report["checks"] if c["artifact"] == "tensorrt"] == [True]


def test_each_part_of_the_tensorrt_check_fails_on_a_tampered_file(target_export, tmp_path, capsys):
    import onnx

    source = target_export("ssd_mobilenet_v2").output_dir
    weights = tmp_path / "weights"
    shutil.copytree(source, weights, ignore=shutil.ignore_patterns("manifest.json", "onnx", "tflite", "openvino"))
    largest_initializer_scaled(weights / "tensorrt" / "model.onnx")
    code, report = validate_json(capsys, str(weights))
    [check] = [c for c in report["checks"] if c["artifact"] == "tensorrt"]
    assert code == 1 and check["outputs"]["raw_detection_scores"]["ok"] is False  # part 1: before NMS

    nms = tmp_path / "nms"
    shutil.copytree(source, nms, ignore=shutil.ignore_patterns("manifest.json", "onnx", "tflite", "openvino"))
    model = onnx.load(str(nms / "tensorrt" / "model.onnx"))
    [node] = [n for n in model.graph.node if n.op_type == "EfficientNMS_TRT"]
    [iou] = [a for a in node.attribute if a.name == "iou_threshold"]
    iou.f = 0.01  # suppresses nearly every overlapping box
    onnx.save(model, str(nms / "tensorrt" / "model.onnx"))
    code, report = validate_json(capsys, str(nms))
    [check] = [c for c in report["checks"] if c["artifact"] == "tensorrt"]
    assert code == 1 and check["outputs"]["raw_detection_scores"]["ok"] is True  # part 1 still holds
    assert check["outputs"]["unmatched_detections"]["ok"] is False  # part 2: the detections differ


def exporter_main_v2_layout(source, destination):
    """What exporter_main_v2 writes: saved_model/, checkpoint/, pipeline.config, nothing else."""
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(
        "manifest.json", "frozen_graph", "onnx", "tensorrt", "tflite", "openvino"))
    return destination


def test_convert_an_exporter_main_v2_directory(target_export, tmp_path, capsys):
    directory = exporter_main_v2_layout(target_export("ssd_mobilenet_v2").output_dir, tmp_path / "exporter")
    assert main(["convert", str(directory), "--target", "onnx", "--target", "tensorrt", "--batch-size", "2",
                 "--input-format", "NCHW", "-q"]) == 0
    assert "tensorrt: " in capsys.readouterr().out  # one line per file written
    assert (directory / "onnx" / "model.onnx").is_file() and (directory / "tensorrt" / "model.onnx").is_file()
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["conversions"][0]["targets"] == ["onnx", "tensorrt"] and manifest["validation"]["ok"]
    [tensor_input] = onnx_model(directory / "tensorrt" / "model.onnx").graph.input
    assert [d.dim_value for d in tensor_input.type.tensor_type.shape.dim] == [2, 3, 128, 128]
    code, report = validate_json(capsys, str(directory))
    assert code == 0 and report["manifest"] == "verified" and report["compared"] == 2
    capsys.readouterr()
    assert main(["convert", str(directory), "--target", "onnx"]) == 2  # already there
    assert "already has a onnx artifact" in capsys.readouterr().err


def test_convert_without_a_checkpoint_uses_the_signature(target_export, tmp_path):
    directory = exporter_main_v2_layout(target_export("ssd_mobilenet_v2").output_dir, tmp_path / "zoo")
    shutil.rmtree(directory / "checkpoint")
    assert main(["convert", str(directory), "--target", "onnx", "-q"]) == 0
    assert json.loads((directory / "manifest.json").read_text())["validation"]["ok"] is True


def test_inspect_shows_the_plugin_and_its_attributes(target_export, capsys):
    path = target_export("ssd_mobilenet_v2").output_dir / "tensorrt" / "model.onnx"
    assert main(["inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "onnx" and report["opset"] == 17
    assert report["inputs"] == {"input_tensor": {"dtype": "float32", "shape": [1, 128, 128, 3]}}
    [plugin] = report["plugins"]
    assert plugin["op"] == "EfficientNMS_TRT" and plugin["attributes"]["max_output_boxes"] == 20
    assert main(["inspect", str(path)]) == 0
    assert "EfficientNMS_TRT" in capsys.readouterr().out
