"""scripts/train_demo.py, on a short schedule: the OD API's training loop runs on this stack and the loss falls."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.exhaustive]


def test_a_short_schedule_of_the_demo_training_lowers_the_loss(tmp_path):
    output = tmp_path / "run"
    command = [sys.executable, str(REPO / "scripts" / "train_demo.py"), "--output-dir", str(output), "--steps", "80",
               "--checkpoint-every", "20", "--train-images", "200", "--eval-images", "40"]
    subprocess.run(command, check=True, capture_output=True, timeout=900, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    report = json.loads((output / "training.json").read_text())
    assert report["checkpoints"] == ["ckpt-1", "ckpt-2", "ckpt-3", "ckpt-4", "ckpt-5"]
    losses = report["eval_loss"]
    assert losses["ckpt-5"] < 0.8 * losses["ckpt-1"], losses
    assert (output / "data" / "eval.record").is_file() and (output / "checkpoint").read_text().startswith(
        'model_checkpoint_path: "ckpt-5"')
