"""int8 calibration images: given ones, else the run's training records (seeded), else synthetic with a warning."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from od_export.source.calibration import SYNTHETIC_CALIBRATION_IMAGES, calibration_set
from od_export.source.pipeline_config import load_pipeline_config
from tests.conftest import REPO

TRAINED_CONFIG = REPO / "tests" / "fixtures" / "trained_ssd" / "pipeline.config"


@pytest.mark.integration
def test_the_run_s_training_records_are_sampled_seeded_relative_to_the_config(tmp_path):
    from od_export.source.demo_data import write_demo_dataset

    write_demo_dataset(tmp_path / "data", seed=5, train_images=7, eval_images=1)
    config = load_pipeline_config(TRAINED_CONFIG)  # names data/train.record, relative to the run
    config_path = tmp_path / "pipeline.config"
    first, again = (calibration_set(None, config, config_path) for _ in range(2))
    assert len(first.images) == 7 and first.images[0].shape == (128, 128, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first.images, again.images))
    assert first.source.startswith("7 images drawn (seed 0) from the first 2000 training records (train.record)")


@pytest.mark.integration
def test_without_records_synthetic_images_come_with_a_warning(tmp_path, caplog):
    config = load_pipeline_config(TRAINED_CONFIG)
    with caplog.at_level(logging.WARNING):
        found = calibration_set(None, config, tmp_path / "pipeline.config")
    assert len(found.images) == SYNTHETIC_CALIBRATION_IMAGES and found.source.startswith("16 synthetic images")
    assert "training records (data/train.record) are not here" in caplog.text
