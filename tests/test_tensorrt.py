"""--target tensorrt (and onnx) on EfficientDet and CenterNet; string input types get neither."""
from __future__ import annotations

import json

import pytest

from od_export.cli import main
from tests.conftest import sample_config

pytestmark = pytest.mark.integration


def test_a_padded_resizer_gives_the_static_input_size():
    """EfficientDet's keep-aspect resizer pads to its maximum: that is the TensorRT file's input size."""
    from od_export.options import ConversionOptions, ExportOptions
    from od_export.source.pipeline_config import load_pipeline_config
    from od_export.targets.tensorrt import static_input_size

    options = ExportOptions("p", "c", "o")
    assert static_input_size(load_pipeline_config(sample_config("efficientdet_d0")), options) == (256, 256)
    assert static_input_size(load_pipeline_config(sample_config("ssd_mobilenet_v2")), options) == (128, 128)
    given = ExportOptions("p", "c", "o", conversion=ConversionOptions.of(input_shape=(320, 240)))
    assert static_input_size(load_pipeline_config(sample_config("efficientdet_d0")), given) == (320, 240)


@pytest.mark.exhaustive  # EfficientDet takes SSD's EfficientNMS path (test_onnx); the padded size is tested above
def test_efficientdet_gets_the_nms_plugin_and_validates(target_export):
    import onnx

    result = target_export("efficientdet_d0")
    assert result.validation["ok"] is True
    model = onnx.load(str(result.output_dir / "tensorrt" / "model.onnx"))
    assert [n.op_type for n in model.graph.node].count("EfficientNMS_TRT") == 1
    [tensor_input] = model.graph.input
    assert [d.dim_value for d in tensor_input.type.tensor_type.shape.dim] == [1, 256, 256, 3]  # the padded resizer's size
    spec = json.loads((result.output_dir / "tensorrt" / "io_spec.json").read_text())
    assert spec["postprocessing"] == "efficient_nms" and spec["clip_window"] == [0.0, 0.0, 1.0, 1.0]


def test_centernet_needs_no_plugin(target_export):
    import onnx

    result = target_export("centernet_mobilenet_v2_fpn")
    assert result.validation["ok"] is True
    model = onnx.load(str(result.output_dir / "tensorrt" / "model.onnx"))
    assert not [n for n in model.graph.node if n.op_type.endswith("_TRT")]
    assert json.loads((result.output_dir / "tensorrt" / "io_spec.json").read_text())["postprocessing"] == "in_graph"


def test_string_input_types_get_no_converted_files_and_say_why(demo_checkpoint, workspace, capsys):
    run = demo_checkpoint("centernet_mobilenet_v2_fpn")
    out = workspace / "centernet_strings"
    assert main(["export", "--pipeline-config", str(run / "pipeline.config"), "--checkpoint-dir", str(run),
                 "--output-dir", str(out), "--input-type", "encoded_image_string_tensor", "--target", "onnx",
                 "--target", "tensorrt", "--target", "tflite", "--target", "openvino"]) == 0
    err = capsys.readouterr().err
    assert "no onnx artifact: ONNX has no image decoder" in err and "no tensorrt artifact: the TensorRT file takes pixels" in err
    assert "no tflite artifact: a TFLite file takes pixels" in err
    assert "no openvino artifact: OpenVINO has no image decoder" in err
    assert not [d for d in ("onnx", "tensorrt", "tflite", "openvino") if (out / d).exists()]



def test_save_images_draws_the_tensorrt_panel_from_the_run_its_check_makes(target_export, tmp_path):
    from od_export.validator import ValidateOptions, validate

    report = validate(ValidateOptions(target_export("ssd_mobilenet_v2").output_dir, save_images=tmp_path / "drawn"))
    [check] = [c for c in report.checks if c.artifact == "tensorrt"]
    assert check.ok and len(check.outputs) == report.images
    assert check.outputs[0]["detection_scores"].shape[0] == 1
    assert sorted(p.rsplit("/", 1)[1] for p in report.saved_images) == [f"{report.checks[0].unit}_random_00{i}.png"
                                                                         for i in range(report.images)]
