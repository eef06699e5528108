"""od-export freeze on TF1 checkpoints made with tf.compat.v1 (tests/tf1_graphs.py)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from od_export import compat
from od_export.cli import main
from od_export.errors import InputError
from od_export.tf1 import inference_graph, meta_graph, serving
from od_export.verify import graphs, samples
from tests.tf1_graphs import IMAGE_SIZE, INFERENCE_OUTPUTS, make_tf1_run, negated_largest_constant

pytestmark = pytest.mark.integration
TRAINING_OPS = {"VariableV2", "VarHandleOp", "ReadVariableOp", "AssignVariableOp", "Assign", "ResourceApplyAdam",
                "ApplyAdam", "SaveV2", "RestoreV2", "MergeSummary", "ScalarSummary", "HistogramSummary",
                "PlaceholderWithDefault", "SparseSoftmaxCrossEntropyWithLogits", "Assert"}


@pytest.fixture(scope="module")
def tf1_run(tmp_path_factory) -> Path:
    return make_tf1_run(tmp_path_factory.mktemp("tf1_uint8"))


@pytest.fixture(scope="module")
def frozen_dir(tf1_run, tmp_path_factory) -> tuple[Path, dict]:
    output = tmp_path_factory.mktemp("frozen") / "out"
    assert main(["freeze", "--meta-graph", str(tf1_run), "--output-dir", str(output), "--saved-model", "-q"]) == 0
    return output, json.loads((output / "frozen_graph" / "io_spec.json").read_text())


def checkpoint_outputs(meta: Path, feeds: dict[str, np.ndarray], fetches: list[str]) -> list[np.ndarray]:
    """The checkpointed training graph, restored the TF1 way, on ``feeds``."""
    tf = compat.import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        saver = tf.compat.v1.train.import_meta_graph(str(meta))
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, str(meta.with_suffix("")))
            return session.run(fetches, feeds)


def test_inspect_and_freeze_find_exactly_the_inference_outputs(tf1_run, frozen_dir, capsys):
    assert main(["inspect", str(tf1_run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [o["name"] for o in report["likely_outputs"]] == INFERENCE_OUTPUTS
    _, io_spec = frozen_dir
    assert sorted(io_spec["outputs"]) == INFERENCE_OUTPUTS and io_spec["outputs_discovered"]
    assert list(io_spec["inputs"]) == ["images"]  # labels only fed the loss
    assert io_spec["folded_defaults"] == ["keep_prob"]


def test_frozen_graph_has_no_variables_or_training_nodes(frozen_dir):
    output, _ = frozen_dir
    graph_def = samples.load_graph_def(output / "frozen_graph" / "frozen_inference_graph.pb")
    ops = {node.op for node in graph_def.node}
    assert not ops & TRAINING_OPS, ops & TRAINING_OPS
    names = [node.name for node in graph_def.node]
    assert not [n for n in names if n.startswith(("gradients", "train_op", "save", "loss", "labels", "Adam"))]
    assert [n.name for n in graph_def.node if n.op == "Placeholder"] == ["images"]


def test_frozen_graph_and_saved_model_equal_the_checkpoint(tf1_run, frozen_dir):
    output, _ = frozen_dir
    image = samples.sample_image(IMAGE_SIZE, IMAGE_SIZE, seed=7)[np.newaxis]
    expected = checkpoint_outputs(tf1_run, {"images:0": image}, ["probabilities:0", "classes:0"])
    graph_def = samples.load_graph_def(output / "frozen_graph" / "frozen_inference_graph.pb")
    frozen = samples.run_frozen_graph(graph_def, {"images:0": image}, {"p": "probabilities:0", "c": "classes:0"})
    np.testing.assert_allclose(frozen["p"], expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(frozen["c"], expected[1])
    tf = compat.import_tensorflow()
    served = graphs.run_signature(tf.saved_model.load(str(output / "saved_model")).signatures["serving_default"],
                                  {"images": image})
    np.testing.assert_allclose(served["probabilities"], expected[0], rtol=1e-5, atol=1e-6)
    assert (output / "manifest.json").is_file()


def test_chosen_output_node(tf1_run, tmp_path):
    output = tmp_path / "logits"
    assert main(["freeze", "--meta-graph", str(tf1_run), "--output-dir", str(output), "--output-nodes", "logits",
                 "--saved-model", "--signature-outputs", "scores=logits", "-q"]) == 0
    io_spec = json.loads((output / "frozen_graph" / "io_spec.json").read_text())
    assert list(io_spec["outputs"]) == ["logits"] and not io_spec["outputs_discovered"]
    assert io_spec["saved_model"]["outputs"] == {"scores": "logits:0"}


def test_unknown_output_node_is_one_line_naming_the_closest(tf1_run, tmp_path, capsys):
    output = tmp_path / "out"
    code = main(["freeze", "--meta-graph", str(tf1_run), "--output-dir", str(output), "--output-nodes", "probabilties", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "'probabilties' is not in the graph" in err and "probabilities" in err
    assert not output.exists()
    assert main(["freeze", "--meta-graph", str(tf1_run), "--output-dir", str(output), "--output-nodes", "classes:2", "-q"]) == 2
    assert "node classes has 1 output(s)" in capsys.readouterr().err


def test_tampered_frozen_graph_fails_and_writes_nothing(tf1_run, tmp_path, monkeypatch, capsys):
    real_freeze = inference_graph.freeze

    def tampered(restored, choice):
        frozen = real_freeze(restored, choice)
        frozen.graph_def = negated_largest_constant(frozen.graph_def)
        return frozen

    monkeypatch.setattr(inference_graph, "freeze", tampered)
    output = tmp_path / "out"
    code = main(["freeze", "--meta-graph", str(tf1_run), "--output-dir", str(output)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and "frozen graph differs from the checkpointed graph" in err[-1], err
    assert not output.exists()


def test_encoded_image_front_end_on_a_float_graph(tmp_path):
    meta = make_tf1_run(tmp_path / "run", image_dtype="float32", steps=1)
    meta.rename(tmp_path / "run" / "graph.meta")  # found through the checkpoint state file instead
    output = tmp_path / "out"
    assert main(["freeze", "--meta-graph", str(tmp_path / "run" / "graph.meta"), "--output-dir", str(output),
                 "--encoded-image-input", "--encoded-image-range", "0,255", "--signature-inputs", "pixels=images",
                 "-q"]) == 0
    tf = compat.import_tensorflow()
    signature = tf.saved_model.load(str(output / "saved_model")).signatures["serving_default"]
    image = samples.sample_image(IMAGE_SIZE, IMAGE_SIZE, seed=3)
    served = graphs.run_signature(signature, {serving.ENCODED_INPUT_KEY: np.array([graphs.png_bytes(image)], dtype=object)})
    graph_def = samples.load_graph_def(output / "frozen_graph" / "frozen_inference_graph.pb")
    frozen = samples.run_frozen_graph(graph_def, {"images:0": image[np.newaxis].astype(np.float32)}, {"p": "probabilities:0"})
    np.testing.assert_allclose(served["probabilities"], frozen["p"], rtol=1e-5, atol=1e-6)


def test_sources_are_checked_before_tensorflow(tmp_path, tf1_run):
    with pytest.raises(InputError, match="does not exist"):
        meta_graph.resolve_sources(tmp_path / "missing.meta", None)
    lonely = tmp_path / "model.ckpt-9.meta"
    shutil.copy(tf1_run, lonely)
    with pytest.raises(Exception, match="no checkpoint beside"):
        meta_graph.resolve_sources(lonely, None)
    assert meta_graph.resolve_sources(tf1_run, None)[1] == tf1_run.with_suffix("")


def test_encoded_input_needs_an_image_of_known_size():
    with pytest.raises(InputError, match="exactly one image input of known size"):
        serving.encoded_front_end({"x": {"tensor": "x:0", "dtype": "float32", "shape": [None, None, None, 3]}}, (0, 1))


def test_frozen_graph_round_trips_to_a_saved_model(frozen_dir, tmp_path):
    output, _ = frozen_dir
    graph = tmp_path / "frozen_inference_graph.pb"  # no io_spec.json beside it: inputs and outputs are discovered
    shutil.copy(output / "frozen_graph" / "frozen_inference_graph.pb", graph)
    assert main(["convert", str(graph), "--target", "saved_model", "-q"]) == 0
    tf = compat.import_tensorflow()
    image = samples.sample_image(IMAGE_SIZE, IMAGE_SIZE, seed=5)[np.newaxis]
    served = graphs.run_signature(tf.saved_model.load(str(tmp_path / "saved_model")).signatures["serving_default"],
                                  {"images": image})
    frozen = samples.run_frozen_graph(samples.load_graph_def(graph), {"images:0": image}, {"p": "probabilities:0"})
    np.testing.assert_allclose(served["probabilities"], frozen["p"], rtol=1e-5, atol=1e-6)
    assert sorted(served) == INFERENCE_OUTPUTS


def test_tampered_wrapped_saved_model_fails_and_writes_nothing(frozen_dir, tmp_path, monkeypatch, capsys):
    from od_export.tf1 import wrap

    real_write = serving.write_predict_saved_model

    def tampered(graph_def, inputs, outputs, directory, front=None):
        return real_write(negated_largest_constant(graph_def), inputs, outputs, directory, front)

    monkeypatch.setattr(wrap.serving, "write_predict_saved_model", tampered)
    output, _ = frozen_dir
    code = main(["convert", str(output / "frozen_graph" / "frozen_inference_graph.pb"), "--target", "saved_model",
                 "--output-dir", str(tmp_path / "sm"), "-q"])
    assert code == 1 and "SavedModel differs from the frozen graph" in capsys.readouterr().err
    assert not (tmp_path / "sm").exists()


def test_frozen_graph_converts_to_saved_model_only(frozen_dir, tmp_path, capsys):
    output, _ = frozen_dir
    code = main(["convert", str(output / "frozen_graph" / "frozen_inference_graph.pb"), "--target", "onnx"])
    assert code == 2 and "saved_model target only" in capsys.readouterr().err


def test_tampered_freeze_saved_model_fails_and_writes_nothing(tf1_run, tmp_path, monkeypatch, capsys):
    """The frozen graph is intact; only the SavedModel is written from a graph with a negated weight."""
    real_write = serving.write_predict_saved_model
    monkeypatch.setattr(serving, "write_predict_saved_model",
                        lambda graph_def, *args, **kwargs: real_write(negated_largest_constant(graph_def), *args, **kwargs))
    output = tmp_path / "out"
    code = main(["freeze", "--meta-graph", str(tf1_run), "--output-dir", str(output), "--saved-model", "-q"])
    assert code == 1 and "saved model differs from the checkpointed graph" in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.parametrize("named", [False, True], ids=["softmax", "named_Y_and_prediction"])
def test_the_seeds_classifier_gives_its_probabilities_not_the_loss_or_accuracy(named, tmp_path, capsys):
    """Old discovery found Mean (the loss) and Mean_1 (the accuracy) and kept the labels placeholder."""
    from tests.tf1_graphs import make_softmax_classifier

    expected = ["Y", "prediction"] if named else ["Softmax"]
    for meta in make_softmax_classifier(tmp_path, named=named):
        capsys.readouterr()
        assert main(["inspect", str(meta), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert [o["name"] for o in report["likely_outputs"]] == expected, meta
        assert report["training_only"]["labels"] == ["Placeholder_1"]
        output = tmp_path / f"frozen_{meta.parent.name}"
        assert main(["freeze", "--meta-graph", str(meta), "--output-dir", str(output), "-q"]) == 0
        io_spec = json.loads((output / "frozen_graph" / "io_spec.json").read_text())
        assert sorted(io_spec["outputs"]) == expected and list(io_spec["inputs"]) == ["Placeholder"]


def test_outputs_nobody_named_on_two_heads_are_ambiguous_and_listed(tmp_path, capsys):
    from tests.tf1_graphs import make_softmax_classifier

    _, final = make_softmax_classifier(tmp_path, unnamed_heads=True)
    output = tmp_path / "out"
    capsys.readouterr()
    assert main(["freeze", "--meta-graph", str(final), "--output-dir", str(output), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ambiguous" in err and "Sigmoid (Sigmoid [?,2]); Softmax (Softmax [?,4])" in err and "--output-nodes" in err
    assert not output.exists()
    assert main(["freeze", "--meta-graph", str(final), "--output-dir", str(output), "--output-nodes", "Softmax", "-q"]) == 0
