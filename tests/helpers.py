"""Reference computations for tests: the OD API exporter's own code path, and artifact runners."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from od_export import compat
from od_export.verify import samples
from od_export.source.pipeline_config import load_pipeline_config


def exporter_concrete_function(run_dir: Path, input_type: str) -> Any:
    """What exporter_lib_v2.export_inference_graph traces, step for step, minus the save."""
    od = compat.import_object_detection()
    tf = od.tf
    config = load_pipeline_config(run_dir / "pipeline.config")
    model = od.exporter_lib_v2.INPUT_BUILDER_UTIL_MAP["model_build"](config.model, is_training=False)
    checkpoint = tf.train.Checkpoint(model=model)
    manager = tf.train.CheckpointManager(checkpoint, str(run_dir), max_to_keep=1)
    status = checkpoint.restore(manager.latest_checkpoint).expect_partial()
    module = od.exporter_lib_v2.DETECTION_MODULE_MAP[input_type](model, False, [])
    concrete = module.__call__.get_concrete_function()
    status.assert_existing_objects_matched()
    return concrete


def sample_input(input_type: str) -> np.ndarray:
    return samples.input_batch(input_type, samples.sample_image())


def run_concrete(concrete: Any, value: np.ndarray) -> dict[str, np.ndarray]:
    tf = compat.import_tensorflow()
    return {k: v.numpy() for k, v in concrete(tf.constant(value)).items()}


def saved_model_signature(directory: Path) -> dict[str, Any]:
    from od_export.source.tracing import signature_description

    tf = compat.import_tensorflow()
    return signature_description(tf.saved_model.load(str(directory)).signatures["serving_default"])


def assert_non_degenerate(outputs: dict[str, np.ndarray]) -> None:
    """Random-but-trained-looking weights: varied scores, several confident detections."""
    scores = outputs["detection_scores"][0]
    assert float(np.std(scores)) > 0.02, scores
    assert int((scores > 0.3).sum()) >= 3, scores
