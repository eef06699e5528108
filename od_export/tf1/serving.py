"""A frozen GraphDef → a SavedModel with a Predict signature that TF Serving and ``saved_model_cli`` load.

This replaces the TF1 recipe of ``SavedModelBuilder`` plus a hand-written
``SignatureDef``.  The frozen graph holds no variables, so the SavedModel holds none
either: it is the graph and one ``serving_default`` signature whose keys name the
graph's tensors.  An optional front end takes JPEG/PNG bytes instead of pixels: it
decodes each image, resizes it (bilinear) to the placeholder's size, maps 0..255 to
the range the graph expects, and feeds the result where the image placeholder was.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from od_export import compat
from od_export.errors import InputError, option

#: The signature key (and placeholder name) of the front end's input: base64 in TF Serving's REST API.
ENCODED_INPUT_KEY = "image_bytes"
IMAGE_DTYPES = ("uint8", "float32")


@dataclass(frozen=True)
class EncodedFrontEnd:
    """Decode-and-resize in front of the image placeholder ``image_key`` (an input key)."""

    image_key: str
    height: int
    width: int
    channels: int
    dtype: str
    value_range: tuple[float, float] = (0.0, 255.0)


def encoded_front_end(inputs: dict[str, dict[str, Any]], value_range: tuple[float, float]) -> EncodedFrontEnd:
    """The front end for the one image placeholder among ``inputs`` (rank 4, known size, 1 or 3 channels)."""
    def is_image(spec: dict[str, Any]) -> bool:
        shape = spec["shape"]
        return (spec["dtype"] in IMAGE_DTYPES and shape is not None and len(shape) == 4
                and shape[1] is not None and shape[2] is not None and shape[3] in (1, 3))

    images = [key for key, spec in inputs.items() if is_image(spec)]
    if len(images) != 1:
        described = ", ".join(f"{k} {v['dtype']} {v['shape']}" for k, v in inputs.items()) or "none"
        raise InputError(f"an encoded-image input needs exactly one image input of known size (rank 4, height and "
                         f"width set, 1 or 3 channels, uint8 or float32); the graph's inputs are: {described}; "
                         f"leave out {option('encoded_image_input')}")
    spec = inputs[images[0]]
    _, height, width, channels = spec["shape"]
    return EncodedFrontEnd(images[0], height, width, channels, spec["dtype"], value_range)


def _decode_and_resize(front: EncodedFrontEnd) -> tuple[Any, Any]:
    """The string placeholder and the image batch it decodes to, in the current graph."""
    tf = compat.import_tensorflow()
    encoded = tf.compat.v1.placeholder(tf.string, [None], name=ENCODED_INPUT_KEY)

    def one(data: Any) -> Any:
        image = tf.io.decode_image(data, channels=front.channels, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), (front.height, front.width))
        low, high = front.value_range
        if front.dtype == "uint8":
            return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
        return image * ((high - low) / 255.0) + low

    dtype = tf.uint8 if front.dtype == "uint8" else tf.float32
    images = tf.map_fn(one, encoded, fn_output_signature=tf.TensorSpec([front.height, front.width, front.channels], dtype))
    return encoded, images


def write_predict_saved_model(graph_def: Any, inputs: dict[str, str], outputs: dict[str, str], directory: Path,
                              front: EncodedFrontEnd | None = None) -> dict[str, str]:
    """Write ``directory`` with ``serving_default`` mapping each key to its tensor; return the input map used."""
    tf = compat.import_tensorflow()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        input_map = {}
        signature_inputs = dict(inputs)
        if front is not None:
            encoded, images = _decode_and_resize(front)
            input_map[signature_inputs.pop(front.image_key)] = images
            signature_inputs = {ENCODED_INPUT_KEY: encoded.name, **signature_inputs}
        v1.import_graph_def(case_distinct(graph_def, {t.split(":")[0] for t in [*inputs.values(), *outputs.values()]}),
                            input_map=input_map, name="")
        signature = v1.saved_model.predict_signature_def(
            inputs={k: graph.get_tensor_by_name(t) for k, t in signature_inputs.items()},
            outputs={k: graph.get_tensor_by_name(t) for k, t in outputs.items()})
        builder = v1.saved_model.Builder(str(directory))
        with v1.Session(graph=graph) as session:
            builder.add_meta_graph_and_variables(session, [v1.saved_model.tag_constants.SERVING],
                                                 signature_def_map={"serving_default": signature},
                                                 strip_default_attrs=True)
        builder.save()
    return signature_inputs


def case_distinct(graph_def: Any, keep: set[str]) -> Any:
    """A copy whose node names differ in more than case (TF 0.12 made both ``Add`` and ``add``).

    TensorFlow 2 loads a SavedModel into a graph whose names are unique ignoring case,
    so one of two such nodes would be renamed and a signature naming it would break.
    Names in ``keep`` (the signature's) stay; the others get a suffix.
    """
    taken: dict[str, str] = {}
    for node in sorted(graph_def.node, key=lambda n: n.name not in keep):
        taken.setdefault(node.name.lower(), node.name)
    clashes = {n.name for n in graph_def.node if taken[n.name.lower()] != n.name}
    if not clashes:
        return graph_def
    lowered = set(taken)
    renamed = {}
    for name in sorted(clashes):
        index = 1
        while f"{name}_{index}".lower() in lowered:
            index += 1
        renamed[name] = f"{name}_{index}"
        lowered.add(renamed[name].lower())
    copy = type(graph_def).FromString(graph_def.SerializeToString())
    for node in copy.node:
        node.name = renamed.get(node.name, node.name)
        for position, name in enumerate(node.input):
            control, rest = ("^", name[1:]) if name.startswith("^") else ("", name)
            base, colon, index_text = rest.partition(":")
            if base in renamed:
                node.input[position] = f"{control}{renamed[base]}{colon}{index_text}"
    return copy
