"""--target openvino on every sample: names, verification, fp16, tampering, string inputs."""
from __future__ import annotations

import json
import shutil

import pytest

from od_export.cli import main
from tests.conftest import DEPLOY_TARGETS
from tests.helpers import weights_negated

pytestmark = pytest.mark.integration
CONVERTED = [name for name, targets in DEPLOY_TARGETS.items() if "openvino" in targets]
#: SSD and CenterNet (two heads, two post-processings) in every run; the rest with --exhaustive.
SAMPLED = ("ssd_mobilenet_v2", "centernet_mobilenet_v2_fpn")


def validate_json(capsys, *args: str) -> tuple[int, dict]:
    code = main(["validate", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", [n if n in SAMPLED else pytest.param(n, marks=pytest.mark.exhaustive) for n in CONVERTED])
def test_ir_keeps_the_signature_names_and_matches_the_saved_model(name, deploy_export):
    result = deploy_export(name)
    [check] = [c for c in result.validation["checks"] if c["artifact"] == "openvino"]
    assert check["ok"] is True and check["outputs"]["detection_scores"]["max_abs_diff"] < 1e-2
    spec = json.loads((result.output_dir / "openvino" / "io_spec.json").read_text())
    assert spec["precision"] == "fp32" and list(spec["inputs"]) == ["input_tensor"]
    assert sorted(spec["outputs"]) == sorted(result.artifacts[0].signature["outputs"])
    assert spec["inputs"]["input_tensor"] == {"dtype": "uint8", "shape": [1, None, None, 3]}


def test_tampered_ir_fails_validation(deploy_export, tmp_path, capsys):
    copy = tmp_path / "openvino_tampered"
    shutil.copytree(deploy_export("ssd_mobilenet_v2").output_dir, copy,
                    ignore=shutil.ignore_patterns("manifest.json", "tflite"))
    weights_negated(copy / "openvino" / "model.xml")
    code, report = validate_json(capsys, str(copy))
    [check] = [c for c in report["checks"] if c["artifact"] == "openvino"]
    assert code == 1 and check["ok"] is False and check["outputs"]["raw_detection_scores"]["ok"] is False


def test_convert_to_fp16_halves_the_weights_and_reports_agreement(deploy_export, tmp_path):
    source = deploy_export("ssd_mobilenet_v2").output_dir
    directory = tmp_path / "fp16"
    shutil.copytree(source, directory, ignore=shutil.ignore_patterns("tflite", "openvino"))
    assert main(["convert", str(directory), "--target", "openvino", "--openvino-precision", "fp16", "-q"]) == 0
    spec = json.loads((directory / "openvino" / "io_spec.json").read_text())
    assert spec["precision"] == "fp16"
    fp32_bytes = (source / "openvino" / "model.bin").stat().st_size
    assert (directory / "openvino" / "model.bin").stat().st_size < 0.6 * fp32_bytes
    validation = json.loads((directory / "manifest.json").read_text())["validation"]
    [check] = [c for c in validation["checks"] if c["artifact"] == "openvino"]
    assert validation["ok"] and check["agreement"]["precision"] == "fp16" and check["agreement"]["agreement"] >= 0.9


def test_inspect_reads_the_ir(deploy_export, capsys):
    path = deploy_export("centernet_mobilenet_v2_fpn").output_dir / "openvino" / "model.xml"
    assert main(["inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "openvino" and report["precision"] == "fp32"
    assert report["inputs"] == {"input_tensor": {"dtype": "uint8", "shape": [1, None, None, 3]}}


def test_the_ir_is_verified_at_f32_and_the_cpus_own_default_is_judged_too(deploy_export):
    """On CPUs with AVX512_BF16 or AMX the plugin computes an fp32 IR in bf16 unless told; the check pins f32."""
    from od_export.targets.openvino import OpenVinoRunner, cpu_default_precision

    result = deploy_export("ssd_mobilenet_v2")
    xml = result.output_dir / "openvino" / "model.xml"
    assert OpenVinoRunner(xml).inference_precision == "f32"
    default = cpu_default_precision()
    spec = json.loads((xml.parent / "io_spec.json").read_text())
    assert spec["inference_precision"] == {"verified": "f32", "cpu_default_here": default}
    checks = {c["artifact"]: c for c in result.validation["checks"]}
    assert checks["openvino"]["ok"] and "agreement" not in checks["openvino"]
    extra = sorted(name for name in checks if name.startswith("openvino:"))
    if default == "f32":
        assert extra == []
    else:  # judged like any reduced precision, and the report says how to get f32
        [name] = extra
        assert checks[name]["agreement"]["precision"] == {"bf16": "bf16", "f16": "fp16"}[default]
        assert "INFERENCE_PRECISION_HINT f32" in checks[name]["notes"][0]
