"""The lean SavedModel is a drop-in: detect_fn(input_tensor), saved_model_cli, full object graph."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from od_export import compat
from od_export.verify import samples
from od_export.verify.compare import compare_outputs
from tests.conftest import ALL_INPUT_TYPES
from tests.helpers import sample_input

pytestmark = pytest.mark.integration
SAVED_MODEL_CLI = Path(sys.executable).with_name("saved_model_cli")


def test_loaded_model_is_callable_like_the_inference_tutorial(exported):
    tf = compat.import_tensorflow()
    artifact = exported("ssd_mobilenet_v2", ALL_INPUT_TYPES).artifacts[0]
    detect_fn = tf.saved_model.load(str(artifact.directory / "saved_model"))
    detections = detect_fn(tf.convert_to_tensor(sample_input("image_tensor")))
    reference = samples.run_saved_model(artifact.directory / "saved_model", {"input_tensor": sample_input("image_tensor")})
    assert not [d for d in compare_outputs(reference, {k: v.numpy() for k, v in detections.items()}) if not d.ok]


def saved_model_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}
    return subprocess.run([str(SAVED_MODEL_CLI), *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.skipif(not SAVED_MODEL_CLI.exists(), reason="saved_model_cli is not installed next to this Python")
def test_saved_model_cli_show_and_run(exported, tmp_path):
    artifact = exported("ssd_mobilenet_v2", ALL_INPUT_TYPES).artifacts[0]
    directory = str(artifact.directory / "saved_model")
    show = saved_model_cli("show", "--dir", directory, "--all")
    assert show.returncode == 0, show.stderr
    assert "signature_def['serving_default']" in show.stdout and "detection_boxes" in show.stdout
    np.save(tmp_path / "image.npy", sample_input("image_tensor"))
    run = saved_model_cli(
        "run", "--dir", directory, "--tag_set", "serve", "--signature_def", "serving_default",
        "--inputs", f"input_tensor={tmp_path / 'image.npy'}", "--outdir", str(tmp_path / "out"),
    )
    assert run.returncode == 0, run.stderr
    boxes = np.load(tmp_path / "out" / "detection_boxes.npy")
    reference = samples.run_saved_model(artifact.directory / "saved_model", {"input_tensor": sample_input("image_tensor")})
    np.testing.assert_allclose(boxes, reference["detection_boxes"], atol=1e-5)


@pytest.mark.exhaustive  # a second full export of the same model, for a rarely used option
def test_full_object_graph_option(exported, demo_checkpoint, workspace):
    from od_export import export
    from od_export import ExportOptions

    run = demo_checkpoint("ssd_mobilenet_v2")
    result = export(ExportOptions(run / "pipeline.config", run, workspace / "full", full_object_graph=True, freeze=False))
    full = result.artifacts[0].directory / "saved_model"
    lean = exported("ssd_mobilenet_v2", ALL_INPUT_TYPES).artifacts[0].directory / "saved_model"
    value = sample_input("image_tensor")
    full_outputs = samples.run_saved_model(full, {"input_tensor": value})
    lean_outputs = samples.run_saved_model(lean, {"input_tensor": value})
    assert not [d for d in compare_outputs(lean_outputs, full_outputs) if not d.ok]
    loaded = compat.import_tensorflow().saved_model.load(str(full))
    assert hasattr(loaded, "_model")  # the exporter's module, Keras model inside
    assert not hasattr(compat.import_tensorflow().saved_model.load(str(lean)), "_model")


def test_loads_through_the_tf1_loader_like_tf_serving(exported):
    """TF Serving loads a SavedModel by tag and SignatureDef in a session, not via tf.function."""
    tf = compat.import_tensorflow()
    artifact = exported("ssd_mobilenet_v2", ALL_INPUT_TYPES).artifacts[1]  # float_image_tensor
    value = sample_input(artifact.input_type)
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(artifact.directory / "saved_model"))
        signature = meta_graph.signature_def["serving_default"]
        outputs = session.run({k: v.name for k, v in signature.outputs.items()}, {signature.inputs["input_tensor"].name: value})
    reference = samples.run_saved_model(artifact.directory / "saved_model", {"input_tensor": value})
    assert not [d for d in compare_outputs(reference, outputs) if not d.ok]


def test_frozen_graph_converts_back_to_a_saved_model(exported, tmp_path, capsys):
    """convert frozen_inference_graph.pb --target saved_model: serving_default under the export's own keys."""
    from od_export.cli import main

    unit = exported("ssd_mobilenet_v2", ALL_INPUT_TYPES).output_dir / "encoded_image_string_tensor"
    output = tmp_path / "wrapped"
    code = main(["convert", str(unit / "frozen_graph" / "frozen_inference_graph.pb"), "--target", "saved_model",
                 "--output-dir", str(output), "-q"])
    assert code == 0, capsys.readouterr().err
    value = sample_input("encoded_image_string_tensor")
    wrapped = samples.run_saved_model(output, {"input_tensor": value})
    reference = samples.run_saved_model(unit / "saved_model", {"input_tensor": value})
    assert set(wrapped) == set(reference)
    assert not [d for d in compare_outputs(reference, wrapped) if not d.ok]


@pytest.fixture(scope="module")
def single_export(demo_checkpoint, workspace):
    """One SavedModel for three input types; the frozen graph starts from encoded_image_string_tensor."""
    from od_export import ExportOptions, export

    run = demo_checkpoint("ssd_mobilenet_v2")
    return export(ExportOptions(run / "pipeline.config", run, workspace / "single", input_types=SINGLE_TYPES,
                                single_saved_model=True, signature_key="encoded_image_string_tensor", validate=True))


SINGLE_TYPES = ("image_tensor", "encoded_image_string_tensor", "tf_example")


def test_single_saved_model_serves_every_input_type_like_the_per_type_exports(single_export, exported):
    tf = compat.import_tensorflow()
    directory = single_export.output_dir / "saved_model"
    loaded = tf.saved_model.load(str(directory))
    assert set(loaded.signatures) == {"serving_default", *SINGLE_TYPES}
    per_type = exported("ssd_mobilenet_v2", ALL_INPUT_TYPES).output_dir
    for input_type in SINGLE_TYPES:
        value = sample_input(input_type)
        single = {k: v.numpy() for k, v in loaded.signatures[input_type](input_tensor=tf.constant(value)).items()}
        reference = samples.run_saved_model(per_type / input_type / "saved_model", {"input_tensor": value})
        assert not [d for d in compare_outputs(reference, single) if not d.ok], input_type
    weights = [sum(f.stat().st_size for f in (d / "variables").iterdir())
               for d in (directory, per_type / "image_tensor" / "saved_model")]
    assert weights[0] < 1.02 * weights[1], weights  # the variables are stored once
    checks = {c["artifact"]: c["ok"] for c in single_export.validation["checks"]}
    assert checks == {"saved_model": True, "frozen_graph": True, "signature serving_default": True,
                      "signature image_tensor": True, "signature tf_example": True}
    spec = (single_export.output_dir / "frozen_graph" / "io_spec.json").read_text()
    assert '"signature_key": "encoded_image_string_tensor"' in spec and '"dtype": "string"' in spec


def test_a_signature_that_computes_something_else_fails_validation(single_export, tmp_path):
    """The image_tensor signature is swapped for one that halves the scores: only that check fails."""
    from od_export.validator import ValidateOptions, validate

    tf = compat.import_tensorflow()
    copy = tmp_path / "single"
    shutil.copytree(single_export.output_dir, copy)
    shutil.rmtree(copy / "frozen_graph")
    loaded = tf.saved_model.load(str(single_export.output_dir / "saved_model"))
    original = loaded.signatures["image_tensor"]

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8, name="input_tensor")])
    def halved(input_tensor):
        outputs = dict(original(input_tensor=input_tensor))
        outputs["detection_scores"] = outputs["detection_scores"] * 0.5
        return outputs

    signatures = {key: loaded.signatures[key] for key in ("serving_default", "encoded_image_string_tensor", "tf_example")}
    shutil.rmtree(copy / "saved_model")
    tf.saved_model.save(loaded, str(copy / "saved_model"), signatures={**signatures, "image_tensor": halved})
    report = validate(ValidateOptions(copy))
    verdicts = {c.artifact: c.ok for c in report.checks}
    assert verdicts["signature image_tensor"] is False
    assert verdicts["signature encoded_image_string_tensor"] and verdicts["signature tf_example"]
