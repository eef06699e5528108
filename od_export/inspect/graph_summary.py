"""GraphDef / SignatureDef → plain dictionaries for ``od-export inspect``.

Reads protos only; nothing is imported into a TensorFlow graph, so a graph that
cannot run here (custom ops, another TF version) can still be inspected.  The same
output discovery picks what ``od-export freeze`` keeps from a TF1 training graph.
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
    "AssignAdd", "AssignSub", "AssignAddVariableOp", "AssignSubVariableOp", "ZerosLike", "OnesLike",
    # shape checks left over from a loss or an assertion are metadata, never a model's result
    "Shape", "ShapeN", "Size", "Rank",
    # summaries, TensorBoard's writers and input queues belong to training
    "MergeSummary", "ScalarSummary", "HistogramSummary", "ImageSummary", "AudioSummaryV2", "TensorSummaryV2",
    "WriteSummary", "WriteScalarSummary", "WriteHistogramSummary", "WriteImageSummary", "FlushSummaryWriter",
    "CreateSummaryFileWriter", "SummaryWriter", "QueueEnqueueV2", "QueueEnqueueManyV2", "QueueCloseV2",
    "QueueSizeV2", "FIFOQueueV2", "RandomShuffleQueueV2", "PaddingFIFOQueueV2",
})
_VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})
#: Op families that update state (optimizer steps, scatter updates): training, never inference.
_UPDATE_OP = re.compile(r"^(Resource)?(Apply|SparseApply|Scatter)")
#: Name scopes that only training builds (the saver's restore ops, gradients, optimizer slots, initialisers).
_TRAINING_SCOPE = re.compile(r"^(save(_\d+)?|gradients(_\d+)?|init(_\d+)?|report_uninitialized_variables(_\d+)?)(/|$)")
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


def is_training_node(node: Any, excluded: frozenset[str] = frozenset()) -> bool:
    """Whether ``node`` can only be part of training, saving or bookkeeping (never an inference output)."""
    return (node.op in NON_OUTPUT_OPS or bool(_UPDATE_OP.match(node.op)) or bool(_TRAINING_SCOPE.match(node.name))
            or node.name in excluded)


def likely_output_nodes(graph_def: Any, excluded: frozenset[str] = frozenset()) -> list[Any]:
    """Nodes that nothing consumes and that are not training bookkeeping, sorted by name.

    ``excluded`` adds names a graph declares as training-only (a meta graph's
    ``train_op`` and ``summaries`` collections).
    """
    consumed = {_source_node(i) for node in graph_def.node for i in node.input}
    variables = {n.name for n in graph_def.node if n.op in _VARIABLE_OPS}
    leaves = [n for n in graph_def.node if n.name not in consumed and not is_training_node(n, excluded)
              and not _reads_variable_only(n, variables)]
    return sorted(leaves, key=lambda n: n.name)


def _reads_variable_only(node: Any, variables: set[str]) -> bool:
    """A variable's ``read`` identity that nothing uses (an optimizer slot's, typically)."""
    return node.op == "Identity" and len(node.input) == 1 and _source_node(node.input[0]) in variables


def input_nodes(graph_def: Any) -> list[Any]:
    """The placeholders a user feeds (the saver's filename placeholder is not one)."""
    return [n for n in graph_def.node
            if n.op in ("Placeholder", "PlaceholderWithDefault") and not _TRAINING_SCOPE.match(n.name)]


def describe_node(node: Any) -> dict[str, Any]:
    return {"name": node.name, "tensor": f"{node.name}:0", "op": node.op, "dtype": _node_dtype(node),
            "shape": _node_shape(node)}


#: Meta graph collections whose members only training runs.
TRAINING_COLLECTIONS = ("train_op", "summaries", "update_ops", "init_op", "local_init_op", "ready_op")


def training_names(meta_graph: Any) -> frozenset[str]:
    """Node names a TF1 meta graph's collections declare as training-only (``train_op``, ``summaries``, …)."""
    names = set()
    for key in TRAINING_COLLECTIONS:
        if key in meta_graph.collection_def:
            names.update(_source_node(n) for n in meta_graph.collection_def[key].node_list.value)
    return frozenset(names)


def summarize_graph(graph_def: Any, excluded: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Node count, op histogram, inputs (placeholders) and likely outputs (unconsumed nodes)."""
    inputs = [{k: v for k, v in describe_node(n).items() if k != "op"} for n in input_nodes(graph_def)]
    outputs = [describe_node(n) for n in likely_output_nodes(graph_def, excluded)]
    histogram = Counter(node.op for node in graph_def.node)
    return {
        "node_count": len(graph_def.node),
        "function_count": len(graph_def.library.function),
        "op_histogram": dict(histogram.most_common()),
        "inputs": inputs,
        "likely_outputs": outputs,
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
