"""GraphDef / SignatureDef → plain dictionaries for ``od-export inspect``.

Reads protos only; nothing is imported into a TensorFlow graph, so a graph that
cannot run here (custom ops, another TF version) can still be inspected.  The same
output discovery picks what ``od-export freeze`` keeps from a TF1 training graph.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

from od_export import compat
from od_export.errors import InputError, OdExportError
from od_export.layout import IO_SPEC_NAME
from od_export.inspect.meta_discovery import TRAINING_COLLECTIONS, discover_meta, training_names  # noqa: F401
from od_export.inspect.graph_index import TRAINING_SCOPE
from od_export.inspect.outputs import Discovery, discover_outputs

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


def input_nodes(graph_def: Any) -> list[Any]:
    """The placeholders a user feeds (the saver's filename placeholder is not one)."""
    return [n for n in graph_def.node
            if n.op in ("Placeholder", "PlaceholderWithDefault") and not TRAINING_SCOPE.match(n.name)]


def describe_node(node: Any) -> dict[str, Any]:
    return {"name": node.name, "tensor": f"{node.name}:0", "op": node.op, "dtype": _node_dtype(node),
            "shape": _node_shape(node)}


def summarize_graph(graph_def: Any, excluded: frozenset[str] = frozenset(),
                    found: Discovery | None = None) -> dict[str, Any]:
    """Node count, op histogram, inputs (placeholders) and likely outputs (see :mod:`od_export.inspect.outputs`)."""
    found = found or discover_outputs(graph_def, excluded)
    nodes = {n.name: n for n in graph_def.node}
    inputs = [{k: v for k, v in describe_node(n).items() if k != "op"} for n in input_nodes(graph_def)]
    histogram = Counter(node.op for node in graph_def.node)
    report = {
        "node_count": len(graph_def.node),
        "function_count": len(graph_def.library.function),
        "op_histogram": dict(histogram.most_common()),
        "inputs": inputs,
        "likely_outputs": [describe_node(nodes[name]) for name in found.outputs],
    }
    if found.losses or found.labels:
        report["training_only"] = {"losses": list(found.losses), "labels": list(found.labels)}
    if found.ambiguous:
        ranked = "; ".join(c.describe() for c in found.ranked)
        report["outputs_note"] = (f"ambiguous: {ranked} do not lie on one chain and nobody named "
                                  "them; freezing needs them named as output nodes")
    return report


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


def read_graph_def(path: Any) -> Any:
    from od_export.verify import samples

    try:
        return samples.load_graph_def(path)
    except OdExportError:
        raise
    except Exception as exc:  # DecodeError / ParseError: not a GraphDef
        raise InputError(f"{path} is not a GraphDef ({' '.join(str(exc).split())[:200]})") from exc


def describe_graph_file(path: Any) -> dict[str, Any]:
    """A .pb/.pbtxt graph summarised, with the io_spec.json od-export writes beside it."""
    report = summarize_graph(read_graph_def(path))
    spec_path = path.parent / IO_SPEC_NAME
    if spec_path.is_file():
        report["io_spec"] = json.loads(spec_path.read_text(encoding="utf-8"))
    return report


def summarize_meta(meta_graph: Any) -> dict[str, Any]:
    """A TF1 meta graph's summary with the inputs and outputs ``od-export freeze`` would choose."""
    found = discover_meta(meta_graph)
    report = summarize_graph(meta_graph.graph_def, found=found)
    nodes = {n.name: n for n in meta_graph.graph_def.node}
    if found.declared:
        report["outputs_declared_by"] = found.declared
        report["likely_outputs"] = [{"key": k, "tensor": t} for k, t in sorted(found.declared_outputs.items())]
    report["inference_inputs"] = [describe_node(nodes[name]) if name in nodes else {"tensor": name, "op": "pipeline"}
                                  for name in found.inputs]
    if found.folds:
        report["held_for_inference"] = [f.describe() for f in found.folds]
    return report
