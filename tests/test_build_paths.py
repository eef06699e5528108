"""Paths the model build reads are checked before it (one line, exit 2); readers only Google can parse are dropped.

The published keypoint configs (``configs/tf2/*_kpts_*``) leave ``keypoint_label_map_path``
as ``PATH_TO_BE_CONFIGURED``; the OD API's build then fails with TensorFlow's raw
``NotFoundError``.  These tests run on the pipeline protos alone, without TensorFlow.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from od_export.errors import ConfigError
from od_export.source.build_paths import check_build_paths
from od_export.source.pipeline_config import load_pipeline_config, parse_pipeline_config
from tests.conftest import SAMPLES, sample_config
from tests.test_safety import cli, fake_run

KEYPOINTS = sample_config("centernet_keypoints")


def keypoint_run(tmp_path: Path, map_path: str | None) -> Path:
    """The keypoint sample in a run directory, its keypoint_label_map_path as given (None: left as written)."""
    run = fake_run(tmp_path / "run")
    text = KEYPOINTS.read_text()
    if map_path is not None:
        text = text.replace('keypoint_label_map_path: "keypoint_label_map.pbtxt"', f'keypoint_label_map_path: "{map_path}"')
    (run / "pipeline.config").write_text(text)
    shutil.copy(SAMPLES / "keypoint_label_map.pbtxt", run / "keypoint_label_map.pbtxt")
    return run


@pytest.mark.parametrize("value, fragment", [
    ("PATH_TO_BE_CONFIGURED", "is 'PATH_TO_BE_CONFIGURED', and the model build reads it"),
    ("", "is 'empty'"),
    ("/nonexistent/kp.pbtxt", "/nonexistent/kp.pbtxt does not exist"),
])
def test_an_unset_or_missing_keypoint_label_map_is_one_line_naming_the_field(tmp_path, value, fragment):
    config = load_pipeline_config(keypoint_run(tmp_path, value) / "pipeline.config")
    with pytest.raises(ConfigError) as caught:
        check_build_paths(config)
    message = str(caught.value)
    assert "model.center_net.keypoint_label_map_path" in message and fragment in message
    assert "keypoints" in message and "\n" not in message


def test_a_keypoint_label_map_without_the_tasks_class_is_refused(tmp_path):
    run = keypoint_run(tmp_path, None)
    (run / "keypoint_label_map.pbtxt").write_text((SAMPLES / "label_map.pbtxt").read_text())  # no keypoints
    with pytest.raises(ConfigError, match="has no item named 'triangle' with keypoints"):
        check_build_paths(load_pipeline_config(run / "pipeline.config"))


def test_a_relative_keypoint_label_map_is_found_beside_the_config(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)  # the config names it relative to where training ran
    run = keypoint_run(tmp_path, None)
    with caplog.at_level(logging.INFO, logger="od_export"):
        config = load_pipeline_config(run / "pipeline.config")
    check_build_paths(config)
    assert config.model.center_net.keypoint_label_map_path == str(run / "keypoint_label_map.pbtxt")
    assert "beside the pipeline.config" in caplog.text


def test_demo_checkpoint_on_the_published_placeholder_exits_2_and_writes_nothing(tmp_path, capsys):
    run = keypoint_run(tmp_path, "PATH_TO_BE_CONFIGURED")
    out = tmp_path / "demo"
    code, errors = cli(capsys, "demo-checkpoint", "--pipeline-config", str(run / "pipeline.config"),
                       "--output-dir", str(out))
    assert code == 2 and len(errors) == 1 and "keypoint_label_map_path" in errors[0], errors
    assert not out.exists()


def test_export_check_refuses_it_before_any_work(tmp_path, capsys):
    run = keypoint_run(tmp_path, "PATH_TO_BE_CONFIGURED")
    code, errors = cli(capsys, "export", "--pipeline-config", str(run / "pipeline.config"), "--checkpoint-dir",
                       str(run), "--output-dir", str(tmp_path / "out"))
    assert code == 2 and len(errors) == 1 and "keypoint_label_map_path" in errors[0], errors
    assert not (tmp_path / "out").exists()


def test_unread_placeholders_are_noted_not_refused(caplog):
    text = sample_config("ssd_mobilenet_v2").read_text() + 'train_config { fine_tune_checkpoint: "PATH_TO_BE_CONFIGURED/ckpt-0" }\n'
    with caplog.at_level(logging.INFO, logger="od_export"):
        check_build_paths(parse_pipeline_config(text, "p.config"))
    assert "ignored (export does not read them): train_config.fine_tune_checkpoint" in caplog.text


GOOGLE_READER = """
train_input_reader: {
  label_map_path: "x"  # {
  external_input_reader {
    [lstm_object_detection.protos.GoogleInputReader.google_input_reader] {
      tf_record_video_input_reader { input_path: "a}" }
    }
  }
}
"""


def test_an_input_reader_only_googles_build_parses_is_dropped_with_a_note(caplog):
    text = sample_config("ssd_mobilenet_v2").read_text().split("train_input_reader")[0] + GOOGLE_READER
    text += 'eval_input_reader { label_map_path: "y" }\nmodel { ssd { num_classes: 3 } }\n'
    with caplog.at_level(logging.WARNING, logger="od_export"):
        config = parse_pipeline_config(text, "p.config")
    assert not config.HasField("train_input_reader") and config.eval_input_reader[0].label_map_path == "y"
    assert "only Google's internal build" in caplog.text and "train_input_reader" in caplog.text
    assert "_pb2 module" not in caplog.text


def test_an_unknown_extension_outside_a_block_it_can_drop_is_one_line_naming_it():
    """Angle-bracket messages are text format too; such a reader is not dropped, but named."""
    with pytest.raises(ConfigError, match="lstm_object_detection.protos.X is a protobuf extension"):
        parse_pipeline_config("model { ssd { num_classes: 1 } }\ntrain_input_reader <\n external_input_reader < "
                              "[lstm_object_detection.protos.X] < > >\n>\n", "p.config")


@pytest.mark.integration
def test_centernet_mobilenet_v2_at_depth_1_builds_without_downloading_imagenet_weights(monkeypatch):
    """The OD API asks Keras for ImageNet weights there; export restores the checkpoint's over them."""
    import socket

    from od_export.source.model import build_model

    def no_network(*args, **kwargs):
        raise OSError("the network is off in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    text = sample_config("centernet_mobilenet_v2_fpn").read_text().replace("depth_multiplier: 0.35", "depth_multiplier: 1.0")
    assert build_model(parse_pipeline_config(text, "p.config")) is not None
