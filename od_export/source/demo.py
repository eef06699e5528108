"""pipeline.config → a training-style checkpoint directory with seeded random weights.

It lets ``od-export export`` (and the tests) run on a fresh machine with nothing
downloaded.  A freshly built OD API model scores every anchor ≈ 0.00995, which
would make any parity check pass trivially, so the weights are re-initialised with
a seed (He-normal kernels, perturbed biases and batch-norm scales), then the
batch-norm statistics are recalibrated on sample images.  That gives varied scores
with several detections above typical thresholds.
"""
from __future__ import annotations

import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from od_export import compat
from od_export.verify import samples
from od_export.source.head_calibration import calibrate_heads
from od_export.source.pipeline_config import load_pipeline_config, meta_architecture, model_input_size, num_classes, read_text
from od_export.storage import remote
from od_export.storage.location import AnyPath, location
from od_export.manifest import output_manifest, write_manifest
from od_export.storage.output import OutputPlan, plan_output, reserve, staged_output


logger = logging.getLogger(__name__)

_CALIBRATION_BATCH = 4


@dataclass(frozen=True)
class DemoCheckpointOptions:
    pipeline_config: str | Path
    output_dir: str | Path
    seed: int = 0
    checkpoint_number: int = 1
    overwrite: bool = False


@dataclass(frozen=True)
class DemoCheckpointResult:
    output_dir: AnyPath
    checkpoint_prefix: AnyPath
    pipeline_config: AnyPath
    variables: int


def _scaled_normal(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), size=shape)


def reinitialize_weights(variables: list[Any], seed: int) -> None:
    """Seeded He-normal kernels, perturbed biases and BN statistics, by variable name."""
    rng = np.random.default_rng(seed)
    for variable in sorted(variables, key=lambda v: v.name):
        shape = tuple(variable.shape.as_list())
        name = variable.name.split("/")[-1]
        if "depthwise" in name:
            value = _scaled_normal(rng, shape, int(np.prod(shape[:2])))
        elif "kernel" in name or "weights" in name:
            value = _scaled_normal(rng, shape, int(np.prod(shape[:-1])) if len(shape) > 1 else 1)
        elif name.startswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, size=shape)
        elif name.startswith("moving_mean"):
            value = rng.normal(0.0, 0.1, size=shape)
        elif name.startswith("gamma"):
            value = rng.uniform(0.8, 1.2, size=shape)
        elif name.startswith(("beta", "bias")):
            value = variable.numpy() + rng.normal(0.0, 0.5, size=shape)
        else:
            continue
        variable.assign(value.astype(variable.dtype.as_numpy_dtype))


def calibration_images(config: Any, seed: int) -> Any:
    """Sample images of several sizes (so of several textures once resized), at the model's size.

    Random weights make activations depend strongly on image statistics; calibrating
    on one kind of image leaves other images far outside the calibrated range.
    """
    tf = compat.import_tensorflow()
    height, width = model_input_size(config)
    # Faster R-CNN in training mode samples proposals per image and fails on a batch of two.
    batch = 1 if meta_architecture(config) == "faster_rcnn" else _CALIBRATION_BATCH
    sizes = [(height, width), (150, 170), (480, 640), (300, 400)][:batch]
    images = [tf.image.resize(samples.sample_image(h, w, seed=seed + i).astype(np.float32), (height, width))
              for i, (h, w) in enumerate(sizes)]
    return tf.stack(images)


def training_forward(model: Any, config: Any, images: Any) -> None:
    """One training-mode forward pass (Faster R-CNN samples proposals against groundtruth, so it gets one box)."""
    tf = compat.import_tensorflow()
    preprocessed, true_shapes = model.preprocess(images)
    if meta_architecture(config) == "faster_rcnn":
        batch = int(images.shape[0])
        model.provide_groundtruth(
            groundtruth_boxes_list=[tf.constant([[0.1, 0.1, 0.6, 0.6]], tf.float32)] * batch,
            groundtruth_classes_list=[tf.one_hot([0], num_classes(config), dtype=tf.float32)] * batch,
        )
    model.predict(preprocessed, true_shapes)


def recalibrate_batch_norm(model: Any, config: Any, seed: int) -> None:
    """Set every BN layer's moving statistics to those of real activations.

    With random kernels the stored statistics normalise nothing, so activations grow
    or shrink geometrically with depth and every score saturates at 0 or 1.  One
    forward pass in training mode with momentum 0 stores each layer's batch
    statistics (each layer already sees normalised inputs), keeping inference
    activations of order one through the whole network.
    """
    import tf_keras

    # Duck-typed: the OD API's FreezableBatchNorm and Keras' own BN come from two class trees.
    layers = [m for m in model.submodules if hasattr(m, "moving_mean") and hasattr(m, "momentum")]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # learning_phase_scope is deprecated, yet the only switch
            with tf_keras.backend.learning_phase_scope(1):
                training_forward(model, config, calibration_images(config, seed))
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def build_trained_like_model(config: Any, seed: int) -> Any:
    """Build the training-mode model, create its variables, then re-initialise them."""
    od = compat.import_object_detection()
    tf = od.tf
    tf.keras.utils.set_random_seed(seed)
    model = od.model_builder.build(config.model, is_training=True)
    height, width = model_input_size(config)
    training_forward(model, config, tf.zeros([1, height, width, 3], tf.float32))
    if hasattr(model, "_mask_net"):  # DeepMAC first calls its mask network in post-processing
        from od_export.source.model import create_variables

        create_variables(model, config)
    reinitialize_weights(model.variables, seed)
    recalibrate_batch_norm(model, config, seed)
    images = calibration_images(config, seed)
    calibrate_heads(model, lambda: training_forward(model, config, images), _box_coder_scale(config), int(images.shape[0]))
    return model


def _write_config(source: str | Path, staging: Path) -> Path:
    """The config, and the label map it names (as a run keeps it, beside the config) when that is found."""
    from od_export.source.labels import find_label_map

    config_path = staging / "pipeline.config"
    config_path.write_text(read_text(source), encoding="utf-8")
    label_map, _ = find_label_map(location(source))
    if label_map is not None:
        shutil.copyfile(label_map, staging / label_map.name)
    return config_path


def _write_tf1_demo_checkpoint(options: DemoCheckpointOptions, plan: OutputPlan) -> DemoCheckpointResult:
    """A TF1 ``model.ckpt-N`` (+ ``checkpoint`` state file), built by the OD API's TF1 code in a TF1 process."""
    from od_export.tf1 import od_api

    with staged_output(plan) as staging:
        config_path = _write_config(options.pipeline_config, staging)
        variables = od_api.write_demo_checkpoint(config_path, staging / "model.ckpt", options.seed, options.checkpoint_number)
        write_manifest(staging, output_manifest(staging, "demo_checkpoint", seed=options.seed))
    prefix = plan.target / f"model.ckpt-{options.checkpoint_number}"
    logger.info(f"wrote {prefix} ({variables} variables)")
    return DemoCheckpointResult(plan.target, prefix, plan.target / "pipeline.config", variables)


def _box_coder_scale(config: Any) -> float:
    """The y scale of the config's Faster R-CNN box coder (the OD API default, 10, otherwise)."""
    architecture = getattr(config.model, meta_architecture(config))
    if "box_coder" in architecture.DESCRIPTOR.fields_by_name and architecture.box_coder.HasField("faster_rcnn_box_coder"):
        return float(architecture.box_coder.faster_rcnn_box_coder.y_scale or 10.0)
    return 10.0


def create_demo_checkpoint(options: DemoCheckpointOptions) -> DemoCheckpointResult:
    """Write ``ckpt-N`` (model + optimizer, like a training run) and ``pipeline.config``."""
    from od_export.source.build_paths import check_build_paths
    from od_export.source.labels import find_label_map

    config = load_pipeline_config(options.pipeline_config)
    check_build_paths(config)

    source = location(options.pipeline_config)
    label_map, _ = find_label_map(source)
    plan = plan_output(options.output_dir, options.overwrite,
                       [("pipeline config", source)] + ([("label map", label_map)] if label_map else []))
    with reserve(plan):
        return _write_demo_checkpoint(options, config, plan)


def _write_demo_checkpoint(options: DemoCheckpointOptions, config: Any, plan: OutputPlan) -> DemoCheckpointResult:
    if plan.is_remote:
        remote.check_remote_target(plan.target, options.overwrite)
    target = plan.target
    from od_export.tf1 import od_api

    if od_api.is_tf1_config(config):
        return _write_tf1_demo_checkpoint(options, plan)
    od = compat.import_object_detection()
    tf = od.tf
    logger.info(f"building {meta_architecture(config)} from {options.pipeline_config} (seed {options.seed})")
    model = build_trained_like_model(config, options.seed)
    optimizer = tf.keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    step = tf.Variable(options.checkpoint_number, dtype=tf.int64)
    with staged_output(plan) as staging:
        checkpoint = tf.train.Checkpoint(step=step, model=model, optimizer=optimizer)
        manager = tf.train.CheckpointManager(checkpoint, str(staging), max_to_keep=1)
        manager.save(checkpoint_number=options.checkpoint_number)
        _write_config(options.pipeline_config, staging)
        write_manifest(staging, output_manifest(staging, "demo_checkpoint", seed=options.seed))
    prefix = target / f"ckpt-{options.checkpoint_number}"
    logger.info(f"wrote {prefix} ({len(model.variables)} variables)")
    return DemoCheckpointResult(target, prefix, target / "pipeline.config", len(model.variables))
