"""manifest.json describes the export it sits in: sources, versions, files, timings."""
from __future__ import annotations

import hashlib
import json

import pytest

from od_export.manifest import MANIFEST_NAME, checkpoint_files
from tests.conftest import ALL_INPUT_TYPES

pytestmark = pytest.mark.integration


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_fields(exported, demo_checkpoint):
    result = exported("ssd_mobilenet_v2", ALL_INPUT_TYPES)
    manifest = json.loads((result.output_dir / MANIFEST_NAME).read_text())
    run = demo_checkpoint("ssd_mobilenet_v2")
    assert manifest["versions"]["tensorflow"].startswith("2.")
    assert manifest["versions"]["object_detection"] and manifest["versions"]["od_export"]
    assert manifest["source"]["pipeline_config"]["sha256"] == sha256(run / "pipeline.config")
    expected = hashlib.sha256(b"".join(p.read_bytes() for p in checkpoint_files(run / "ckpt-1"))).hexdigest()
    assert manifest["source"]["checkpoint"] == {"prefix": str(run / "ckpt-1"), "sha256": expected}
    assert [entry["input_type"] for entry in manifest["input_types"]] == list(ALL_INPUT_TYPES)
    assert manifest["input_types"][0]["signature"]["inputs"]["input_tensor"]["dtype"] == "uint8"
    files = {str(p.relative_to(result.output_dir)) for p in result.output_dir.rglob("*") if p.is_file()} - {MANIFEST_NAME}
    assert {a["path"] for a in manifest["artifacts"]} == files
    for artifact in manifest["artifacts"][:5]:
        path = result.output_dir / artifact["path"]
        assert artifact["bytes"] == path.stat().st_size and artifact["sha256"] == sha256(path)
    assert {"import_and_config", "build_and_trace", "save", "freeze", "check"} <= set(manifest["timings_s"])
    assert manifest["validation"] is None
