"""The images that int8 quantisation calibrates on, as practitioners pick them by hand.

1. A directory of JPEG/PNG images, when one is given.
2. Else the run's own training data: up to 100 images drawn, seeded, from the
   ``train_input_reader`` TFRecords the pipeline.config names (looked for as written,
   then beside the config).  Only the first 2,000 records are read, so a large
   training set costs no more than a small one.
3. Else, only when the run has no records, seeded synthetic images, with a warning.

The images are returned decoded, at their own size; each converter applies the
model's own preprocessing (resize and normalisation) to them.
"""
from __future__ import annotations

import glob
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from od_export import compat
from od_export.options import MAX_CALIBRATION_IMAGES, calibration_files
from od_export.source.proto_text import find_named_path
from od_export.verify import samples

logger = logging.getLogger(__name__)

SYNTHETIC_CALIBRATION_IMAGES = 16
#: Records read from the training data to draw the calibration images from.
SCANNED_RECORDS = 2000
SEED = 0


@dataclass
class CalibrationSet:
    images: list[np.ndarray]
    #: Where they came from, for the artifact's io_spec.json.
    source: str


def from_directory(directory: Path) -> CalibrationSet:
    files = calibration_files(directory)
    return CalibrationSet([samples.read_image(p, f"calibration image {p}") for p in files],
                          f"{len(files)} images from {Path(directory).absolute()}")


def training_records(config: Any, bases: list[Path]) -> list[str]:
    """The files the config's train_input_reader names that exist (patterns expanded)."""
    reader = config.train_input_reader
    if not reader.HasField("tf_record_input_reader"):
        return []
    files: list[str] = []
    for pattern in reader.tf_record_input_reader.input_path:
        files += sorted(glob.glob(str(find_named_path(pattern, bases))))
    return files


def _sampled(files: list[str], count: int) -> list[tuple[str, bytes]]:
    """A seeded uniform sample of ``count`` encoded images from the first records (reservoir sampling)."""
    tf = compat.import_tensorflow()
    rng = np.random.default_rng(SEED)
    chosen: list[tuple[str, bytes]] = []
    seen = 0
    for path in files:
        for serialized in tf.data.TFRecordDataset(path).take(SCANNED_RECORDS - seen):
            example = tf.train.Example.FromString(serialized.numpy())
            encoded = example.features.feature["image/encoded"].bytes_list.value
            if not encoded:
                continue
            item = (f"record {seen} of {path}", encoded[0])
            if len(chosen) < count:
                chosen.append(item)
            elif (slot := int(rng.integers(0, seen + 1))) < count:
                chosen[slot] = item
            seen += 1
        if seen >= SCANNED_RECORDS:
            break
    return chosen


def synthetic(reason: str) -> CalibrationSet:
    logger.warning(f"int8: {reason}, so int8 is calibrated on {SYNTHETIC_CALIBRATION_IMAGES} synthetic images and its "
                   "ranges may not fit real ones; give a directory of representative images (JPEG/PNG) as "
                   "calibration images")
    images = [samples.sample_image(96 + 8 * i, 128 + 4 * i, seed=1000 + i) for i in range(SYNTHETIC_CALIBRATION_IMAGES)]
    return CalibrationSet(images, f"{SYNTHETIC_CALIBRATION_IMAGES} synthetic images ({reason})")


def calibration_set(directory: str | Path | None, config: Any, config_path: Any) -> CalibrationSet:
    """The calibration images for a run (see the module docstring)."""
    if directory is not None:
        return from_directory(Path(directory))
    from od_export.manifest import data_directories

    files = training_records(config, data_directories(config_path))
    if not files:
        named = ", ".join(config.train_input_reader.tf_record_input_reader.input_path) or "none"
        return synthetic(f"no calibration images were given and the run's training records ({named}) are not here")
    sampled = _sampled(files, MAX_CALIBRATION_IMAGES)
    if not sampled:
        return synthetic(f"the training records ({', '.join(files)}) hold no images")
    images = [samples.decode_image(data, f"calibration image {where}") for where, data in sampled]
    return CalibrationSet(images, f"{len(images)} images drawn (seed {SEED}) from the first {SCANNED_RECORDS} "
                                  f"training records ({', '.join(Path(f).name for f in files)})")


def shared_calibration_set(context: Any) -> CalibrationSet:
    """Once per export, for every int8 artifact of it."""
    if "calibration" not in context.shared:
        options = context.options
        context.shared["calibration"] = calibration_set(options.conversion.calibration_images, context.config,
                                                        options.pipeline_config)
    return context.shared["calibration"]
