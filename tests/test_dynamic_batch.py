"""``--dynamic-batch``: image_tensor takes any batch size, and a batch gives each image's own detections;
``--no-postprocessing``: the ONNX and TFLite files end at the raw boxes and scores.  One export has
both, as a user with a batching server and an own NMS would ask for."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from od_export.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dynamic_export(demo_checkpoint, tmp_path_factory):
    from od_export import ExportOptions, export

    run = demo_checkpoint("ssd_mobilenet_v2")
    return export(ExportOptions(run / "pipeline.config", run, tmp_path_factory.mktemp("dynamic") / "out",
                                targets=("onnx", "tflite"), dynamic_batch=True, postprocessing=False, validate=True))


def test_the_savedmodel_frozen_graph_and_onnx_take_any_batch(dynamic_export):
    from od_export.targets.onnx import OnnxRunner
    from od_export.verify import samples

    out = dynamic_export.output_dir
    checks = {c["artifact"]: c for c in dynamic_export.validation["checks"]}
    assert checks["batch of 4"]["ok"] and checks["batch of 4"]["input_type"] == "image_tensor"
    assert dynamic_export.artifacts[0].signature["inputs"]["input_tensor"]["shape"] == [None, None, None, 3]
    frozen = json.loads((out / "frozen_graph" / "io_spec.json").read_text())
    assert frozen["inputs"]["input_tensor"]["shape"] == [None, None, None, 3]
    assert json.loads((out / "onnx" / "io_spec.json").read_text())["inputs"]["input_tensor"]["shape"][0] is None
    runner = OnnxRunner((out / "onnx" / "model.onnx").read_bytes())
    images = [samples.sample_image(96, 128, seed=seed) for seed in range(4)]
    batch = runner.run({"input_tensor": np.stack(images)})
    for index, image in enumerate(images):
        alone = runner.run({"input_tensor": image[None]})
        for key in ("raw_detection_boxes", "raw_detection_scores"):
            assert np.allclose(batch[key][index], alone[key][0], atol=1e-4), key


def test_the_onnx_file_without_post_processing_gives_the_savedmodel_s_raw_outputs(dynamic_export, tmp_path, capsys):
    import onnx

    from tests.test_onnx import largest_initializer_scaled

    out = dynamic_export.output_dir
    model = onnx.load(str(out / "onnx" / "model.onnx"))
    assert sorted(o.name for o in model.graph.output) == ["raw_detection_boxes", "raw_detection_scores"]
    assert not [n for n in model.graph.node if "NonMaxSuppression" in n.op_type]  # the NMS is pruned away
    assert "before non-maximum suppression" in json.loads((out / "onnx" / "io_spec.json").read_text())["postprocessing"]
    [check] = [c for c in dynamic_export.validation["checks"] if c["artifact"] == "onnx"]
    assert check["ok"] and set(check["outputs"]) == {"raw_detection_boxes", "raw_detection_scores"}
    frozen = json.loads((out / "frozen_graph" / "io_spec.json").read_text())
    assert "detection_boxes" in frozen["outputs"]  # the reference keeps its post-processing
    copy = tmp_path / "tampered"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("manifest.json", "frozen_graph"))
    largest_initializer_scaled(copy / "onnx" / "model.onnx")
    assert main(["validate", str(copy), "--json"]) == 1
    [check] = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["artifact"] == "onnx"]
    assert check["ok"] is False and check["outputs"]["raw_detection_scores"]["ok"] is False


def test_the_tflite_file_without_post_processing_gives_the_savedmodel_s_raw_outputs(dynamic_export, tmp_path,
                                                                                   capsys):
    from ai_edge_litert.interpreter import Interpreter

    from tests.helpers import tensor_bytes_replaced

    out = dynamic_export.output_dir
    spec = json.loads((out / "tflite" / "io_spec.json").read_text())
    assert "before non-maximum suppression" in spec["postprocessing"] and list(spec["files"]) == ["fp32"]
    entry = spec["files"]["fp32"]
    assert entry["input"] == {"name": "input_tensor", "dtype": "uint8", "shape": [1, 128, 128, 3]}
    assert [o["name"] for o in entry["outputs"]] == ["raw_detection_boxes", "raw_detection_scores"]
    interpreter = Interpreter(model_path=str(out / "tflite" / entry["file"]))
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not [op for op in ops if "PostProcess" in op or "NON_MAX" in op], ops
    [check] = [c for c in dynamic_export.validation["checks"] if c["artifact"] == "tflite:fp32"]
    assert check["ok"] and set(check["outputs"]) == {"raw_detection_boxes", "raw_detection_scores"}
    copy = tmp_path / "tampered"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("manifest.json", "frozen_graph", "onnx"))
    tensor_bytes_replaced(copy / "tflite" / entry["file"], lambda w: w * 1.5)
    assert main(["validate", str(copy), "--json"]) == 1
    [check] = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["artifact"] == "tflite:fp32"]
    assert check["ok"] is False and check["outputs"]["raw_detection_scores"]["ok"] is False


def test_a_savedmodel_whose_batch_mixes_images_fails_the_batch_check(dynamic_export, tmp_path, capsys):
    """Scores replaced by their batch mean: the same for one image, wrong for four."""
    from od_export import compat

    tf = compat.import_tensorflow()
    copy = tmp_path / "mixed"
    shutil.copytree(dynamic_export.output_dir, copy, ignore=shutil.ignore_patterns("frozen_graph", "onnx", "tflite"))
    (copy / "manifest.json").unlink()
    loaded = tf.saved_model.load(str(dynamic_export.output_dir / "saved_model"))
    original = loaded.signatures["serving_default"]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="input_tensor")])
    def mixed(input_tensor):
        outputs = dict(original(input_tensor=input_tensor))
        scores = outputs["detection_scores"]
        outputs["detection_scores"] = tf.broadcast_to(tf.reduce_mean(scores, axis=0, keepdims=True), tf.shape(scores))
        return outputs

    shutil.rmtree(copy / "saved_model")
    tf.saved_model.save(loaded, str(copy / "saved_model"), signatures={"serving_default": mixed})
    assert main(["validate", str(copy), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    verdicts = {c["artifact"]: c["ok"] for c in report["checks"]}
    assert verdicts == {"saved_model": True, "batch of 4": False}
