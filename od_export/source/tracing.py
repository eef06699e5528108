"""Detection model + input type → traced serving function.

The serving functions are the OD API exporter's own (``exporter_lib_v2``'s detection
modules), so inputs, preprocessing and outputs are exactly exporter_main_v2's.  What
changes is how they are traced: without autograph, which takes less than half the
time.  The detection code does its data-dependent control flow with TF ops
(``tf.map_fn``, ``tf.cond``), so autograph only re-writes Python it would run the same
way; a function that *does* rely on it fails to trace (a tensor used as a Python
bool), and we then fall back to the exporter's autograph tracing.  The no-autograph
path is only taken for meta-architectures whose parity with exporter_main_v2 the
test suite checks.
"""
from __future__ import annotations

import logging
import functools
from dataclasses import dataclass
from typing import Any

from od_export import compat
from od_export.errors import InputError
from od_export.options import SideInput

#: Meta-architectures whose autograph-free trace the tests compare with exporter_main_v2.
logger = logging.getLogger(__name__)

AUTOGRAPH_FREE_ARCHITECTURES = frozenset({"ssd", "faster_rcnn", "center_net"})


@dataclass
class TracedFunction:
    input_type: str
    module: Any  # the exporter's DetectionInferenceModule
    concrete: Any  # the ConcreteFunction that becomes the serving signature
    autograph: bool


def detection_module(model: Any, input_type: str, side_inputs: tuple[SideInput, ...] = ()) -> Any:
    od = compat.import_object_detection()
    tf = od.tf
    modules = od.exporter_lib_v2.DETECTION_MODULE_MAP
    if input_type not in modules:
        raise InputError(f"input type {input_type!r} is not supported by the installed OD API; choose from: {', '.join(modules)}")
    zipped = [(list(s.shape), tf.as_dtype(s.dtype), s.name) for s in side_inputs]
    try:
        return modules[input_type](model, bool(side_inputs), zipped)
    except AssertionError as exc:  # image_and_boxes_tensor asserts the model can predict masks
        raise InputError(f"input type {input_type} needs a model with predict_masks_from_boxes (a mask model)") from exc


def python_function(module: Any) -> Any:
    """The undecorated ``__call__`` of an exporter module, bound to the module."""
    function = module.__call__
    if "__call__" in vars(module):  # DetectionFromImageModule sets an instance attribute
        return function.python_function
    return functools.partial(type(module).__call__.python_function, module)


def batched_serving_function(model: Any) -> Any:
    """float images [B,H,W,3] → the exporter's outputs, without its per-image ``tf.map_fn``.

    The exporter preprocesses each image of the batch inside a ``tf.map_fn`` (images of
    one batch may differ in size), which converts to an ONNX ``Loop``.  At a static
    shape the model's own batched ``preprocess`` gives the same tensors with no loop;
    the rest is the exporter's own ``_run_inference_on_images`` (class offset, casts).
    """
    module = detection_module(model, "float_image_tensor")

    def serve(images: Any) -> dict[str, Any]:
        preprocessed, true_shapes = model.preprocess(images)
        return module._run_inference_on_images(preprocessed, true_shapes)

    return serve


def input_signature(module: Any, dynamic_batch: bool = False, shape: list[int] | None = None) -> list[Any]:
    """The exporter's input signature; with ``dynamic_batch``, image_tensor's batch of 1 opened to any size;
    with ``shape``, the image input fixed at that shape (a converter that needs static shapes).

    The exporter fixes ``image_tensor`` at a batch of 1 (``float_image_tensor`` and the
    string inputs already take any); its function maps over the batch either way.
    """
    tf = compat.import_tensorflow()
    signature = list(module.__call__.input_signature)
    first = signature[0]
    if shape is not None:
        signature[0] = tf.TensorSpec(shape, first.dtype, name=first.name)
    elif dynamic_batch and first.dtype == tf.uint8 and first.shape.rank == 4:
        signature[0] = tf.TensorSpec([None, *first.shape[1:]], first.dtype, name=first.name)
    return signature


def trace(module: Any, input_type: str, architecture: str, dynamic_batch: bool = False,
          shape: list[int] | None = None) -> TracedFunction:
    """Trace ``module`` without autograph where that is proven safe, else as the exporter does
    (``dynamic_batch`` and ``shape`` as :func:`input_signature` takes them)."""
    tf = compat.import_tensorflow()
    signature = input_signature(module, dynamic_batch, shape)
    if architecture in AUTOGRAPH_FREE_ARCHITECTURES:
        fast = tf.function(python_function(module), input_signature=signature, autograph=False)
        try:
            return TracedFunction(input_type, module, fast.get_concrete_function(), autograph=False)
        except (TypeError, ValueError, tf.errors.OperatorNotAllowedInGraphError) as exc:
            logger.debug(f"{input_type}: tracing without autograph failed ({exc}); using the exporter's tracing")
    exporter_function = module.__call__
    if dynamic_batch or shape is not None:
        exporter_function = tf.function(python_function(module), input_signature=signature)
    return TracedFunction(input_type, module, exporter_function.get_concrete_function(), autograph=True)


def tensor_spec_description(spec: Any) -> dict[str, Any]:
    """``{"dtype": "float32", "shape": [1, null, 4]}`` for a TensorSpec or tensor."""
    shape = spec.shape
    return {
        "dtype": spec.dtype.name,
        "shape": None if shape.rank is None else [d for d in shape.as_list()],
    }


def signature_description(concrete: Any) -> dict[str, Any]:
    """Inputs and outputs of a traced serving function, keyed like the SavedModel signature."""
    args, kwargs = concrete.structured_input_signature
    specs = list(args) + list(kwargs.values())
    inputs = {spec.name: tensor_spec_description(spec) for spec in specs}
    outputs = {key: tensor_spec_description(value) for key, value in sorted(concrete.structured_outputs.items())}
    return {"inputs": inputs, "outputs": outputs}
