"""``od-export benchmark`` on the trained demo run: the OD API evaluator's figures, every artifact, gates, bad data.

One export of the trained fixture (every converter target, TFLite in every
precision) and one benchmark of it on the first 25 eval images are shared by the
tests of this file.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from od_export.benchmark.coco import CocoResult
from od_export.benchmark.report import BenchmarkResult, Gates, Row, format_table
from od_export.benchmark.timing import ArtifactRun
from od_export.cli.main import main
from tests.conftest import TRAINED, needs_trained



def _row(name: str, value: float, drop: float | None, error: str | None = None) -> Row:
    run = ArtifactRun(name, "runtime", 1000, latencies_ms=[1.0, 2.0, 3.0], error=error)
    return Row(".", run, None if error else CocoResult(value, value, value), drop)


def test_gates_name_each_artifact_that_falls_short():
    rows = [_row("saved_model", 0.80, 0.0), _row("tflite:int8", 0.70, 0.10), _row("onnx", 0.79, 0.01),
            _row("openvino", 0.0, None, error="RuntimeError: boom")]
    result = BenchmarkResult("export", "eval.record", 10, rows, Gates(min_map=0.75, max_map_drop=0.05))
    assert result.shortfalls() == ["tflite:int8 mAP 0.700 < 0.75", "openvino did not run (RuntimeError: boom)"]
    assert not result.ok and result.to_dict()["ok"] is False
    assert BenchmarkResult("export", "eval.record", 10, rows[:3], Gates(max_map_drop=0.2)).ok
    drop_only = BenchmarkResult("export", "e", 10, rows[:3], Gates(max_map_drop=0.05))
    assert drop_only.failure_message() == "benchmark: tflite:int8 mAP drop 0.100 > 0.05"
    table = format_table(result)
    assert "tflite:int8" in table and "-0.100" in table and "+0.000" in table and "-0.000" not in table


@pytest.mark.parametrize("args, message", [
    (["--min-map", "2"], "is a COCO mAP between 0 and 1, not 2"),
    (["--max-map-drop", "-0.1"], "is an mAP difference between 0 and 1"),
    (["--max-images", "-1"], "--max-images must be 0 (all) or more"),
    (["--coco", "a.json"], "COCO data needs both the annotation file (--coco) and the image directory (--images)"),
    (["--grid-images", "-2"], "--grid-images is a number of images"),
])
def test_impossible_values_are_refused_before_anything_is_read(tmp_path, capsys, args, message):
    assert main(["benchmark", str(tmp_path / "nowhere"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


#: Eval images the shared benchmark and the OD API's own evaluation run on (of the record's 200).
EVAL_IMAGES = 25


def _first_records(source, target, count: int) -> None:
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(target)) as writer:
        for serialized in tf.data.TFRecordDataset(str(source)).take(count):
            writer.write(serialized.numpy())


def _absolute_config(tmp_path):
    """The fixture's config with absolute data paths (they are relative to the run), evaluating the first images."""
    from google.protobuf import text_format

    from od_export.source.pipeline_config import load_pipeline_config

    config = load_pipeline_config(TRAINED / "pipeline.config")
    for reader in [config.train_input_reader, *config.eval_input_reader]:
        reader.label_map_path = str(TRAINED / reader.label_map_path)
        paths = [str(TRAINED / p) for p in reader.tf_record_input_reader.input_path]
        reader.tf_record_input_reader.ClearField("input_path")
        reader.tf_record_input_reader.input_path.extend(paths)
    _first_records(TRAINED / "data" / "eval.record", tmp_path / "eval.record", EVAL_IMAGES)
    config.eval_input_reader[0].tf_record_input_reader.ClearField("input_path")
    config.eval_input_reader[0].tf_record_input_reader.input_path.append(str(tmp_path / "eval.record"))
    path = tmp_path / "pipeline.config"
    path.write_text(text_format.MessageToString(config))
    return path


def eager_eval_metrics(tmp_path) -> dict[str, float]:
    """COCO metrics of the fixture's last checkpoint on its first eval images, by model_lib_v2's eager_eval_loop."""
    from od_export import compat

    training = compat.import_training()
    tf = training.tf
    from object_detection.builders import model_builder
    from object_detection.utils import config_util

    configs = config_util.get_configs_from_pipeline_file(str(_absolute_config(tmp_path)))
    model = model_builder.build(configs["model"], is_training=False)
    tf.train.Checkpoint(model=model).restore(tf.train.latest_checkpoint(str(TRAINED))).expect_partial()
    dataset = training.inputs.eval_input(configs["eval_config"], configs["eval_input_configs"][0], configs["model"],
                                         model=model)
    metrics = training.model_lib_v2.eager_eval_loop(model, configs, dataset, global_step=tf.constant(0, tf.int64))
    return {key: float(value) for key, value in metrics.items()}


@pytest.fixture(scope="module")
def benchmarked(trained_export):
    """``od-export benchmark --json`` of that export on the first eval images."""
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["benchmark", str(trained_export), "--json", "--max-map-drop", "0.1",
                     "--max-images", str(EVAL_IMAGES)])
    return code, json.loads(stdout.getvalue())


@pytest.mark.integration
@needs_trained
def test_the_savedmodel_reaches_the_bar_and_equals_the_od_api_evaluation(benchmarked, tmp_path):
    code, document = benchmarked
    assert code == 0 and document["ok"], document["shortfalls"]
    saved_model = document["artifacts"][0]
    assert saved_model["artifact"] == "saved_model" and document["images"] == EVAL_IMAGES
    assert saved_model["map50"] >= 0.5  # the bar, on held-out images
    reported = eager_eval_metrics(tmp_path)
    for key, name in (("map", "DetectionBoxes_Precision/mAP"), ("map50", "DetectionBoxes_Precision/mAP@.50IOU"),
                      ("ar100", "DetectionBoxes_Recall/AR@100")):
        assert abs(saved_model[key] - reported[name]) <= 0.005, (key, saved_model[key], reported[name])


@pytest.mark.integration
@needs_trained
def test_every_artifact_gets_a_row_and_reduced_precision_its_difference(benchmarked, trained_export):
    _, document = benchmarked
    rows = {row["artifact"]: row for row in document["artifacts"]}
    expected = {"saved_model", "frozen_graph", "onnx", "tensorrt", "tflite:fp32", "tflite:fp16", "tflite:int8", "openvino"}
    assert expected <= set(rows)
    for name, row in rows.items():
        assert "error" not in row, row
        assert row["size_bytes"] > 0 and row["latency_ms"]["median"] > 0 and row["latency_ms"]["p90"] >= row["latency_ms"]["median"]
        assert row["map_drop"] == pytest.approx(rows["saved_model"]["map"] - row["map"], abs=2e-4)
    for exact in ("frozen_graph", "onnx", "tensorrt", "tflite:fp32", "openvino"):
        assert abs(rows[exact]["map_drop"]) < 0.01, rows[exact]
    assert rows["tflite:int8"]["map_drop"] != 0.0 and rows["tflite:fp16"]["map_drop"] is not None
    assert rows["tflite:int8"]["size_bytes"] < rows["tflite:fp16"]["size_bytes"] < rows["tflite:fp32"]["size_bytes"]
    spec = json.loads((trained_export / "tflite" / "io_spec.json").read_text())
    assert "training records (train.record)" in spec["files"]["int8"]["calibration"]  # the run's own data


@pytest.mark.integration
@needs_trained
def test_the_benchmark_is_saved_in_the_export_and_recorded_in_the_manifest(benchmarked, trained_export):
    _, document = benchmarked
    folder = trained_export / "benchmark"
    assert sorted(p.name for p in folder.iterdir()) == ["benchmark.html", "benchmark.json", "map_latency.png", "pr_curves.png"]
    saved = json.loads((folder / "benchmark.json").read_text())
    assert [r["map"] for r in saved["artifacts"]] == [r["map"] for r in document["artifacts"]]
    manifest = json.loads((trained_export / "manifest.json").read_text())
    from od_export.manifest import sha256_of

    assert manifest["benchmark"]["sha256"] == sha256_of([folder / "benchmark.json"])
    assert manifest["benchmark"]["map"]["tflite:int8"] == saved["artifacts"][6]["map"]
    page = (folder / "benchmark.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and page.count("data:image/jpeg;base64,") == 4
    assert main(["validate", str(trained_export), "--random", "1", "-q"]) == 0  # the export is still whole


def _shift_boxes(source, target, shift: float) -> None:
    """A copy of an ONNX file whose detection_boxes output is moved by ``shift``."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    output = next(o for o in model.graph.output if o.name == "detection_boxes")
    for node in model.graph.node:
        node.output[:] = ["boxes_before_shift" if name == output.name else name for name in node.output]
    model.graph.initializer.append(numpy_helper.from_array(np.array(shift, np.float32), "shift"))
    model.graph.node.append(helper.make_node("Add", ["boxes_before_shift", "shift"], [output.name]))
    onnx.save(model, str(target))


@pytest.mark.integration
@needs_trained
def test_a_tampered_artifact_loses_map_and_fails_the_gate(trained_export, tmp_path, capsys):
    copy = tmp_path / "export"
    shutil.copytree(trained_export, copy, ignore=shutil.ignore_patterns("benchmark", "tflite", "openvino", "tensorrt"))
    _shift_boxes(trained_export / "onnx" / "model.onnx", copy / "onnx" / "model.onnx", 0.08)
    code = main(["benchmark", str(copy), "--max-images", "40", "--max-map-drop", "0.05", "--json", "--no-save"])
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    rows = {row["artifact"]: row for row in document["artifacts"]}
    # The untouched frozen graph keeps the SavedModel's mAP, within what float kernels move (oneDNN or not).
    assert code == 1 and rows["onnx"]["map_drop"] > 0.3 and abs(rows["frozen_graph"]["map_drop"]) < 0.01
    assert captured.err.strip().splitlines()[-1].startswith("od-export: error: benchmark: onnx mAP drop ")
    assert not (copy / "benchmark").exists()


def _record(path, features: dict) -> None:
    import tensorflow as tf

    def feature(value):
        if isinstance(value, bytes):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        if isinstance(value[0], float):
            return tf.train.Feature(float_list=tf.train.FloatList(value=value))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=value))

    example = tf.train.Example(features=tf.train.Features(feature={k: feature(v) for k, v in features.items()}))
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(example.SerializeToString())


def _jpeg() -> bytes:
    from od_export.verify.samples import encode_jpeg, sample_image

    return encode_jpeg(sample_image(64, 64))


BOX = {"image/object/bbox/ymin": [0.1], "image/object/bbox/xmin": [0.1], "image/object/bbox/ymax": [0.5],
       "image/object/bbox/xmax": [0.5]}


@pytest.mark.integration
@needs_trained
@pytest.mark.parametrize("case, message", [
    ("no_eval_reader", "has no eval_input_reader with TFRecords; give the evaluation data with --data"),
    ("not_a_record", "is not a TFRecord file"),
    ("not_od_api", "is not an OD API tf.Example (no image/encoded)"),
    ("no_boxes", "has no boxes (image/object/bbox/*)"),
    ("label_outside", "has class ids [7] outside the config's 1..3"),
    ("unreadable_image", "the image cannot be decoded"),
    ("coco_missing_image", "cannot be read"),
])
def test_bad_data_is_one_line_exit_2_and_writes_nothing(trained_export, tmp_path, capsys, case, message):
    copy = tmp_path / "export"
    shutil.copytree(trained_export, copy, ignore=shutil.ignore_patterns("benchmark"))
    record = tmp_path / "bad.record"
    args = ["--data", str(record)]
    if case == "no_eval_reader":
        text = (copy / "pipeline.config").read_text()
        (copy / "pipeline.config").write_text(text[:text.index("eval_input_reader")])
        args = []
    elif case == "not_a_record":
        record.write_bytes(b"this is not a TFRecord file at all")
    elif case == "not_od_api":
        _record(record, {"text": b"hello"})
    elif case == "no_boxes":
        _record(record, {"image/encoded": _jpeg(), "image/format": b"jpeg"})
    elif case == "label_outside":
        _record(record, {"image/encoded": _jpeg(), "image/format": b"jpeg", **BOX, "image/object/class/label": [7]})
    elif case == "unreadable_image":
        _record(record, {"image/encoded": b"\xff\xd8 broken", "image/format": b"jpeg", **BOX,
                         "image/object/class/label": [1]})
    else:
        (tmp_path / "coco.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "gone.jpg"}], "annotations": []}))
        args = ["--coco", str(tmp_path / "coco.json"), "--images", str(tmp_path)]
    before = (copy / "manifest.json").read_text()
    assert main(["benchmark", str(copy), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (copy / "benchmark").exists() and (copy / "manifest.json").read_text() == before


@pytest.mark.integration
@needs_trained
def test_coco_annotations_give_the_records_figures(trained_export, tmp_path, capsys):
    """The first eval images as a COCO file and a directory of JPEGs score as the records do.

    Image ids sort as the records' source ids do: COCOeval breaks ties between equal
    scores (int8's are quantised) in image order, so other ids could move int8's mAP.
    """
    import tensorflow as tf

    images, annotations = [], []
    for index, serialized in enumerate(tf.data.TFRecordDataset(str(TRAINED / "data" / "eval.record")).take(12)):
        feature = tf.train.Example.FromString(serialized.numpy()).features.feature
        (tmp_path / f"{index}.jpg").write_bytes(feature["image/encoded"].bytes_list.value[0])
        height, width = feature["image/height"].int64_list.value[0], feature["image/width"].int64_list.value[0]
        images.append({"id": index, "file_name": f"{index}.jpg", "height": height, "width": width})
        box = [feature[f"image/object/bbox/{k}"].float_list.value for k in ("ymin", "xmin", "ymax", "xmax")]
        for ymin, xmin, ymax, xmax, label in zip(*box, feature["image/object/class/label"].int64_list.value):
            annotations.append({"id": len(annotations), "image_id": index, "category_id": label, "iscrowd": 0,
                                "bbox": [xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height]})
    (tmp_path / "coco.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    figures = []
    for args in (["--coco", str(tmp_path / "coco.json"), "--images", str(tmp_path)], ["--max-images", "12"]):
        assert main(["benchmark", str(trained_export), *args, "--json", "--no-save"]) == 0
        figures.append([(r["artifact"], r["map"]) for r in json.loads(capsys.readouterr().out)["artifacts"]])
    assert [name for name, _ in figures[0]] == [name for name, _ in figures[1]]
    assert np.allclose([value for _, value in figures[0]], [value for _, value in figures[1]], atol=1e-3), [(a, b) for a, b in zip(*figures) if a != b]


@pytest.fixture(scope="module")
def integer_export(trained_export, tmp_path_factory):
    """The trained export with an int8 OpenVINO IR (NNCF) in place of the float one; it has TFLite int8_full."""
    copy = tmp_path_factory.mktemp("integer") / "export"
    shutil.copytree(trained_export, copy, ignore=shutil.ignore_patterns("benchmark"))
    assert main(["convert", str(copy), "--target", "openvino", "--openvino-precision", "int8", "--overwrite", "-q"]) == 0
    return copy


@pytest.mark.integration
@needs_trained
def test_integer_files_from_the_run_s_records_keep_the_map(integer_export, capsys):
    """TFLite int8_full (uint8 I/O) and OpenVINO int8 (NNCF) are verified when written and lose little mAP.

    The bound is the gate's own: a drop of at most 0.06 (0.023 on 200 images, README).  On 40
    images an integer file may also score a little above its SavedModel, so there is no floor."""
    spec = json.loads((integer_export / "tflite" / "io_spec.json").read_text())["files"]["int8_full"]
    assert spec["input"]["dtype"] == "uint8" and {o["dtype"] for o in spec["outputs"]} == {"uint8"}
    assert spec["float_ops"] == {"DEQUANTIZE": 2, "QUANTIZE": 4, "TFLite_Detection_PostProcess": 1}
    openvino = json.loads((integer_export / "openvino" / "io_spec.json").read_text())
    assert openvino["precision"] == "int8" and openvino["calibration"].startswith("100 images drawn (seed 0)")
    capsys.readouterr()
    assert main(["benchmark", str(integer_export), "--max-images", "40", "--json", "--no-save",
                 "--max-map-drop", "0.06"]) == 0
    rows = {row["artifact"]: row for row in json.loads(capsys.readouterr().out)["artifacts"]}
    assert rows["openvino:int8"]["size_bytes"] < 0.6 * rows["onnx"]["size_bytes"]
    for name in ("tflite:int8_full", "openvino:int8"):
        assert rows[name]["map"] >= 0.5 and rows[name]["map_drop"] <= 0.06, rows[name]


def _eval_images(directory, count: int):
    """The first eval images as JPEG files, for validate --images."""
    import tensorflow as tf

    directory.mkdir()
    for index, serialized in enumerate(tf.data.TFRecordDataset(str(TRAINED / "data" / "eval.record")).take(count)):
        feature = tf.train.Example.FromString(serialized.numpy()).features.feature
        (directory / f"{index}.jpg").write_bytes(feature["image/encoded"].bytes_list.value[0])
    return directory


@pytest.mark.integration
@needs_trained
def test_tampered_integer_files_fail_validation(integer_export, tmp_path, capsys):
    """Every integer kernel negated, in the int8_full TFLite file and in the int8 IR: each file's check fails.

    The trained model is robust to one layer's kernel negated (agreement 0.82 and 0.88
    measured), so the whole set of integer weights is what changes here."""
    from tests.helpers import largest_kernel, tensor_bytes_replaced, weights_negated

    copy = tmp_path / "export"
    shutil.copytree(integer_export, copy, ignore=shutil.ignore_patterns("manifest.json", "onnx", "tensorrt"))
    integer_kernels = lambda value: largest_kernel(value) and value.dtype == np.int8  # noqa: E731
    assert tensor_bytes_replaced(copy / "tflite" / "model_int8_full.tflite", np.negative, integer_kernels, every=True) > 20
    assert weights_negated(copy / "openvino" / "model.xml", "i8", every=True) > 20
    code = main(["validate", str(copy), "--images", str(_eval_images(tmp_path / "images", 6)), "--json"])
    checks = {c["artifact"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert code == 1
    assert checks["tflite:int8_full"]["ok"] is False and checks["openvino"]["ok"] is False
    for name in ("tflite:int8_full", "openvino"):
        agreement = checks[name]["agreement"]
        assert agreement["total"] > 0 and agreement["agreement"] < agreement["min_agreement"], (name, agreement)
    assert checks["tflite:int8"]["ok"] and checks["tflite:fp32"]["ok"] and checks["frozen_graph"]["ok"]


@pytest.mark.integration
@needs_trained
def test_watch_refuses_an_export_that_falls_short_of_its_gate(tmp_path, capsys):
    """A watched run with a benchmark gate: the checkpoint is exported and benchmarked, fails, latest stays put.

    (The gate is a floor the SavedModel misses, so that the test needs no converter:
    how each artifact's figure meets a gate is tested above.)"""
    run = tmp_path / "run"
    shutil.copytree(TRAINED, run, ignore=shutil.ignore_patterns("ckpt-[1-4].*"))
    (run / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"\nall_model_checkpoint_paths: "ckpt-5"\n')
    out = tmp_path / "out"
    code = main(["watch", str(run), "--output-dir", str(out), "--once", "--no-freeze", "--benchmark-images", "40",
                 "--min-map", "0.95", "--json"])
    [result] = json.loads(capsys.readouterr().out)["jobs"]
    assert code == 1 and result["status"] == "failed"
    assert result["error"]["message"].startswith("benchmark: saved_model mAP 0.8") and "< 0.95" in result["error"]["message"]
    assert not (out / "latest").exists()
    saved = json.loads((out / "ckpt-5" / "benchmark" / "benchmark.json").read_text())
    assert saved["ok"] is False and saved["images"] == 40
