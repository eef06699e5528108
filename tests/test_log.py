"""What reaches the terminal without -v: no converter chatter; a spinner that shows a long phase is running."""
from __future__ import annotations

import time

import pytest

from od_export import log
from od_export.cli.progress import Phase


@pytest.mark.parametrize("line", [
    b"fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, output_inference_type: FLOAT32\n",
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
    b"I0000 00:00:1796200583.231870    5743 mlir_graph_optimization_pass.cc:437] MLIR V1 optimization pass is not enabled\n",
])
def test_native_chatter_is_filtered(line):
    assert log._NATIVE_LOG_LINE.match(line)


def test_our_own_lines_pass_the_filter():
    assert not log._NATIVE_LOG_LINE.match(b"od-export: converting to TFLite (int8)\n")
    assert not log._NATIVE_LOG_LINE.match(b"od-export: error: tflite:int8 finds 7/20 = 0.35 ...\n")


def test_the_spinner_phase_shows_its_seconds():
    phase = Phase("converting to ONNX with tf2onnx")
    phase.started -= 12.2
    assert phase.__rich__() == "converting to ONNX with tf2onnx … 12 s"
    phase.set("verifying")
    assert phase.__rich__().startswith("verifying … 0 s") and time.monotonic() - phase.started < 1
