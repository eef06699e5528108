"""What a pipeline sees when an artifact fails: all or nothing by default, --keep-going, named figures, thresholds."""
from __future__ import annotations

import json
import shutil

import pytest

from od_export.cli import main
from tests.conftest import SAMPLE_MIN_AGREEMENT

pytestmark = pytest.mark.integration
STAGING = ".od-export-staging"


def run_json(capsys, *args: str) -> tuple[int, dict, str]:
    capsys.readouterr()
    code = main([*args, "--json", "-q"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_keep_going_publishes_what_verified_and_records_the_failed_int8_file(demo_checkpoint, tmp_path, capsys):
    run = demo_checkpoint("ssd_mobilenet_v2")
    out = tmp_path / "out"
    code, document, err = run_json(
        capsys, "export", "--pipeline-config", str(run / "pipeline.config"), "--checkpoint-dir", str(run),
        "--output-dir", str(out), "--no-freeze", "--target", "tflite", "--tflite-precision", "fp32",
        "--tflite-precision", "int8", "--min-agreement", "int8=1.0", "--keep-going")
    assert code == 1 and document["ok"] is False
    [failed] = document["failed"]
    assert failed["artifact"] == "tflite:int8" and "below the int8 minimum agreement 1" in failed["reason"]
    assert failed["agreement"]["agreement"] < 1.0 and failed["agreement"]["min_agreement"] == 1.0
    assert "tflite:int8" in err and STAGING not in err and STAGING not in json.dumps(document)
    assert (out / "tflite" / "model_fp32.tflite").is_file() and not (out / "tflite" / "model_int8.tflite").exists()
    assert list(json.loads((out / "tflite" / "io_spec.json").read_text())["files"]) == ["fp32"]
    assert document["input_types"][0]["artifacts"]["tflite"] == [str(out / "tflite" / name) for name in
                                                                   ("model_fp32.tflite", "io_spec.json", "labels.txt")]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [f["artifact"] for f in manifest["failed"]] == ["tflite:int8"] and manifest["min_agreement"]["int8"] == 1.0
    assert main(["validate", str(out), "-q"]) == 0  # what was published is whole and verified


def test_validate_uses_the_thresholds_the_export_recorded_and_agreement_is_in_every_result(deploy_export, capsys):
    result = deploy_export("ssd_mobilenet_v2")
    agreement = result.artifacts[0].agreement
    assert {"tflite:fp16", "tflite:int8"} <= set(agreement) and agreement["tflite:int8"]["total"] > 0
    manifest = json.loads((result.output_dir / "manifest.json").read_text())
    assert manifest["input_types"][0]["agreement"]["tflite:int8"] == agreement["tflite:int8"]
    assert manifest["min_agreement"] == {"fp16": SAMPLE_MIN_AGREEMENT, "bf16": SAMPLE_MIN_AGREEMENT,
                                         "int8": SAMPLE_MIN_AGREEMENT}
    code, report, _ = run_json(capsys, "validate", str(result.output_dir))  # no threshold given: the recorded ones
    int8 = next(c for c in report["checks"] if c["artifact"] == "tflite:int8")
    assert code == 0 and int8["agreement"]["min_agreement"] == SAMPLE_MIN_AGREEMENT
    code, report, _ = run_json(capsys, "validate", str(result.output_dir), "--min-agreement", "int8=1.0")
    by_artifact = {c["artifact"]: c for c in report["checks"]}
    assert code == 1 and not by_artifact["tflite:int8"]["ok"] and by_artifact["tflite:fp16"]["ok"]
    assert by_artifact["tflite:fp16"]["agreement"]["min_agreement"] == SAMPLE_MIN_AGREEMENT  # each precision its own


def test_a_failed_convert_names_the_artifact_and_its_figure(deploy_export, tmp_path, capsys):
    directory = tmp_path / "export"
    shutil.copytree(deploy_export("ssd_mobilenet_v2").output_dir, directory, ignore=shutil.ignore_patterns("tflite"))
    before = sorted(p.name for p in directory.iterdir())
    capsys.readouterr()
    code = main(["convert", str(directory), "--target", "tflite", "--tflite-precision", "int8",
                 "--min-agreement", "int8=1.0", "-q"])
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the synthetic-calibration warning
    assert code == 1 and err.startswith("od-export: error: ") and len(err) < 300, err
    assert "tflite:int8 finds" in err and "below the int8 minimum agreement 1" in err and STAGING not in err
    assert sorted(p.name for p in directory.iterdir()) == before
