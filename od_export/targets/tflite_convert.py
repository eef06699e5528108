"""The TFLite converter's settings per precision, and the int8 calibration images.

* ``fp32``: the graph as it is; float32 input and outputs.
* ``fp16``: weights stored as float16 (half the size), computed in float32 by
  LiteRT's CPU kernels; float32 input and outputs.
* ``int8``: weights and activations quantised to int8 from a representative
  dataset, as in the OD API's own recipe (``TFLITE_BUILTINS_INT8`` with float
  fallback); the input and outputs stay float32, quantised and dequantised inside the
  file, and ``TFLite_Detection_PostProcess`` runs in float.  Two ops stay in float
  (:data:`FLOAT_OPS`): CenterNet finds its peaks with ``|heatmap - maxpool(heatmap)| <
  1e-6``, and in int8 that epsilon rounds to zero, so no peak is ever found
  (measured: every score 0 on the CenterNet sample).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from od_export.errors import InputError
from od_export.options import calibration_files
from od_export.targets.base import ExportContext

logger = logging.getLogger(__name__)

SYNTHETIC_CALIBRATION_IMAGES = 16
FLOAT_OPS = ["ABS", "LESS"]


def calibration_source(directory: str | Path | None) -> str:
    """How the int8 file was calibrated, for its io_spec.json."""
    if directory is None:
        return f"{SYNTHETIC_CALIBRATION_IMAGES} synthetic images (no calibration images were given)"
    return f"{len(calibration_files(Path(directory)))} images from {Path(directory).absolute()}"


def _pixels(directory: Path | None) -> list[np.ndarray]:
    from od_export import compat
    from od_export.verify import samples

    if directory is None:
        logger.warning(f"int8: no calibration images given, so the int8 file is calibrated on "
                       f"{SYNTHETIC_CALIBRATION_IMAGES} synthetic images and its ranges may not fit real ones; "
                       "give a directory of representative images (JPEG/PNG) as calibration images")
        return [samples.sample_image(96 + 8 * i, 128 + 4 * i, seed=1000 + i) for i in range(SYNTHETIC_CALIBRATION_IMAGES)]
    tf = compat.import_tensorflow()
    images = []
    for path in calibration_files(directory):
        try:
            images.append(tf.io.decode_image(path.read_bytes(), channels=3, expand_animations=False).numpy())
        except tf.errors.InvalidArgumentError as exc:
            raise InputError(f"calibration image {path} is not a readable JPEG or PNG; remove or replace it") from exc
    return images


def representative_dataset(directory: Path | None, size: tuple[int, int],
                           mean_std: tuple[list[float], list[float]]) -> Any:
    """The images resized as the fixed_shape_resizer does (bilinear) and normalised like the input."""
    from od_export import compat

    tf = compat.import_tensorflow()
    mean, std = (np.asarray(v, np.float32) for v in mean_std)
    batches = [((tf.image.resize(image.astype(np.float32), size).numpy() - mean) / std)[np.newaxis].astype(np.float32)
               for image in _pixels(directory)]

    def generate() -> Iterator[list[np.ndarray]]:
        for batch in batches:
            yield [batch]

    return generate


def convert(concrete: Any, precision: str, context: ExportContext, size: tuple[int, int],
            mean_std: tuple[list[float], list[float]]) -> bytes:
    """The concrete function as a .tflite file in ``precision``; converter errors fail the export.

    The converter saves its input as a SavedModel first, walking every object the
    trackable it is given holds: the detection model's Keras layers take 25 s to
    walk, a module holding only the function's variables 0.1 s, for the same file.
    """
    from od_export import compat
    from od_export.targets.tflite import conversion_error

    tf = compat.import_tensorflow()
    holder = tf.Module()
    holder.captured = list(concrete.variables)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)
    if precision in ("fp16", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if precision == "int8":
        directory = context.options.conversion.calibration_images
        converter.representative_dataset = representative_dataset(None if directory is None else Path(directory), size,
                                                                   mean_std)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        if precision == "int8":  # the quantiser's public entry point that can keep ops in float
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=converter.representative_dataset,
                debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=FLOAT_OPS))
            return bytes(debugger.get_nondebug_quantized_model())
        return bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError, …
        raise conversion_error(exc, precision) from exc
