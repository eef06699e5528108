"""GraphDef / SignatureDef → plain dictionaries for ``od-export inspect``.

Reads protos only; nothing is imported into a TensorFlow graph, so a graph that
cannot run here (custom ops, another TF version) can still be inspected.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any

from od_export import compat

#: Ops that end a chain without being a model output (savers, initialisers, checks).
NON_OUTPUT_OPS = frozenset({
    "NoOp", "Assert", "Const", "Placeholder", "PlaceholderWithDefault", "SaveV2", "RestoreV2", "Save", "Restore",
    "SaveSlices", "RestoreSlice", "MergeV2Checkpoints", "ShardedFilename", "StringJoin", "Assign", "AssignVariableOp",
    "VarHandleOp", "VariableV2", "Variable", "VarIsInitializedOp", "IsVariableInitialized", "ReadVariableOp",
})
_SAVER_SCOPE = re.compile(r"^save(_\d+)?/")
_DTYPE_ATTRS = ("T", "dtype", "out_type", "DstT", "output_type")


def dtype_name(enum_value: int) -> str:
    tf = compat.import_tensorflow()
    try:
        return tf.as_dtype(enum_value).name
    except TypeError:
        return f"dtype({enum_value})"


def shape_list(shape_proto: Any) -> list[int | None] | None:
    if shape_proto.unknown_rank:
        return None
    return [None if d.size < 0 else int(d.size) for d in shape_proto.dim]


def _node_dtype(node: Any) -> str | None:
    for attr in _DTYPE_ATTRS:
        if attr in node.attr and node.attr[attr].type:
            return dtype_name(node.attr[attr].type)
    return None


def _node_shape(node: Any) -> list[int | None] | None:
    if "shape" in node.attr and node.attr["shape"].HasField("shape"):
        return shape_list(node.attr["shape"].shape)
    if "_output_shapes" in node.attr and node.attr["_output_shapes"].list.shape:
        return shape_list(node.attr["_output_shapes"].list.shape[0])
    return None


def _source_node(input_name: str) -> str:
    return input_name.lstrip("^").split(":")[0]


def summarize_graph(graph_def: Any) -> dict[str, Any]:
    """Node count, op histogram, inputs (placeholders) and likely outputs (unconsumed nodes)."""
    consumed = {_source_node(i) for node in graph_def.node for i in node.input}
    inputs = [
        {"name": n.name, "tensor": f"{n.name}:0", "dtype": _node_dtype(n), "shape": _node_shape(n)}
        for n in graph_def.node if n.op in ("Placeholder", "PlaceholderWithDefault")
    ]
    outputs = [
        {"name": n.name, "tensor": f"{n.name}:0", "op": n.op, "dtype": _node_dtype(n), "shape": _node_shape(n)}
        for n in graph_def.node
        if n.name not in consumed and n.op not in NON_OUTPUT_OPS and not _SAVER_SCOPE.match(n.name)
    ]
    histogram = Counter(node.op for node in graph_def.node)
    return {
        "node_count": len(graph_def.node),
        "function_count": len(graph_def.library.function),
        "op_histogram": dict(histogram.most_common()),
        "inputs": inputs,
        "likely_outputs": sorted(outputs, key=lambda o: o["name"]),
    }


def _tensor_info(info: Any) -> dict[str, Any]:
    return {"tensor": info.name or None, "dtype": dtype_name(info.dtype), "shape": shape_list(info.tensor_shape)}


def summarize_signatures(meta_graph: Any) -> dict[str, Any]:
    """Signature name → inputs/outputs with tensor names, dtypes and shapes."""
    signatures = {}
    for key in sorted(meta_graph.signature_def):
        signature = meta_graph.signature_def[key]
        signatures[key] = {
            "method": signature.method_name,
            "inputs": {k: _tensor_info(v) for k, v in sorted(signature.inputs.items())},
            "outputs": {k: _tensor_info(v) for k, v in sorted(signature.outputs.items())},
        }
    return signatures
