"""The SavedModel as the reference every other artifact is judged against."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from od_export import compat
from od_export.errors import InputError
from od_export.layout import Unit
from od_export.options import INPUT_TYPES
from od_export.verify import crop_feed, samples
from od_export.storage.reading import check_protobuf_file


@dataclass
class Reference:
    """A unit's SavedModel signature, the input type it takes, and its outputs on the images."""

    unit: Unit
    input_type: str
    function: Any
    images: list[np.ndarray]
    outputs: list[dict[str, np.ndarray]]
    #: The signature as a function of its crops' boxes (:mod:`od_export.verify.crop_feed`); False: it has none.
    crops: Any = field(default=None, repr=False)

    def judged_on(self, index: int, candidate: dict[str, np.ndarray], atol: float,
                  score_threshold: float) -> dict[str, np.ndarray]:
        """What ``candidate`` (an artifact's outputs on image ``index``) is held to.

        The SavedModel's outputs on that image; for a model that crops with
        ``CropAndResize``, those after the crop computed on the candidate's own boxes.
        """
        feed = self.crop_feed()
        if feed is None:
            return self.outputs[index]
        return crop_feed.judged_on(feed, self.feed(self.images[index]), self.outputs[index], candidate,
                                   atol, score_threshold)

    def crop_feed(self) -> crop_feed.CropFeed | None:
        """The signature as a function of its crops' boxes; None for a model without ``CropAndResize``."""
        if self.crops is None:
            self.crops = crop_feed.has_native_crop(self.function) and crop_feed.build(self.function) or False
        return self.crops or None

    def feed(self, image: np.ndarray) -> np.ndarray:
        """The ``input_tensor`` value holding ``image`` for this unit's input type."""
        return samples.input_batch(self.input_type, image)

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """The SavedModel on another image (targets with a fixed input size need their own)."""
        tf = compat.import_tensorflow()
        return {k: v.numpy() for k, v in self.function(input_tensor=tf.constant(self.feed(image))).items()}


def load_signature(unit: Unit, signature_key: str) -> Any:
    """The SavedModel's signature function; it keeps the loaded object (and so its variables) alive."""
    tf = compat.import_tensorflow()
    check_protobuf_file(Path(str(unit.saved_model)) / "saved_model.pb", "SavedModel", "export again")
    try:
        loaded = tf.saved_model.load(str(unit.saved_model))
    except (OSError, ValueError, tf.errors.OpError) as exc:
        raise InputError(f"cannot load the SavedModel {unit.saved_model}: {exc}") from exc
    if signature_key not in loaded.signatures:
        raise InputError(f"{unit.saved_model} has no signature {signature_key!r}; it has: {', '.join(loaded.signatures)}")
    signature = loaded.signatures[signature_key]
    signature._od_export_loaded = loaded  # the signature holds its variables weakly: they go with `loaded`
    return signature


def _input_type_candidates(unit: Unit, signature: Any) -> list[str]:
    inputs = signature.structured_input_signature[1]
    if "input_tensor" not in inputs and "inputs" in inputs:
        raise InputError(f"{unit.saved_model} is a TF1 exporter SavedModel (input key inputs); validate reads TF2 "
                         "exports, and od-export verifies a TF1 export when it writes it")
    if unit.name in INPUT_TYPES:
        return [unit.name]
    if "input_tensor" not in inputs:
        raise InputError(
            f"{unit.saved_model} takes {', '.join(inputs) or 'no inputs'}, not input_tensor; it is not an OD API export"
        )
    dtype = inputs["input_tensor"].dtype.name
    return {"uint8": ["image_tensor"], "float32": ["float_image_tensor"]}.get(dtype, ["encoded_image_string_tensor", "tf_example"])


def input_type_of(signature: Any, unit_name: str) -> str:
    """The input type a SavedModel signature takes (its unit's name says it where the dtype does not)."""
    if unit_name in INPUT_TYPES:
        return unit_name
    dtype = signature.structured_input_signature[1]["input_tensor"].dtype.name
    return {"uint8": "image_tensor", "float32": "float_image_tensor"}.get(dtype, "encoded_image_string_tensor")


def run_reference(unit: Unit, signature_key: str, images: list[np.ndarray]) -> Reference:
    """Load the unit's SavedModel and run it on ``images``; find its input type if the name does not say."""
    tf = compat.import_tensorflow()
    function = load_signature(unit, signature_key)
    last_error: Exception | None = None
    for input_type in _input_type_candidates(unit, function):
        reference = Reference(unit, input_type, function, images, [])
        try:
            reference.outputs = [reference.run(image) for image in images]
            return reference
        except (tf.errors.InvalidArgumentError, ValueError) as exc:
            last_error = exc
    raise InputError(f"the SavedModel rejects every sample input ({last_error}); is it an OD API export?")
