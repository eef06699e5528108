"""--serving-warmup: TF Serving warm-up records in the SavedModel, read back with TF Serving's protos and run."""
from __future__ import annotations

import json
import shutil

import pytest

from od_export.cli import main
from od_export.targets.serving_warmup import WARMUP_DIR, WARMUP_FILE, write_warmup

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def warmed(demo_checkpoint, tmp_path_factory):
    run = demo_checkpoint("ssd_mobilenet_v2")
    out = tmp_path_factory.mktemp("warmup") / "out"
    assert main(["export", "--pipeline-config", str(run / "pipeline.config"), "--checkpoint-dir", str(run),
                 "--output-dir", str(out), "--no-freeze", "--serving-warmup", "3", "--validate", "-q"]) == 0
    return out


def test_records_are_written_and_each_runs_through_the_savedmodel(warmed):
    from tensorflow_serving.apis import prediction_log_pb2

    from od_export import compat

    tf = compat.import_tensorflow()
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
               for r in tf.data.TFRecordDataset(str(warmed / "saved_model" / WARMUP_DIR / WARMUP_FILE))]
    assert len(records) == 3
    request = records[0].predict_log.request
    assert request.model_spec.signature_name == "serving_default" and list(request.inputs) == ["input_tensor"]
    assert tf.make_ndarray(request.inputs["input_tensor"]).dtype.name == "uint8"
    manifest = json.loads((warmed / "manifest.json").read_text())
    [check] = [c for c in manifest["validation"]["checks"] if c["artifact"] == "serving warm-up"]
    assert check["ok"]


def test_records_the_signature_cannot_take_fail_validation(warmed, tmp_path, capsys):
    copy = tmp_path / "wrong"
    shutil.copytree(warmed, copy)
    (copy / "manifest.json").unlink()
    write_warmup(copy / "saved_model", "float_image_tensor", 2)  # float32 pixels for a uint8 signature
    assert main(["validate", str(copy), "--json"]) == 1
    [check] = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["artifact"] == "serving warm-up"]
    assert check["ok"] is False and "feeds input_tensor as float32, the signature takes uint8" in check["error"]


def test_missing_protos_are_named_before_any_model_is_built(monkeypatch):
    import importlib.util

    from od_export.errors import EnvironmentProblem
    from od_export.options import ConversionOptions, ExportOptions
    from od_export.targets import get_target

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow_serving" else real(name, *a))
    options = ExportOptions("p", "c", "o", conversion=ConversionOptions.of(serving_warmup=2))
    with pytest.raises(EnvironmentProblem, match=r"pip install 'od-export\[serving\]'"):
        get_target("saved_model").check_request("ssd", None, options)
    get_target("saved_model").check_request("ssd", None, ExportOptions("p", "c", "o"))  # none asked for: no check
