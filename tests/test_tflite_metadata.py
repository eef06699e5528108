"""TFLite metadata: written into each .tflite file, read back with its schema, failed when tampered,
and loaded by the TFLite Task Library's ObjectDetector (in the environment scripts/setup.sh makes for it)."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from od_export.cli import main
from tests.conftest import REPO, SAMPLE_THRESHOLD_ARGS, TRAINED, needs_trained

pytestmark = pytest.mark.integration
NAMES = ("ssd_mobilenet_v2", "centernet_mobilenet_v2_fpn")
TASK_VENV = Path(os.environ.get("OD_EXPORT_TASK_VENV", REPO / ".venv-task-library"))
TASK_PYTHON = TASK_VENV / "bin" / "python"
needs_task_library = pytest.mark.skipif(not TASK_PYTHON.is_file(),
                                        reason=f"no Task Library environment at {TASK_VENV} (scripts/setup.sh makes it)")


@pytest.mark.parametrize("name", NAMES)
def test_each_file_carries_metadata_that_reads_back_as_written(name, deploy_export):
    from od_export.targets.tflite_metadata import ROLES, read_metadata

    result = deploy_export(name)
    directory = result.output_dir / "tflite"
    spec = json.loads((directory / "io_spec.json").read_text())
    labels = (directory / "labels.txt").read_text().splitlines()
    assert labels and "???" not in labels
    for precision, entry in spec["files"].items():
        read = read_metadata((directory / entry["file"]).read_bytes())
        assert read["outputs"] == [ROLES[o["name"]] for o in entry["outputs"]] == entry["metadata"]["outputs"]
        assert sorted(read["outputs"]) == ["category", "location", "number of detections", "score"]
        assert read["input"]["mean"] == pytest.approx(spec["normalization"]["mean"], rel=1e-6)
        assert read["input"]["std"] == pytest.approx(spec["normalization"]["std"], rel=1e-6)
        assert read["labels"] == labels and read["associated_files"] == ["labels.txt"]
        assert read["groups"] == {"detection_result": ["location", "category", "score"]}
        assert read["input"]["description"] == entry["metadata"]["input"]["description"]
        assert read["input"]["description"].startswith("RGB image: resize the picture to")
        assert read["min_parser_version"] and entry["metadata"]["task_library"] == "ObjectDetector loads it"
    notes = [n for c in result.validation["checks"] for n in c.get("notes", []) if "TFLite metadata" in n]
    assert len(notes) == len(spec["files"]) and all(f"{len(labels)} packed labels" in n for n in notes)


def test_inspect_shows_the_metadata(deploy_export, capsys):
    path = deploy_export("ssd_mobilenet_v2").output_dir / "tflite" / "model_fp16.tflite"
    assert main(["inspect", str(path), "--json"]) == 0
    metadata = json.loads(capsys.readouterr().out)["metadata"]
    assert metadata["input"]["mean"] == pytest.approx([127.5] * 3)
    assert metadata["labels"] == (path.parent / "labels.txt").read_text().splitlines()


def _replace_once(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert data.count(old) >= 1
    path.write_bytes(data.replace(old, new, 1))


def test_tampered_metadata_fails_validation(deploy_export, tmp_path, capsys):
    copy = tmp_path / "metadata_tampered"
    shutil.copytree(deploy_export("ssd_mobilenet_v2").output_dir, copy,
                    ignore=shutil.ignore_patterns("manifest.json", "openvino"))
    tflite = copy / "tflite"
    # fp32: a normalisation value changed in the metadata flatbuffer; int8: the metadata buffer renamed
    # away; fp16 untouched, but the artifact's labels.txt no longer matches the names packed in the files.
    _replace_once(tflite / "model_fp32.tflite", struct.pack("<3f", 127.5, 127.5, 127.5), struct.pack("<3f", 0, 0, 0))
    _replace_once(tflite / "model_int8.tflite", b"TFLITE_METADATA", b"TFLITE_METADATX")
    code = main(["validate", str(copy), "--json", *SAMPLE_THRESHOLD_ARGS])
    checks = {c["artifact"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert code == 1
    assert "TFLite metadata: its input normalisation" in checks["tflite:fp32"]["error"]
    assert checks["tflite:int8"]["error"] == "TFLite metadata: the file carries no TFLite metadata"
    assert checks["tflite:fp16"]["ok"] is True
    labels = tflite / "labels.txt"
    labels.write_text("\n".join(reversed(labels.read_text().splitlines())) + "\n")
    code = main(["validate", str(copy), "--json", *SAMPLE_THRESHOLD_ARGS])
    checks = {c["artifact"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert code == 1 and "differs from the artifact's labels.txt" in checks["tflite:fp16"]["error"]
    from od_export.targets.tflite_metadata import metadata_problem

    spec = json.loads((tflite / "io_spec.json").read_text())
    data = (tflite / "model_fp16.tflite").read_bytes()
    name = labels.read_text().splitlines()[0].encode()
    damaged = data[:data.rindex(name)] + name.upper() + data[data.rindex(name) + len(name):]  # packed bytes, stale CRC
    problem = metadata_problem(damaged, spec["files"]["fp16"], spec["normalization"], None)
    assert problem.startswith("its TFLite metadata cannot be read as an object detector's (BadZipFile")
    fed_otherwise = data.replace(b"ignoring its aspect ratio", b"IGNORING its aspect ratio", 1)
    problem = metadata_problem(fed_otherwise, spec["files"]["fp16"], spec["normalization"], None)
    assert problem.startswith("its input description ('RGB image: resize the picture to"), problem


def _task_library(model: Path, image: Path) -> tuple[int, dict]:
    run = subprocess.run([str(TASK_PYTHON), str(REPO / "tests" / "task_library_detect.py"), str(model), str(image)],
                         capture_output=True, text=True, timeout=120)
    assert run.stdout.strip(), run.stderr[-2000:]
    return run.returncode, json.loads(run.stdout.strip().splitlines()[-1])


def _eval_image() -> np.ndarray:
    from od_export import compat

    tf = compat.import_tensorflow()
    record = next(iter(tf.data.TFRecordDataset(str(TRAINED / "data" / "eval.record"))))
    example = tf.train.Example.FromString(record.numpy())
    return tf.io.decode_image(example.features.feature["image/encoded"].bytes_list.value[0]).numpy()


def _iou(a: list[float], b: list[float]) -> float:
    """IoU of two [x, y, width, height] boxes."""
    width = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@needs_trained
@needs_task_library
def test_the_task_library_finds_with_the_metadata_what_litert_finds(trained_export, tmp_path):
    """The ObjectDetector normalises the pixels, reads each output by its role and names the classes from
    the metadata alone.  On the trained model its fp32 detections are LiteRT's, box for box (to the pixel).
    Its runtime is older than LiteRT's and has other reduced-precision kernels (fp16 scores differ by up to
    6e-4 and int8 by up to 0.19 on 20 eval images), so the fp16 and int8 files are held to finding the same
    objects: each detection it scores 0.5 or more is one of LiteRT's by name and IoU >= 0.5 (all 22 and 28
    on those images)."""
    from od_export.targets.tflite_runner import TFLiteRunner

    directory = trained_export / "tflite"
    spec = json.loads((directory / "io_spec.json").read_text())
    labels = (directory / "labels.txt").read_text().splitlines()
    pixels = _eval_image()
    assert list(pixels.shape[:2]) == spec["input_size"]  # the Task Library's own resize plays no part
    np.save(tmp_path / "image.npy", pixels)
    height, width = spec["input_size"]
    for precision in ("fp32", "fp16", "int8"):
        entry = spec["files"][precision]
        code, found = _task_library(directory / entry["file"], tmp_path / "image.npy")
        assert code == 0, found
        litert = TFLiteRunner((directory / entry["file"]).read_bytes(), entry, spec).run(pixels)
        ymin, xmin, ymax, xmax = np.moveaxis(litert["detection_boxes"][0], -1, 0)
        expected = [{"box": [xmin[i] * width, ymin[i] * height, (xmax[i] - xmin[i]) * width, (ymax[i] - ymin[i]) * height],
                     "name": labels[int(litert["detection_classes"][0, i])], "score": float(litert["detection_scores"][0, i])}
                    for i in range(len(xmin))]
        if precision == "fp32":
            confident = [d for d in found["detections"] if d["score"] >= 0.3]
            assert len(confident) >= 2  # the trained model finds the shapes in the image
            for detection in confident:
                match = next((e for e in expected if e["name"] == detection["name"]
                              and abs(e["score"] - detection["score"]) <= 1e-4
                              and np.allclose(detection["box"], e["box"], atol=1.5)), None)
                assert match is not None, (detection, expected)
                expected.remove(match)
        else:
            confident = [d for d in found["detections"] if d["score"] >= 0.5]
            assert confident, precision
            for detection in confident:
                assert any(e["name"] == detection["name"] and e["score"] >= 0.3
                           and _iou(e["box"], detection["box"]) >= 0.5 for e in expected), (precision, detection, expected)
    code, refused = _task_library(directory / spec["files"]["int8_full"]["file"], tmp_path / "image.npy")
    assert code == 3 and spec["files"]["int8_full"]["metadata"]["task_library"].startswith("refused")
    stripped = tmp_path / "stripped.tflite"
    stripped.write_bytes((directory / "model_fp32.tflite").read_bytes().replace(b"TFLITE_METADATA", b"TFLITE_METADATX"))
    code, refused = _task_library(stripped, tmp_path / "image.npy")
    assert code == 3 and "NormalizationOptions" in refused["error"]

