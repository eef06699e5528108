"""--target tflite on SSD and CenterNet: three precisions, output order, verification, tampering, convert."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from od_export.cli import main
from tests.conftest import SAMPLE_MIN_AGREEMENT, SAMPLE_THRESHOLD_ARGS
from tests.helpers import anchors, tensor_bytes_replaced

pytestmark = pytest.mark.integration
NAMES = ("ssd_mobilenet_v2", "centernet_mobilenet_v2_fpn")


def validate_json(capsys, *args: str) -> tuple[int, dict]:
    code = main(["validate", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def checks_by_artifact(validation: dict) -> dict[str, dict]:
    return {c["artifact"]: c for c in validation["checks"]}


@pytest.mark.parametrize("name", NAMES)
def test_every_precision_is_written_and_verified(name, deploy_export):
    result = deploy_export(name)
    checks = checks_by_artifact(result.validation)
    assert result.validation["ok"] is True
    fp32 = checks["tflite:fp32"]
    assert fp32["ok"] and fp32["outputs"]["detection_classes"] == {"max_abs_diff": 0.0, "ok": True}
    assert fp32["outputs"]["unmatched_detections"]["max_abs_diff"] == 0.0
    for precision in ("fp16", "int8"):
        agreement = checks[f"tflite:{precision}"]["agreement"]
        assert agreement["ok"] and agreement["total"] > 0 and agreement["min_agreement"] == SAMPLE_MIN_AGREEMENT
    assert checks["tflite:fp16"]["agreement"]["agreement"] >= 0.8  # fp16 keeps (nearly) every detection
    sizes = {p: (result.output_dir / "tflite" / f"model_{p}.tflite").stat().st_size for p in ("fp32", "fp16", "int8")}
    assert sizes["fp32"] > 1.8 * sizes["fp16"] and sizes["fp32"] > 2.5 * sizes["int8"]


@pytest.mark.parametrize("name", NAMES)
def test_io_spec_says_what_each_output_index_holds(name, deploy_export):
    from ai_edge_litert.interpreter import Interpreter

    directory = deploy_export(name).output_dir / "tflite"
    spec = json.loads((directory / "io_spec.json").read_text())
    assert spec["input_size"] == [128, 128] and spec["max_detections"] == 10
    mean, std = spec["normalization"]["mean"], spec["normalization"]["std"]
    expected = ([127.5] * 3, [127.5] * 3) if name.startswith("ssd") else ([0.0] * 3, [1.0] * 3)
    assert np.allclose(mean, expected[0], atol=1e-3) and np.allclose(std, expected[1], atol=1e-3)
    entry = spec["files"]["fp32"]
    interpreter = Interpreter(model_path=str(directory / entry["file"]))
    interpreter.allocate_tensors()
    image = np.random.default_rng(0).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    by_name = interpreter.get_signature_runner("serving_default")(input_tensor=image)
    details = interpreter.get_output_details()  # what a plain interpreter user reads, by index
    for output in entry["outputs"]:
        assert np.array_equal(interpreter.get_tensor(details[output["index"]]["index"]), by_name[output["name"]])
    shapes = {o["name"]: o["shape"] for o in entry["outputs"]}
    assert shapes == {"detection_boxes": [1, 10, 4], "detection_classes": [1, 10], "detection_scores": [1, 10],
                      "num_detections": [1]}
    assert "add 1" in next(o["meaning"] for o in entry["outputs"] if o["name"] == "detection_classes")
    assert "synthetic" in spec["files"]["int8"]["calibration"]


def test_tampered_tflite_files_fail_validation(deploy_export, tmp_path, capsys):
    copy = tmp_path / "tflite_tampered"
    shutil.copytree(deploy_export("ssd_mobilenet_v2").output_dir, copy,
                    ignore=shutil.ignore_patterns("manifest.json", "openvino"))
    tensor_bytes_replaced(copy / "tflite" / "model_fp32.tflite", lambda w: w * 1.5)
    # The demo heads are scaled down, so random-weight detections are near-anchor boxes, many clipped to the
    # whole image, and a few agree by chance whatever the kernels hold (0.10-0.15 on AVX-512 CPUs with a
    # kernel wiped or every anchor moved); anchors of no size leave the file no box at all.
    tensor_bytes_replaced(copy / "tflite" / "model_int8.tflite", lambda a: a * np.float32([1, 1, 0, 0]), anchors)
    code, report = validate_json(capsys, str(copy), *SAMPLE_THRESHOLD_ARGS)
    checks = checks_by_artifact(report)
    assert code == 1 and report["ok"] is False
    assert checks["tflite:fp32"]["ok"] is False and checks["tflite:fp32"]["error"] is None  # it runs, but differs
    assert checks["tflite:int8"]["ok"] is False, checks["tflite:int8"]["agreement"]
    assert checks["tflite:int8"]["agreement"]["agreement"] < SAMPLE_MIN_AGREEMENT
    assert checks["tflite:fp16"]["ok"] is True  # untouched


def test_convert_replaces_tflite_int8_calibrated_on_given_images_and_keeps_the_other_precisions(
        deploy_export, tmp_path, capsys):
    """``convert --tflite-precision int8 --overwrite`` on an export with fp32, fp16 and int8 files replaces
    the int8 file only: the others stay, byte for byte, and are verified again with it."""
    from PIL import Image

    from od_export.verify.samples import sample_image

    directory = tmp_path / "export"
    shutil.copytree(deploy_export("centernet_mobilenet_v2_fpn").output_dir, directory,
                    ignore=shutil.ignore_patterns("openvino"))
    before = {p.name: p.read_bytes() for p in (directory / "tflite").glob("*.tflite")}
    assert sorted(before) == ["model_fp16.tflite", "model_fp32.tflite", "model_int8.tflite"]
    images = tmp_path / "calibration"
    images.mkdir()
    for index in range(4):
        Image.fromarray(sample_image(140, 180, seed=500 + index)).save(images / f"{index}.png")
    capsys.readouterr()
    assert main(["convert", str(directory), "--target", "tflite", "--tflite-precision", "int8", "--calibration-images",
                 str(images), "--overwrite", *SAMPLE_THRESHOLD_ARGS, "-q"]) == 0
    assert "synthetic" not in capsys.readouterr().err  # no warning: real images were given
    spec = json.loads((directory / "tflite" / "io_spec.json").read_text())
    assert sorted(spec["files"]) == ["fp16", "fp32", "int8"]
    assert spec["files"]["int8"]["calibration"].startswith("4 images from")
    after = {p.name: p.read_bytes() for p in (directory / "tflite").glob("*.tflite")}
    assert after["model_fp32.tflite"] == before["model_fp32.tflite"]
    assert after["model_fp16.tflite"] == before["model_fp16.tflite"]
    assert after["model_int8.tflite"] != before["model_int8.tflite"]  # calibrated on the given images
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["conversions"][-1]["targets"] == ["tflite"] and manifest["validation"]["ok"]
    assert {c["artifact"] for c in manifest["validation"]["checks"] if c["artifact"].startswith("tflite")} >= {
        "tflite:fp32", "tflite:fp16", "tflite:int8"}


def test_save_images_draws_every_artifact_beside_the_saved_model(deploy_export, tmp_path, capsys):
    from PIL import Image

    export_dir = tmp_path / "export"
    shutil.copytree(deploy_export("ssd_mobilenet_v2").output_dir, export_dir,
                    ignore=shutil.ignore_patterns("manifest.json"))
    code, report = validate_json(capsys, str(export_dir), *SAMPLE_THRESHOLD_ARGS,
                                 "--save-images", str(tmp_path / "drawn"))
    assert code == 0 and len(report["saved_images"]) == report["images"] == 2
    panels = 1 + len([c for c in report["checks"] if c["artifact"] != "saved_model"])
    with Image.open(report["saved_images"][0]) as sheet:
        assert sheet.width > panels * 320 and sheet.height > 320


def test_inspect_shows_outputs_by_index_and_the_postprocess_op(deploy_export, capsys):
    directory = deploy_export("ssd_mobilenet_v2").output_dir
    assert main(["inspect", str(directory / "tflite" / "model_int8.tflite"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "tflite" and report["custom_ops"] == ["TFLite_Detection_PostProcess"]
    assert [o["index"] for o in report["outputs"]] == [0, 1, 2, 3]
    assert report["input"]["shape"] == [1, 128, 128, 3]
    assert main(["inspect", str(directory), "--json"]) == 0
    [unit] = json.loads(capsys.readouterr().out)["units"]
    assert {"tflite", "openvino"} <= set(unit["targets"]) and set(unit["tflite"]["files"]) == {"fp32", "fp16", "int8"}


def test_an_unreadable_calibration_image_is_named(tmp_path):
    from od_export.errors import InputError
    from od_export.source.calibration import from_directory

    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match=r"calibration image .*broken.jpg cannot be decoded as an image"):
        from_directory(tmp_path)
