"""A target's declared settings: typed values from the command line and batch files, checked once."""
from __future__ import annotations

import pytest

from od_export.errors import InputError
from od_export.options import ConversionOptions
from od_export.targets import SETTINGS, TARGETS, calibrates, check_conversion, setting_targets, warn_unread_settings
from od_export.targets.onnx import OPSET
from od_export.targets.tensorrt import INPUT_SHAPE
from od_export.targets.tflite import PRECISIONS


def test_each_setting_is_declared_by_the_targets_that_read_it():
    assert setting_targets("opset") == ("onnx", "tensorrt", "triton")  # one declaration, shared
    assert setting_targets("tflite_precisions") == ("tflite",)
    assert all(setting_targets(name) for name in SETTINGS)
    assert sum(len(t.settings) for t in TARGETS.values()) == len(SETTINGS) + 2  # only the opset is shared


def test_values_given_and_defaults():
    conversion = ConversionOptions.of(opset=15)
    assert conversion.value(OPSET) == 15 and conversion.value(PRECISIONS) == ("fp32",)
    assert ConversionOptions.of(opset=15, input_shape=(2, 3)) == ConversionOptions.of(input_shape=(2, 3), opset=15)
    assert not calibrates(conversion) and calibrates(ConversionOptions.of(openvino_precision="int8"))
    assert calibrates(ConversionOptions.of(tflite_precisions=("fp32", "int8_full")))


def test_a_setting_no_requested_target_reads_is_named(caplog):
    conversion = ConversionOptions.of(opset=15, tflite_precisions=("fp16",))
    with caplog.at_level("WARNING", logger="od_export"):
        warn_unread_settings(conversion, ["saved_model", "frozen_graph", "tflite"])
    assert [r.getMessage() for r in caplog.records] == [
        "opset is a setting of the onnx, tensorrt, triton targets, none of which is requested: it changes nothing"]
    caplog.clear()
    warn_unread_settings(conversion, ["saved_model", "triton", "tflite"])
    assert not caplog.records


@pytest.mark.parametrize("setting, value, expected", [
    (OPSET, 15, 15),
    (INPUT_SHAPE, [320, 240], (320, 240)),
    (INPUT_SHAPE, "320x240", (320, 240)),
    (PRECISIONS, "fp16", ("fp16",)),
    (PRECISIONS, ["fp32", "int8"], ("fp32", "int8")),
])
def test_batch_file_values(setting, value, expected):
    assert setting.from_yaml(value) == expected


@pytest.mark.parametrize("setting, value, fragment", [
    (OPSET, True, "must be a whole number, not True"),  # a YAML boolean is not 1
    (OPSET, "17", "must be a whole number, not '17'"),
    (PRECISIONS, [1], "must be a string, not 1"),
    (INPUT_SHAPE, "320", "is not a height and width"),
])
def test_bad_batch_file_values(setting, value, fragment):
    with pytest.raises(InputError, match=fragment):
        setting.from_yaml(value)


@pytest.mark.parametrize("settings, fragment", [
    ({"opset": 12}, "ONNX opset 12 is not supported; choose 13 to 18"),
    ({"opset": "17"}, "ONNX opset must be a whole number, not '17'"),
    ({"tflite_precisions": ()}, "no TFLite precision given"),
    ({"tflite_precisions": "fp16"}, "TFLite precision must be a tuple, one item per precision"),
    ({"tflite_precisions": ("fp16", "fp16")}, "TFLite precision fp16 is given twice; give each precision once"),
    ({"openvino_precision": "int4"}, "unknown OpenVINO precision 'int4'; choose from: fp32, fp16, int8"),
    ({"max_detections": 0}, "max detections 0 is below 1"),
    ({"colour": "red"}, "unknown target setting 'colour'"),
])
def test_library_values_are_checked(settings, fragment):
    with pytest.raises(InputError, match=fragment):
        check_conversion(ConversionOptions.of(**settings))
