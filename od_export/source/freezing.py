"""Serving function → frozen GraphDef whose inputs and outputs are easy to address.

``convert_variables_to_constants_v2`` folds the weights into constants, but leaves the
outputs named ``Identity``, ``Identity_1``, … (alphabetical by output key, so the
same key has different names for different architectures) and leaves dozens of
``unused_control_flow_input_N`` placeholders that tools treating every placeholder
as an input trip over.  Here every output also gets a node named by its signature
key (``detection_boxes:0``), the graph is pruned to what those outputs need, and
any placeholder that is not a signature input is an error rather than a surprise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from od_export import compat
from od_export.errors import ExportFailed
from od_export.source.tracing import tensor_spec_description


@dataclass
class FrozenGraph:
    graph_def: Any
    io_spec: dict[str, Any]


def node_name(tensor_name: str) -> str:
    """``"Identity_1:0"`` → ``"Identity_1"``."""
    return tensor_name.split(":")[0]


def _output_node_name(key: str, taken: set[str]) -> str:
    if key not in taken:
        return key
    return f"outputs/{key}"  # a graph node already uses the key itself


def freeze_function(concrete: Any, signature_key: str = "serving_default", lower_control_flow: bool = True) -> FrozenGraph:
    """Freeze ``concrete`` in memory (no SavedModel round trip) and describe its I/O.

    Control flow is lowered to TF1's ``Enter``/``Exit`` frames by default, which every
    TF1-era tool reads; converters (tf2onnx) want it functional (``lower_control_flow=False``).
    """
    tf = compat.import_tensorflow()
    graph_def, input_names, output_tensors = _variables_to_constants(concrete, lower_control_flow)
    taken = {node.name for node in graph_def.node}

    outputs = concrete.structured_outputs
    keys = sorted(outputs)  # tf.nest order of a dict: sorted keys, as in concrete.outputs
    output_entries = {}
    for key, tensor in zip(keys, output_tensors):
        output_name = _output_node_name(key, taken)
        node = graph_def.node.add()
        node.op = "Identity"
        node.name = output_name
        node.input.append(node_name(tensor.name) if tensor.name.endswith(":0") else tensor.name)
        node.attr["T"].type = tensor.dtype.as_datatype_enum
        output_entries[key] = {
            "tensor": f"{output_name}:0",
            "alias": tensor.name,
            **tensor_spec_description(outputs[key]),
        }

    input_entries = _input_entries(concrete, input_names)
    kept = [node_name(entry[field]) for entry in output_entries.values() for field in ("tensor", "alias")]
    graph_def = tf.compat.v1.graph_util.extract_sub_graph(graph_def, kept)
    _check_placeholders(graph_def, {node_name(entry["tensor"]) for entry in input_entries.values()})
    io_spec = {
        "signature_key": signature_key,
        "inputs": input_entries,
        "outputs": output_entries,
        "node_count": len(graph_def.node),
    }
    return FrozenGraph(graph_def, io_spec)


def _variables_to_constants(concrete: Any, lower_control_flow: bool) -> tuple[Any, list[str], list[Any]]:
    """GraphDef with variables folded in, its input tensor names, and the output tensors.

    ``convert_variables_to_constants_v2`` spends most of its time wrapping the GraphDef
    back into a ConcreteFunction that we would only turn into a GraphDef again; its
    first two steps give the GraphDef directly.  Should those private helpers move in
    a later TensorFlow, the public function is used instead.
    """
    tf = compat.import_tensorflow()
    from tensorflow.python.framework import convert_to_constants

    user_inputs = [t for t in concrete.inputs if t.dtype != tf.resource]
    try:
        data = convert_to_constants._FunctionConverterDataInEager(
            func=concrete, lower_control_flow=lower_control_flow, aggressive_inlining=False
        )
        graph_def, _ = convert_to_constants._replace_variables_by_constants(converter_data=data)
        return graph_def, [t.name for t in user_inputs], list(concrete.outputs)
    except AttributeError:
        frozen = convert_to_constants.convert_variables_to_constants_v2(concrete, lower_control_flow=lower_control_flow)
        inputs = [t.name for t in frozen.inputs if t.dtype != tf.resource]
        return frozen.graph.as_graph_def(), inputs, list(frozen.outputs)


def _input_entries(concrete: Any, input_names: list[str]) -> dict[str, Any]:
    args, kwargs = concrete.structured_input_signature
    specs = list(args) + list(kwargs.values())
    return {spec.name: {"tensor": name, **tensor_spec_description(spec)} for spec, name in zip(specs, input_names)}


def _check_placeholders(graph_def: Any, inputs: set[str]) -> None:
    extra = sorted(n.name for n in graph_def.node if n.op in ("Placeholder", "PlaceholderWithDefault") and n.name not in inputs)
    if extra:
        raise ExportFailed(
            f"the frozen graph still has placeholders that are not signature inputs ({', '.join(extra[:5])}); "
            "please report this with your pipeline.config"
        )
