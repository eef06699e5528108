"""The target registry, and target requests refused before TensorFlow is imported (fast)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from od_export.errors import EnvironmentProblem
from od_export.targets import OPTIONAL_TARGETS, TARGETS, get_target
from tests.conftest import sample_config
from tests.test_cli import FAST_FAILURE, QUIET_ENV, fake_run


def test_registry_is_the_one_list_of_targets():
    assert OPTIONAL_TARGETS == tuple(name for name in TARGETS if name != "saved_model")
    directories = [target.directory for target in TARGETS.values()]
    assert len(set(directories)) == len(directories)
    assert list(TARGETS)[0] == "saved_model"  # the reference is written (and checked) first


def test_a_missing_extra_names_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else real(name, *a))
    for name in ("onnx", "tensorrt"):
        with pytest.raises(EnvironmentProblem, match=r"needs tf2onnx: pip install 'od-export\[onnx\]'"):
            get_target(name).check_available()
    missing = {"ai_edge_litert", "openvino"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a))
    with pytest.raises(EnvironmentProblem, match=r"needs ai_edge_litert: pip install 'od-export\[tflite\]'"):
        get_target("tflite").check_available()
    with pytest.raises(EnvironmentProblem, match=r"needs openvino: pip install 'od-export\[openvino\]'"):
        get_target("openvino").check_available()


@pytest.mark.parametrize(
    "case, arguments, fragment",
    [
        ("unknown_target", ["--target", "coreml"], "unknown target 'coreml'; choose from: frozen_graph, onnx, tensorrt, "
                                                   "tflite, openvino"),
        ("two_stage_tflite", ["--target", "tflite"], "faster_rcnn has no TFLite path: the OD API's TFLite modules cover "
                                                     "single-stage models"),
        ("unpadded_tflite", ["--target", "tflite"], "keep_aspect_ratio_resizer does not pad (pad_to_max_dimension is "
                                                    "false)"),
        ("tflite_precision", ["--target", "tflite", "--tflite-precision", "int4"], "unknown TFLite precision 'int4'"),
        ("calibration_without_int8", ["--target", "tflite", "--calibration-images", "."],
         "calibration images are used by the int8 files only"),
        ("calibration_missing", ["--target", "tflite", "--tflite-precision", "int8", "--calibration-images", "/nowhere"],
         "calibration images directory /nowhere does not exist"),
        ("openvino_precision", ["--target", "openvino", "--openvino-precision", "int4"], "unknown OpenVINO precision 'int4'"),
        ("centernet_int8_full", ["--target", "tflite", "--tflite-precision", "int8_full"],
         "CenterNet finds its peaks with float ops that int8 cannot express"),
        ("min_agreement", ["--target", "openvino", "--min-agreement", "int8=1.5"],
         "minimum agreement 1.5 for int8 is not a fraction"),
        ("min_agreement_bare", ["--target", "openvino", "--min-agreement", "0.3"],
         "minimum agreement '0.3' names no precision; write it as PRECISION=FRACTION, like int8=0.3"),
        ("min_agreement_precision", ["--target", "openvino", "--min-agreement", "int4=0.3"],
         "unknown precision 'int4' for a minimum agreement; choose from: fp16, bf16, int8"),
        ("two_stage_fpn_tensorrt", ["--target", "tensorrt", "--config-override",
                                    'model { faster_rcnn { feature_extractor { type: "faster_rcnn_resnet50_fpn_keras" } } }'],
         "crops several FPN levels (a multi-level crop)"),
        ("dynamic_resizer", ["--target", "tensorrt"], "gives no fixed input size, and TensorRT needs one; give the input "
                                                      "height and width (--input-shape)"),
        ("batch_size", ["--target", "tensorrt", "--batch-size", "0"], "batch size 0 is below 1"),
        ("input_shape", ["--target", "tensorrt", "--input-shape", "320"], "is not a height and width"),
        ("opset", ["--target", "onnx", "--opset", "7"], "ONNX opset 7 is not supported"),
        ("opset_text", ["--target", "onnx", "--opset", "seven"], "ONNX opset 'seven' is not a whole number"),
        ("dynamic_tensorrt", ["--target", "tensorrt", "--dynamic-batch"], "the TensorRT file has a static batch by design"),
        ("raw_openvino", ["--target", "onnx", "--target", "openvino", "--no-postprocessing"],
         "the openvino target cannot be written without post-processing (only onnx and tflite can)"),
        ("raw_tflite_fp16", ["--target", "tflite", "--tflite-precision", "fp16", "--no-postprocessing"],
         "without post-processing the TFLite file is written in fp32 only"),
        ("raw_alone", ["--no-postprocessing"], "without post-processing only the onnx and tflite files are written"),
        ("triton_string", ["--target", "triton", "--input-type", "tf_example"],
         "Triton's ONNX backend cannot feed tf_example"),
        ("triton_name", ["--target", "triton", "--triton-model-name", "my model"], "is not a directory name"),
        ("warmup_count", ["--serving-warmup", "1001"], "TF Serving reads at most 1000"),
        ("input_format", ["--target", "tensorrt", "--input-format", "NCWH"], "unknown input format 'NCWH'"),
    ],
)
def test_bad_target_requests_fail_fast_with_one_line(case, arguments, fragment, tmp_path):
    run = fake_run(tmp_path / "run")
    config = sample_config("faster_rcnn_resnet50" if case.startswith("two_stage") else "ssd_mobilenet_v2")
    if case.startswith("centernet"):
        config = sample_config("centernet_mobilenet_v2_fpn")
    if case.startswith("efficientdet"):
        config = sample_config("efficientdet_d0")
    if case in ("dynamic_resizer", "unpadded_tflite"):  # EfficientDet without padding: every image keeps its size
        config = tmp_path / "efficientdet.config"
        config.write_text(sample_config("efficientdet_d0").read_text().replace(
            "pad_to_max_dimension: true", "pad_to_max_dimension: false"))
    result = subprocess.run(
        [sys.executable, "-c", FAST_FAILURE, "export", "--pipeline-config", str(config), "--checkpoint-dir", str(run),
         "--output-dir", str(tmp_path / "out"), *arguments], capture_output=True, text=True, env=QUIET_ENV, timeout=60)
    code, seconds, imported_tf = result.stdout.split()
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert code == "2" and len(errors) == 1 and fragment in errors[0], result.stderr
    assert imported_tf == "False" and float(seconds) < 2.0, result.stdout
    assert not (tmp_path / "out").exists()
