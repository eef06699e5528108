"""A TF1 OD API run (slim ssd_mobilenet_v1, model.ckpt-N) through the OD API's TF1 exporter."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from od_export import compat
from od_export.cli import main
from od_export.errors import ValidationFailed
from od_export.tf1 import od_api
from od_export.verify import graphs, samples
from od_export.verify.compare import compare_outputs
from tests.conftest import sample_config
from tests.test_cli import FAST_FAILURE, QUIET_ENV, fake_run
from tests.tf1_graphs import negated_largest_constant

pytestmark = pytest.mark.integration
TF1_TYPES = ("image_tensor",)
TF1_LAYOUT = {"frozen_inference_graph.pb", "saved_model", "model.ckpt.meta", "model.ckpt.index",
              "model.ckpt.data-00000-of-00001", "checkpoint", "pipeline.config"}
ZOO_OUTPUTS = {"detection_boxes", "detection_scores", "detection_classes", "num_detections"}


@pytest.fixture(scope="module")
def tf1_export(tmp_path_factory):
    from od_export import DemoCheckpointOptions, ExportOptions, create_demo_checkpoint, export

    root = tmp_path_factory.mktemp("tf1_od_api")
    run = create_demo_checkpoint(DemoCheckpointOptions(sample_config("ssd_mobilenet_v1_tf1"), root / "run")).output_dir
    assert (run / "model.ckpt-1.index").is_file()
    return export(ExportOptions(run / "pipeline.config", run, root / "export", input_types=TF1_TYPES, validate=True))


def test_writes_the_tf1_exporter_layout_verified(tf1_export):
    assert TF1_LAYOUT <= {p.name for p in tf1_export.output_dir.iterdir()}
    assert set(tf1_export.validation["checks"]["image_tensor"]) == {"frozen_graph", "saved_model"}
    manifest = json.loads((tf1_export.output_dir / "manifest.json").read_text())
    assert manifest["source"]["checkpoint"]["prefix"].endswith("model.ckpt-1")


def test_frozen_graph_and_saved_model_serve_the_zoo_names(tf1_export, capsys):
    unit = tf1_export.output_dir
    assert main(["inspect", str(unit / "frozen_inference_graph.pb"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [i["name"] for i in report["inputs"]] == ["image_tensor"]
    assert ZOO_OUTPUTS <= {o["name"] for o in report["likely_outputs"]}
    tf = compat.import_tensorflow()
    image = samples.sample_image(200, 240, seed=11)[np.newaxis]
    served = graphs.run_signature(tf.saved_model.load(str(unit / "saved_model")).signatures["serving_default"],
                                  {"inputs": image})
    frozen = samples.run_frozen_graph(samples.load_graph_def(unit / "frozen_inference_graph.pb"), {"image_tensor:0": image},
                                      {k: f"{k}:0" for k in ZOO_OUTPUTS})
    assert not [d for d in compare_outputs(frozen, {k: served[k] for k in ZOO_OUTPUTS}) if not d.ok]
    assert float(np.std(frozen["detection_scores"])) > 0.01  # seeded weights: varied scores


def test_zoo_frozen_graph_converts_to_a_saved_model(tf1_export, tmp_path, capsys):
    graph = tf1_export.output_dir / "frozen_inference_graph.pb"
    assert main(["convert", str(graph), "--target", "saved_model", "--output-dir", str(tmp_path / "sm"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["io_from"] == "TF1 model zoo names"
    assert ZOO_OUTPUTS <= set(result["signature"]["serving_default"]["outputs"])


def test_tampered_tf1_frozen_graph_fails_verification(tf1_export, tmp_path):
    unit = tmp_path / "unit"
    shutil.copytree(tf1_export.output_dir, unit)
    graph_def = negated_largest_constant(samples.load_graph_def(unit / "frozen_inference_graph.pb"))
    (unit / "frozen_inference_graph.pb").write_bytes(graph_def.SerializeToString())
    prefix = tf1_export.checkpoint
    with pytest.raises(ValidationFailed, match="TF1 frozen graph differs from the checkpointed graph"):
        od_api.verify_unit(unit, "image_tensor", prefix, od_api_config(unit))


def od_api_config(unit):
    from od_export.source.pipeline_config import load_pipeline_config

    return load_pipeline_config(unit / "pipeline.config")


@pytest.mark.parametrize("extra, fragment", [
    (["--input-type", "float_image_tensor"], "exports input types image_tensor, encoded_image_string_tensor, tf_example"),
    (["--target", "onnx"], "cannot take --target: the TF1 exporter writes a frozen graph and a SavedModel"),
    (["--single-saved-model"], "cannot take --single-saved-model"),
])
def test_what_the_tf1_exporter_cannot_do_is_one_line_without_tensorflow(extra, fragment, tmp_path):
    run = fake_run(tmp_path / "run")
    (run / "model.ckpt-1.index").write_bytes(b"")
    result = subprocess.run(
        [sys.executable, "-c", FAST_FAILURE, "export", "--pipeline-config", str(sample_config("ssd_mobilenet_v1_tf1")),
         "--checkpoint-dir", str(run), "--output-dir", str(tmp_path / "out"), *extra],
        capture_output=True, text=True, env=QUIET_ENV, timeout=60)
    code, _, imported_tf = result.stdout.split()
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert code == "2" and len(errors) == 1 and fragment in errors[0], result.stderr
    assert imported_tf == "False"


def test_zoo_names_take_the_placeholder_of_any_tf1_input_type():
    """The TF1 exporter names its placeholder after the input type and serves it under ``inputs``."""
    from od_export.tf1 import wrap

    tf = compat.import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        encoded = tf.compat.v1.placeholder(tf.string, [None], name="encoded_image_string_tensor")
        size = tf.cast(tf.size(encoded), tf.float32)
        tf.identity(tf.zeros([1, 2, 4]) + size, name="detection_boxes")
        tf.identity(size, name="num_detections")
    io = wrap._graph_io(graph.as_graph_def(), None)
    assert io["inputs"] == {"inputs": "encoded_image_string_tensor:0"} and io["source"] == wrap.ZOO_SOURCE
    assert io["outputs"] == {"detection_boxes": "detection_boxes:0", "num_detections": "num_detections:0"}


def test_validate_says_a_tf1_export_is_verified_when_written(tf1_export, capsys):
    assert main(["validate", str(tf1_export.output_dir), "-q"]) == 2
    assert "is a TF1 exporter SavedModel" in capsys.readouterr().err


def test_convert_refuses_a_tf1_export_in_one_line(tf1_export, capsys):
    assert main(["convert", str(tf1_export.output_dir), "--target", "onnx", "-q"]) == 2
    assert "holds a TF1 (slim) model" in capsys.readouterr().err


def test_tampered_tf1_saved_model_fails_verification(tf1_export, tmp_path):
    """The frozen graph is intact; only the SavedModel computes with a negated weight."""
    from od_export.tf1 import serving

    unit = tmp_path / "unit"
    shutil.copytree(tf1_export.output_dir, unit, ignore=shutil.ignore_patterns("saved_model"))
    input_name, outputs = od_api.signature_io(tf1_export.output_dir)
    graph_def = negated_largest_constant(samples.load_graph_def(unit / "frozen_inference_graph.pb"))
    serving.write_predict_saved_model(graph_def, {"inputs": input_name}, outputs, unit / "saved_model")
    with pytest.raises(ValidationFailed, match="TF1 saved model differs from the checkpointed graph"):
        od_api.verify_unit(unit, "image_tensor", tf1_export.checkpoint, od_api_config(unit))


def test_exported_weights_must_equal_the_training_checkpoint(tf1_export, tmp_path):
    """A training checkpoint whose largest variable differs is caught by the weight check."""
    tf = compat.import_tensorflow()
    reader = tf.train.load_checkpoint(str(tf1_export.checkpoint))
    shapes = reader.get_variable_to_shape_map()
    largest = max(shapes, key=lambda name: int(np.prod(shapes[name])))
    graph = tf.Graph()
    with graph.as_default():
        for name in shapes:
            value = reader.get_tensor(name)
            tf.compat.v1.Variable(-value if name == largest else value, name=name)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            changed = tf.compat.v1.train.Saver().save(session, str(tmp_path / "model.ckpt"))
    with pytest.raises(ValidationFailed, match=f"exported value of {largest} differs"):
        od_api._check_weights(tf1_export.output_dir / "model.ckpt", changed, od_api_config(tf1_export.output_dir))
