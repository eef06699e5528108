"""od-export inspect on every kind of path, --json parsed and checked field by field."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from od_export.cli import main
from tests.conftest import ALL_INPUT_TYPES, sample_config

pytestmark = pytest.mark.integration
SSD_OUTPUTS = {
    "detection_anchor_indices", "detection_boxes", "detection_classes", "detection_multiclass_scores",
    "detection_scores", "num_detections", "raw_detection_boxes", "raw_detection_scores",
}
EXPECTED_INPUT_DTYPES = {"image_tensor": "uint8", "float_image_tensor": "float32",
                         "encoded_image_string_tensor": "string", "tf_example": "string"}


def inspect_json(capsys, *args: str, expect: int = 0) -> dict:
    code = main(["inspect", *args, "--json"])
    captured = capsys.readouterr()
    assert code == expect, captured.err
    return json.loads(captured.out)


def test_export_directory(exported, capsys):
    result = exported("ssd_mobilenet_v2", ALL_INPUT_TYPES)
    report = inspect_json(capsys, str(result.output_dir))
    assert report["kind"] == "export"
    assert [u["name"] for u in report["units"]] == sorted(ALL_INPUT_TYPES)
    for unit in report["units"]:
        [meta_graph] = unit["saved_model"]["meta_graphs"]
        signature = meta_graph["signatures"]["serving_default"]
        assert signature["inputs"]["input_tensor"]["dtype"] == EXPECTED_INPUT_DTYPES[unit["name"]]
        assert set(signature["outputs"]) == SSD_OUTPUTS
        frozen = unit["frozen_graph"]
        assert [i["name"] for i in frozen["inputs"]] == ["input_tensor"]
        assert {o["name"] for o in frozen["likely_outputs"]} == SSD_OUTPUTS
        assert frozen["io_spec"]["outputs"]["detection_boxes"]["tensor"] == "detection_boxes:0"
    assert report["manifest"]["source"]["architecture"] == "ssd"


def test_saved_model_directory(exported, capsys):
    directory = exported("ssd_mobilenet_v2", ALL_INPUT_TYPES).output_dir / "image_tensor" / "saved_model"
    report = inspect_json(capsys, str(directory))
    assert report["kind"] == "saved_model"
    [meta_graph] = report["meta_graphs"]
    assert meta_graph["tags"] == ["serve"]
    signature = meta_graph["signatures"]["serving_default"]
    assert signature["inputs"]["input_tensor"] == {"tensor": "serving_default_input_tensor:0", "dtype": "uint8", "shape": [1, None, None, 3]}
    assert signature["outputs"]["detection_boxes"]["shape"] == [1, 20, 4]
    assert signature["outputs"]["raw_detection_scores"]["shape"] == [1, 284, 4]


def test_frozen_graph_pb_and_pbtxt(exported, capsys, tmp_path):
    from od_export.verify import samples
    from google.protobuf import text_format

    pb = exported("ssd_mobilenet_v2", ALL_INPUT_TYPES).output_dir / "float_image_tensor" / "frozen_graph" / "frozen_inference_graph.pb"
    report = inspect_json(capsys, str(pb))
    assert report["kind"] == "graph" and report["node_count"] > 500
    assert report["op_histogram"]["Const"] > 0
    assert report["inputs"] == [{"name": "input_tensor", "tensor": "input_tensor:0", "dtype": "float32", "shape": [None, None, None, 3]}]
    boxes = next(o for o in report["likely_outputs"] if o["name"] == "detection_boxes")
    assert boxes["dtype"] == "float32" and boxes["op"] == "Identity"
    pbtxt = tmp_path / "graph.pbtxt"
    pbtxt.write_text(text_format.MessageToString(samples.load_graph_def(pb)))
    text_report = inspect_json(capsys, str(pbtxt))
    assert text_report["node_count"] == report["node_count"]
    assert {o["name"] for o in text_report["likely_outputs"]} == SSD_OUTPUTS


def test_tf1_graph_without_signatures(tmp_path, capsys):
    """Outputs of a TF1-style graph are found without signatures, skipping saver and assert nodes."""
    from od_export import compat

    tf = compat.import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.uint8, [1, None, None, 3], name="image_tensor")
        pixels = tf.cast(image, tf.float32)
        weights = tf.compat.v1.get_variable("w", [3, 4], initializer=tf.compat.v1.zeros_initializer())
        features = tf.matmul(tf.reduce_mean(pixels, axis=[1, 2]), weights)
        check = tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(features)), [features])
        with tf.control_dependencies([check]):
            tf.identity(tf.reshape(features, [1, 1, 4]), name="detection_boxes")
        tf.sigmoid(features[:, :1], name="detection_scores")
        tf.reduce_sum(tf.sigmoid(features), name="num_detections")
        tf.compat.v1.train.Saver()
        tf.compat.v1.global_variables_initializer()
        meta = tmp_path / "model.ckpt.meta"
        tf.compat.v1.train.export_meta_graph(str(meta))
    report = inspect_json(capsys, str(meta))
    assert report["kind"] == "meta_graph" and report["signatures"] == {}
    assert [o["name"] for o in report["likely_outputs"]] == ["detection_boxes", "detection_scores", "num_detections"]
    assert report["inputs"][0]["name"] == "image_tensor" and report["inputs"][0]["dtype"] == "uint8"
    pb = tmp_path / "graph.pb"
    pb.write_bytes(graph.as_graph_def().SerializeToString())
    assert [o["name"] for o in inspect_json(capsys, str(pb))["likely_outputs"]] == ["detection_boxes", "detection_scores", "num_detections"]


def test_checkpoint_directory_and_config_check(demo_checkpoint, capsys, tmp_path):
    run = demo_checkpoint("ssd_mobilenet_v2")
    report = inspect_json(capsys, str(run), "--pipeline-config", str(run / "pipeline.config"))
    assert report["kind"] == "checkpoint"
    assert report["checkpoints"] == ["ckpt-1"] and report["selected"] == "ckpt-1"
    names = {v["name"] for v in report["variables"]}
    assert any(n.startswith("model/_box_predictor") for n in names) and "step/.ATTRIBUTES/VARIABLE_VALUE" in names
    assert report["parameters"] == sum(_size(v["shape"]) for v in report["variables"])
    assert report["bytes"] >= 4 * sum(_size(v["shape"]) for v in report["variables"] if v["dtype"] == "float32")
    check = report["config_check"]
    assert check["restores"] is True and check["matched"] > 300
    assert check["mismatched"] == [] and check["missing"] == []

    five = tmp_path / "five_classes.config"
    five.write_text((run / "pipeline.config").read_text().replace("num_classes: 3", "num_classes: 5"))
    # A gate: exit 1 when the checkpoint does not fit, with the mismatch still described in --json.
    report = inspect_json(capsys, str(run / "ckpt-1"), "--pipeline-config", str(five), expect=1)
    mismatch = report["config_check"]
    assert report["ok"] is False and mismatch["restores"] is False
    kernel = next(m for m in mismatch["mismatched"] if m["variable"].endswith("class_predictions_with_background/0/_class_predictor_layers/0/kernel"))
    assert kernel["checkpoint_shape"] == [1, 1, 192, 12] and kernel["model_shape"] == [1, 1, 192, 18]
    assert len(mismatch["mismatched"]) == 12
    assert main(["inspect", str(run)]) == 0  # text: a value the report lacks (no note) is left out, not "?"
    assert ": ?" not in capsys.readouterr().out


def _size(shape):
    total = 1
    for dim in shape:
        total *= dim
    return total


def test_pipeline_config(capsys):
    report = inspect_json(capsys, str(sample_config("ssd_mobilenet_v2")))
    assert report["kind"] == "pipeline_config"
    assert report["meta_architecture"] == "ssd"
    assert report["feature_extractor"] == "ssd_mobilenet_v2_keras"
    assert report["num_classes"] == 3
    assert report["image_resizer"] == {"type": "fixed_shape_resizer", "height": 128, "width": 128}
    assert report["input_size"] == [128, 128]
    assert report["postprocessing"]["max_detections"] == 20
    assert report["postprocessing"]["iou_threshold"] == pytest.approx(0.6)
    label_maps = [p for p in report["paths"] if p["field"] == "train_input_reader.label_map_path"]
    assert label_maps == [{"field": "train_input_reader.label_map_path", "path": "label_map.pbtxt", "exists": False}]


def test_exporter_main_v2_layout_text_output_and_tensorboard(exported, tmp_path, capsys):
    source = exported("ssd_mobilenet_v2", ALL_INPUT_TYPES).output_dir / "image_tensor"
    plain = tmp_path / "exporter_style"
    shutil.copytree(source / "saved_model", plain / "saved_model")
    shutil.copytree(source / "checkpoint", plain / "checkpoint")
    assert main(["inspect", str(plain), "--tensorboard", str(tmp_path / "logs")]) == 0
    text = capsys.readouterr().out
    assert "kind: export" in text and "input_tensor: uint8 [1, ?, ?, 3]" in text
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))


def test_bad_paths(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pb"
    garbage.write_bytes(b"\xff\x00not a graph")
    assert main(["inspect", str(garbage)]) == 2
    assert "is not a GraphDef" in capsys.readouterr().err
    for unknown in ("/etc/passwd", str(garbage.with_name("notes.txt"))):
        Path(unknown).exists() or Path(unknown).write_bytes(b"\x00\x01binary")
        assert main(["inspect", unknown]) == 2
        err = capsys.readouterr().err
        assert f"od-export does not know what {unknown} is; inspect takes" in err and "malformed" not in err


def test_corrupt_checkpoint_is_bad_input(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "ckpt-1.index").write_bytes(b"not an index")
    (run / "ckpt-1.data-00000-of-00001").write_bytes(b"")
    assert main(["inspect", str(run)]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err
