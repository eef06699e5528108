"""The TFLite converter's settings per precision, and the int8 calibration images.

* ``fp32``: the graph as it is; float32 input and outputs.
* ``fp16``: weights stored as float16 (half the size), computed in float32 by
  LiteRT's CPU kernels; float32 input and outputs.
* ``int8``: weights and activations quantised to int8 from a representative
  dataset (:mod:`od_export.source.calibration` picks the images), as in the OD
  API's own recipe (``TFLITE_BUILTINS_INT8`` with float fallback); the input and
  outputs stay float32, quantised and dequantised inside the file, and
  ``TFLite_Detection_PostProcess`` runs in float.  Two ops stay in float
  (:data:`FLOAT_OPS`): CenterNet finds its peaks with ``|heatmap - maxpool(heatmap)| <
  1e-6``, and in int8 that epsilon rounds to zero, so no peak is ever found
  (measured: every score 0 on the CenterNet sample).
* ``int8_full``: the same quantisation with uint8 input and outputs (the
  converter's ``inference_input_type``/``inference_output_type``), as Edge TPU and
  NPU delegates require.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from od_export.errors import ExportFailed

from od_export.targets.base import ExportContext
from od_export.targets.tflite_resize import client_input

logger = logging.getLogger(__name__)
FLOAT_OPS = ["ABS", "LESS"]
#: Precisions calibrated on representative images: int8 keeps float I/O, int8_full has uint8 I/O.
INTEGER_PRECISIONS = ("int8", "int8_full")


def representative_dataset(images: list[np.ndarray], resize: dict[str, Any],
                           mean_std: tuple[list[float], list[float]]) -> Any:
    """The images as the file's input: resized as ``resize`` says and normalised (see tflite_resize)."""
    mean, std = (np.asarray(v, np.float32) for v in mean_std)
    batches = [client_input(image, resize, mean, std)[0] for image in images]

    def generate() -> Iterator[list[np.ndarray]]:
        for batch in batches:
            yield [batch]

    return generate


def convert(concrete: Any, precision: str, context: ExportContext, resize: dict[str, Any],
            mean_std: tuple[list[float], list[float]]) -> bytes:
    """The concrete function as a .tflite file in ``precision``; converter errors fail the export.

    The converter saves its input as a SavedModel first, walking every object the
    trackable it is given holds: the detection model's Keras layers take 25 s to
    walk, a module holding only the function's variables 0.1 s, for the same file.
    """
    from od_export import compat

    tf = compat.import_tensorflow()
    holder = tf.Module()
    holder.captured = list(concrete.variables)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)
    if precision in ("fp16", *INTEGER_PRECISIONS):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if precision in INTEGER_PRECISIONS:
        from od_export.source.calibration import shared_calibration_set

        converter.representative_dataset = representative_dataset(shared_calibration_set(context).images, resize, mean_std)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision == "int8_full":
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    try:
        if precision == "int8":  # the quantiser's public entry point that can keep ops in float
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=converter.representative_dataset,
                debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=FLOAT_OPS))
            return bytes(debugger.get_nondebug_quantized_model())
        return bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError, …
        raise conversion_error(exc, precision) from exc


def conversion_error(exc: Exception, precision: str) -> ExportFailed:
    return ExportFailed(f"the TFLite converter cannot convert this model ({precision}): {' '.join(str(exc).split())[:300]}")


#: What the files of one TFLite directory must share to sit beside each other under one io_spec.json.
_SHARED_SPEC = ("format", "architecture", "input_size", "normalization", "max_detections", "postprocessing", "raw")


def carry_over_precisions(previous: Any, written: Any) -> list[str]:
    """Keep the earlier precisions a conversion did not ask for (``convert`` adding int8 keeps fp32).

    ``previous`` is the published TFLite directory, ``written`` the new one in staging: each earlier
    file whose precision was not rewritten is hard-linked in (never written through) and its entry
    merged into the new io_spec.json, when both were made with the same input, normalisation and
    post-processing.  Returns the precisions kept.
    """
    import json
    import os

    from od_export.layout import IO_SPEC_NAME

    try:
        old = json.loads((previous / IO_SPEC_NAME).read_text(encoding="utf-8"))
        new = json.loads((written / IO_SPEC_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if any(old.get(key) != new.get(key) for key in _SHARED_SPEC):
        logger.warning(f"{previous}: the earlier TFLite files were made with other settings; only the new ones are kept")
        return []
    kept = []
    for precision, entry in (old.get("files") or {}).items():
        source = previous / str(entry.get("file", ""))
        if precision in new["files"] or not source.is_file() or source.is_symlink():
            continue
        os.link(source, written / source.name)
        new["files"][precision] = entry
        kept.append(precision)
    (written / IO_SPEC_NAME).unlink()
    (written / IO_SPEC_NAME).write_text(json.dumps(new, indent=2) + "\n", encoding="utf-8")
    return kept
