"""Make a randomly initialised detector's prediction heads answer like a trained one's.

He-normal kernels plus recalibrated batch norm keep activations of order one through
the network, but the last, linear layer of each prediction head has no batch norm
after it.  Its outputs then carry a random offset and spread per channel that grows
with the head's width, so a full-size model (EfficientDet-D0 at 512², 90 classes)
decodes boxes from ``exp`` of huge encodings (±2600 or ±inf) and gives every anchor a
score of 1.0.  Trained detectors do not look like that.

Each final head layer is linear in its kernel and bias, so its outputs can be set
exactly: one inference pass records every output channel's mean and spread, then
kernel and bias are rescaled per channel so that

* box encodings have mean 0 and the spread of a real offset (a tenth of an anchor,
  in the box coder's scaled units), and
* class logits have unit spread, shifted so that every calibration image has at
  least :data:`CONFIDENT` anchor-class pairs scoring above 0.5.

Heads are found by the OD API's attribute names (``_box_encoder_layers``,
``_class_predictor_layers``), which SSD, EfficientDet and both Faster R-CNN stages
share, and CenterNet's ``object_center`` heatmap head (its size and offset heads
stay as they are: their outputs are bounded by the decoder).
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import numpy as np

from od_export import compat

#: (pattern of a head's layer path: group 1 names the head, group 2 orders its layers, kind).
_HEADS = (
    (re.compile(r"^(.*/_box_encoder_layers)/(\d+)$"), "box"),
    (re.compile(r"^(.*/_class_predictor_layers)/(\d+)$"), "class"),
    (re.compile(r"^(.*/_prediction_head_dict/object_center/\d+)/layer-(\d+)$"), "class"),  # CenterNet heatmap
)
#: Anchor-class pairs of each calibration image that end up above a score of 0.5 (at least).
CONFIDENT = 6
_RELATIVE_OFFSET_SPREAD = 0.1


def final_head_layers(model: Any) -> dict[str, list[Any]]:
    """``{"box": [...], "class": [...]}``: the last layer with a kernel in each head's layer list."""
    tf = compat.import_tensorflow()
    heads: dict[tuple[str, str], dict[int, Any]] = defaultdict(dict)
    pending, seen = [(model, "")], set()
    while pending:
        obj, path = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if hasattr(obj, "kernel") or hasattr(obj, "pointwise_kernel"):
            for pattern, kind in _HEADS:
                match = pattern.match(path)
                if match:
                    heads[(match.group(1), kind)][int(match.group(2))] = obj
        for name, child in tf.train.TrackableView(obj).children(obj).items():
            pending.append((child, f"{path}/{name}"))
    found: dict[str, list[Any]] = {"box": [], "class": []}
    for (_, kind), layers in sorted(heads.items()):
        found[kind].append(layers[max(layers)])
    return found


def _capture_outputs(layers: list[Any], run: Any, images: int) -> dict[int, list[np.ndarray]]:
    """Run ``run()`` with each layer's ``call`` wrapped to record its outputs as [image, position, channel]."""
    captured: dict[int, list[np.ndarray]] = defaultdict(list)
    originals = {}
    for layer in layers:
        originals[id(layer)] = layer.call

        def recording(*args: Any, _layer: Any = layer, **kwargs: Any) -> Any:
            output = originals[id(_layer)](*args, **kwargs)
            array = np.asarray(output)
            batch = images if array.shape[0] == images else 1
            captured[id(_layer)].append(array.reshape(batch, -1, array.shape[-1]))
            return output

        layer.call = recording
    try:
        run()
    finally:
        for layer in layers:
            del layer.call  # the instance attribute goes; the class's method shows again
    return captured


def _affine(layer: Any, scale: np.ndarray, shift: np.ndarray) -> None:
    """outputs ← outputs · scale + shift, per channel, by rewriting kernel and bias."""
    kernel = layer.pointwise_kernel if hasattr(layer, "pointwise_kernel") else layer.kernel
    kernel.assign(kernel.numpy() * scale.astype(kernel.dtype.as_numpy_dtype))
    layer.bias.assign((layer.bias.numpy() * scale + shift).astype(layer.bias.dtype.as_numpy_dtype))


def _confident_shift(per_image: list[np.ndarray]) -> float:
    """The logit shift that gives every calibration image at least :data:`CONFIDENT` scores over 0.5."""
    quantiles = [np.quantile(values, 1.0 - min(CONFIDENT / values.size, 0.5)) for values in per_image]
    return float(-min(quantiles))


def calibrate_heads(model: Any, run_inference: Any, box_scale: float, images: int) -> int:
    """Rescale every final head layer (see module docstring); returns how many were changed."""
    heads = final_head_layers(model)
    layers = [layer for group in heads.values() for layer in group if getattr(layer, "bias", None) is not None]
    captured = _capture_outputs(layers, run_inference, images)
    normalized = {}
    for layer in layers:
        if not captured.get(id(layer)):
            continue
        outputs = np.concatenate(captured[id(layer)], axis=1).astype(np.float64)
        mean, spread = outputs.mean(axis=(0, 1)), np.maximum(outputs.std(axis=(0, 1)), 1e-6)
        normalized[id(layer)] = (outputs - mean) / spread
        target = _RELATIVE_OFFSET_SPREAD * box_scale if layer in heads["box"] else 1.0
        _affine(layer, target / spread, -mean * target / spread)
    class_layers = [layer for layer in heads["class"] if id(layer) in normalized]
    if class_layers:
        batch = min(normalized[id(layer)].shape[0] for layer in class_layers)
        per_image = [np.concatenate([normalized[id(layer)][i].ravel() for layer in class_layers]) for i in range(batch)]
        shift = _confident_shift(per_image)
        for layer in class_layers:
            _affine(layer, np.ones(layer.bias.shape), np.full(layer.bias.shape, shift))
    return len(normalized)
