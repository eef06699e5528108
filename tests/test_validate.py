"""od-export validate passes on good exports and fails (exit 1) on a tampered frozen graph."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from od_export.cli import main
from tests.conftest import ALL_INPUT_TYPES

pytestmark = pytest.mark.integration


def validate_json(capsys, *args: str) -> tuple[int, dict]:
    code = main(["validate", *args, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else {}


def test_good_export_passes(exported, capsys):
    code, report = validate_json(capsys, str(exported("ssd_mobilenet_v2", ALL_INPUT_TYPES).output_dir))
    assert code == 0 and report["ok"] is True and report["images"] == 2
    assert report["compared"] == 5 and report["manifest"] == "verified"  # 4 frozen graphs; float's batch of 4
    [batch] = [c for c in report["checks"] if c["artifact"] == "batch of 4"]
    assert batch["ok"] and batch["input_type"] == "float_image_tensor"
    frozen = [c for c in report["checks"] if c["artifact"] == "frozen_graph"]
    assert sorted(c["unit"] for c in frozen) == sorted(ALL_INPUT_TYPES)
    assert {c["unit"]: c["input_type"] for c in report["checks"]} == {t: t for t in ALL_INPUT_TYPES}
    for check in frozen:
        assert check["outputs"]["num_detections"] == {"max_abs_diff": 0.0, "ok": True}


def tamper_with_weights(frozen_pb):
    """Scale the largest float constant (a conv kernel) of a frozen graph by 1.5."""
    from od_export import compat
    from od_export.verify import samples

    tf = compat.import_tensorflow()
    graph_def = samples.load_graph_def(frozen_pb)
    consts = [n for n in graph_def.node if n.op == "Const" and n.attr["dtype"].type == tf.float32.as_datatype_enum]
    largest = max(consts, key=lambda n: len(n.attr["value"].tensor.tensor_content))
    values = tf.make_ndarray(largest.attr["value"].tensor)
    largest.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(values * 1.5))
    frozen_pb.write_bytes(graph_def.SerializeToString())
    return largest.name


def test_tampered_frozen_graph_fails_with_exit_1(exported, tmp_path, capsys):
    copy = tmp_path / "tampered"
    shutil.copytree(exported("ssd_mobilenet_v2", ALL_INPUT_TYPES).output_dir / "image_tensor", copy)
    tamper_with_weights(copy / "frozen_graph" / "frozen_inference_graph.pb")
    code, report = validate_json(capsys, str(copy))
    assert code == 1 and report["ok"] is False
    [check] = [c for c in report["checks"] if c["artifact"] == "frozen_graph"]
    assert check["ok"] is False
    assert check["outputs"]["raw_detection_scores"]["ok"] is False
    assert main(["validate", str(copy)]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_frozen_graph_without_io_spec_and_image_folder(exported, tmp_path, capsys):
    """An exporter_main_v2 + freezing-script export: outputs only as Identity_N."""
    from od_export.verify import samples

    copy = tmp_path / "exporter_style"
    shutil.copytree(exported("ssd_mobilenet_v2", ALL_INPUT_TYPES).output_dir / "encoded_image_string_tensor", copy)
    (copy / "frozen_graph" / "io_spec.json").unlink()
    images = tmp_path / "images"
    images.mkdir()
    for seed in range(3):
        (images / f"{seed}.jpg").write_bytes(samples.encode_jpeg(samples.sample_image(90 + seed * 20, 110, seed=seed)))
    code, report = validate_json(capsys, str(copy), "--images", str(images))
    assert code == 0, report
    assert report["images"] == 3 and report["checks"][0]["input_type"] == "encoded_image_string_tensor"
    assert report["manifest"] == "none" and report["compared"] == 1


def test_bad_input_exit_2(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["validate", str(tmp_path / "empty")]) == 2
    assert "no SavedModel found" in capsys.readouterr().err


def test_export_with_validate_records_results_in_manifest(demo_checkpoint, workspace, capsys):
    run = demo_checkpoint("centernet_mobilenet_v2_fpn")
    out = workspace / "validated"
    code = main(["export", "--pipeline-config", str(run / "pipeline.config"), "--checkpoint-dir", str(run),
                 "--output-dir", str(out), "--input-type", "tf_example", "--validate", "--json", "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document = json.loads(captured.out)
    assert document["validation"]["ok"] is True
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["validation"]["ok"] is True
    [frozen] = [c for c in manifest["validation"]["checks"] if c["artifact"] == "frozen_graph"]
    assert frozen["input_type"] == "tf_example"
    assert np.isfinite(frozen["outputs"]["detection_boxes"]["max_abs_diff"])


def test_saved_model_that_is_not_an_od_export_is_bad_input(tmp_path, capsys):
    from od_export import compat

    tf = compat.import_tensorflow()
    module = tf.Module()
    module.double = tf.function(lambda x: {"y": x * 2}, input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    tf.saved_model.save(module, str(tmp_path / "other" / "saved_model"), signatures=module.double.get_concrete_function())
    assert main(["validate", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert "not an OD API export" in err and "Traceback" not in err
    (tmp_path / "broken" / "saved_model").mkdir(parents=True)
    (tmp_path / "broken" / "saved_model" / "saved_model.pb").write_bytes(b"\x00garbage")
    assert main(["validate", str(tmp_path / "broken")]) == 2
    assert "cannot load the SavedModel" in capsys.readouterr().err


def test_export_without_frozen_graph_is_not_called_a_match(exported, tmp_path, capsys):
    out = tmp_path / "no_freeze"  # what `export --no-freeze` writes: the unit without frozen_graph/
    shutil.copytree(exported("ssd_mobilenet_v2", ALL_INPUT_TYPES).output_dir / "image_tensor", out,
                    ignore=shutil.ignore_patterns("frozen_graph"))
    assert main(["validate", str(out)]) == 0
    text = capsys.readouterr().out
    assert "all artifacts match" not in text and "match their SavedModel" not in text
    assert "1 SavedModel(s) load and run with finite outputs; there is no other artifact to compare" in text
    code, report = validate_json(capsys, str(out))
    assert code == 0 and report["compared"] == 0


def test_file_changed_after_export_is_reported_damaged(exported, tmp_path, capsys):
    copy = tmp_path / "damaged"
    shutil.copytree(exported("ssd_mobilenet_v2", ALL_INPUT_TYPES).output_dir, copy)
    with (copy / "tf_example" / "pipeline.config").open("a") as handle:
        handle.write("# edited\n")
    code, report = validate_json(capsys, str(copy), "--random", "1")
    assert code == 1 and report["manifest"].startswith("damaged: tf_example/pipeline.config differs")


def test_an_image_that_cannot_be_read_is_one_line(tmp_path):
    from od_export.errors import InputError
    from od_export.verify.samples import read_image

    (tmp_path / "folder.jpg").mkdir()  # a directory where a file was expected: reading it raises OSError
    with pytest.raises(InputError, match=r"^image .*folder.jpg cannot be read \(Is a directory\); remove it"):
        read_image(tmp_path / "folder.jpg", f"image {tmp_path / 'folder.jpg'}")
