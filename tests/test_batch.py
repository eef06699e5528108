"""od-export batch on real runs: several checkpoints per job, reuse, skips, a failing job, workers."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from od_export import ExportOptions, export
from od_export.cli import main
from od_export.verify.samples import input_batch, run_saved_model, sample_image

pytestmark = pytest.mark.integration


def job(name: str, run, output, extra: str = "") -> str:
    return (f"  - name: {name}\n    pipeline_config: {run}/pipeline.config\n    checkpoint_dir: {run}\n"
            f"    output_dir: {output}\n" + extra)


def detections(unit_dir) -> dict[str, np.ndarray]:
    feed = {"input_tensor": input_batch("image_tensor", sample_image(seed=3))}
    return run_saved_model(unit_dir / "saved_model", feed)


def run_json(capsys, *args: str) -> tuple[int, dict]:
    code = main(["batch", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def first_batch(training_run, tmp_path_factory):
    """Two configs with three checkpoints each, plus a job whose checkpoint does not fit its config; two workers.

    No frozen graphs: what a batch adds is the jobs, checkpoints and workers, not another artifact."""
    ssd, centernet = training_run("ssd_mobilenet_v2"), training_run("centernet_mobilenet_v2_fpn")
    root = tmp_path_factory.mktemp("batch")
    good = "defaults:\n  checkpoints: all\n  freeze: false\njobs:\n" + job("ssd", ssd, "out/ssd") + job("centernet", centernet, "out/cn")
    (root / "good.yaml").write_text(good)
    (root / "with_bad.yaml").write_text(good + job("mismatched", ssd, "out/bad", "    checkpoints: latest\n").replace(
        f"pipeline_config: {ssd}", f"pipeline_config: {centernet}"))
    return root


def test_a_failing_job_is_reported_and_the_others_are_exported(first_batch, capsys):
    code, document = run_json(capsys, str(first_batch / "with_bad.yaml"), "-j", "2")
    assert code == 1 and document["ok"] is False and document["workers"] == 2
    statuses = {(j["job"], j["checkpoint"]): j["status"] for j in document["jobs"]}
    assert statuses.pop(("mismatched", "ckpt-3")) == "failed"
    assert set(statuses.values()) == {"exported"} and len(statuses) == 6
    [failure] = [j for j in document["jobs"] if j["error"]]
    assert failure["error"]["kind"] == "CheckpointError" and "does not match the model" in failure["error"]["message"]
    assert not (first_batch / "out" / "bad").exists()
    for name in ("ssd", "cn"):
        assert os.readlink(first_batch / "out" / name / "latest") == "ckpt-3"


def test_each_checkpoint_equals_a_single_export_of_it(first_batch, training_run, tmp_path):
    run = training_run("ssd_mobilenet_v2")
    single = export(ExportOptions(run / "pipeline.config", run, tmp_path / "single", checkpoint="ckpt-2", freeze=False))
    batch_ckpt2 = detections(first_batch / "out" / "ssd" / "ckpt-2")
    for key, value in detections(single.output_dir).items():
        np.testing.assert_allclose(batch_ckpt2[key], value, atol=1e-6, err_msg=key)
    batch_ckpt3 = detections(first_batch / "out" / "ssd" / "ckpt-3")
    assert not np.allclose(batch_ckpt2["raw_detection_scores"], batch_ckpt3["raw_detection_scores"], atol=1e-3)


def test_a_second_run_skips_everything(first_batch, capsys):
    code, document = run_json(capsys, str(first_batch / "good.yaml"))
    assert code == 0 and document["counts"] == {"skipped": 6}


def test_a_changed_export_is_replaced_and_force_re_exports(first_batch, capsys):
    damaged = first_batch / "out" / "cn" / "ckpt-1" / "pipeline.config"
    damaged.write_text(damaged.read_text() + "\n# edited\n")
    shard_of_cn_ckpt1 = "4/6"  # jobs expand to ssd 1-3, cn 1-3: the 4th slice of six is cn/ckpt-1
    code, document = run_json(capsys, str(first_batch / "good.yaml"), "--shard", shard_of_cn_ckpt1)
    assert code == 0 and [(j["job"], j["checkpoint"], j["status"]) for j in document["jobs"]] == [
        ("centernet", "ckpt-1", "exported")]
    assert "# edited" not in damaged.read_text()
    code, document = run_json(capsys, str(first_batch / "good.yaml"), "--shard", "1/6", "--force")
    assert code == 0 and document["counts"] == {"exported": 1}
