"""A TF1 ``.meta`` → its inference inputs and outputs: what the author declared, else the output rule.

``freeze`` and ``inspect`` both call :func:`discover_meta`, so ``inspect`` on a ``.meta``
shows what ``freeze`` would keep.  Reads protos only.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from od_export.inspect.graph_index import TRAINING_SCOPE, VARIABLE_OPS, GraphIndex, node_of, walk
from od_export.inspect.outputs import Discovery, discover_outputs, loss_roots
from od_export.inspect.switches import fold, training_switches

#: Meta graph collections whose members only training runs.
TRAINING_COLLECTIONS = ("train_op", "summaries", "update_ops", "init_op", "local_init_op", "ready_op")
#: CloudML-era collections: each member a JSON object of alias → tensor name.
_DECLARED_COLLECTIONS = ("inputs", "outputs")


def training_names(meta_graph: Any) -> frozenset[str]:
    """Node names a TF1 meta graph's collections declare as training-only (``train_op``, ``summaries``, …)."""
    names = set()
    for key in TRAINING_COLLECTIONS:
        if key in meta_graph.collection_def:
            names.update(node_of(n) for n in meta_graph.collection_def[key].node_list.value)
    return frozenset(names)


def _collection_tensors(meta_graph: Any, key: str) -> list[str]:
    if key not in meta_graph.collection_def:
        return []
    collection = meta_graph.collection_def[key]
    if collection.HasField("node_list"):
        return list(collection.node_list.value)
    return []


def declared_losses(meta_graph: Any) -> frozenset[str]:
    return frozenset(node_of(name) for name in _collection_tensors(meta_graph, "losses"))


def _json_collection(meta_graph: Any, key: str) -> dict[str, str]:
    if key not in meta_graph.collection_def or not meta_graph.collection_def[key].HasField("bytes_list"):
        return {}
    found: dict[str, str] = {}
    for raw in meta_graph.collection_def[key].bytes_list.value:
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            return {}
        found.update({str(k): v for k, v in value.items()})
    return found


def declared_signature(meta_graph: Any) -> tuple[str, dict[str, str], dict[str, str]] | None:
    """(where, inputs, outputs) the author declared: a ``signature_def``, else ``inputs``/``outputs`` JSON."""
    signatures = meta_graph.signature_def
    key = "serving_default" if "serving_default" in signatures else (sorted(signatures)[0] if signatures else None)
    if key is not None and signatures[key].outputs:
        signature = signatures[key]
        return (f"signature_def {key}", {k: v.name for k, v in signature.inputs.items()},
                {k: v.name for k, v in signature.outputs.items()})
    inputs, outputs = (_json_collection(meta_graph, k) for k in _DECLARED_COLLECTIONS)
    if outputs:
        return "the inputs/outputs collections", inputs, outputs
    return None


def _orphans(graph_def: Any, view: Any) -> frozenset[str]:
    """Nodes left with no consumer because everything that read them was in an untaken branch."""
    if len(view.node) == len(graph_def.node):
        return frozenset()
    def inference_readers(graph: Any) -> dict[str, list[str]]:  # gradients and savers do not count
        return {name: [r for r in readers if not TRAINING_SCOPE.match(r)]
                for name, readers in GraphIndex(graph).consumers.items()}

    before, after = inference_readers(graph_def), inference_readers(view)
    orphaned = {name for name in after if not after[name] and before.get(name)}
    changed = True
    while changed:
        changed = False
        for name, readers in after.items():
            if name not in orphaned and readers and all(r in orphaned for r in readers):
                orphaned.add(name)
                changed = True
    return frozenset(orphaned)


def unsaved_variables(meta_graph: Any) -> frozenset[str]:
    """Variables the graph's saver does not restore (empty when the graph has no saver to read)."""
    graph = GraphIndex(meta_graph.graph_def)
    restore = node_of(meta_graph.saver_def.restore_op_name) if meta_graph.HasField("saver_def") else ""
    if restore not in graph.nodes:
        return frozenset()
    def upstream(name: str) -> list[str]:  # stop at each restore assign: its first input is a saved variable
        node = graph.nodes[name]
        if node.op in ("Assign", "AssignVariableOp"):
            return []
        return [node_of(i) for i in node.input if node_of(i) in graph.nodes]

    reached = walk({restore}, upstream)
    saved = {node_of(graph.nodes[n].input[0]) for n in reached
             if graph.nodes[n].op in ("Assign", "AssignVariableOp") and graph.nodes[n].input}
    variables = {name for name, n in graph.nodes.items() if n.op in VARIABLE_OPS}
    return frozenset(variables - saved) if saved else frozenset()


def inference_view(meta_graph: Any) -> tuple[Any, list[Any]]:
    """The graph with training switches held still and untaken branches removed, and the folds left in it."""
    graph_def = meta_graph.graph_def
    folds = training_switches(graph_def, lambda name: bool(TRAINING_SCOPE.match(name)))
    view = fold(graph_def, folds)
    kept = {n.name for n in view.node}
    return view, [f for f in folds if f.name in kept]


def discover_meta(meta_graph: Any) -> Discovery:
    """The inference inputs and outputs of a TF1 meta graph (see the module docstring)."""
    view, folds = inference_view(meta_graph)
    declared = declared_signature(meta_graph)
    if declared is not None:
        where, inputs, outputs = declared
        return Discovery(tuple(sorted({node_of(t) for t in outputs.values()})), (), (), False,
                         tuple(sorted({node_of(t) for t in inputs.values()})), folds=tuple(folds), declared=where,
                         declared_inputs=inputs, declared_outputs=outputs)
    excluded = training_names(meta_graph) | _orphans(meta_graph.graph_def, view)
    losses = loss_roots(GraphIndex(meta_graph.graph_def)) | declared_losses(meta_graph)
    found = discover_outputs(view, excluded, losses, unsaved_variables(meta_graph))
    return replace(found, folds=tuple(folds))
