"""A restored TF1 training graph → its frozen inference graph: outputs chosen, switches held, variables folded.

The outputs are the discovered ones (:mod:`od_export.inspect.meta_discovery`) or the
ones named.  Freezing works on the inference view of the graph (training switches
held still, untaken ``tf.cond`` branches gone, so no assign op of a training branch is
left to fail); an input pipeline's output the model reads (a queue's dequeue, an
iterator's ``GetNext``) becomes a placeholder of its dtype and shape.  Only what the
outputs need is kept, and every variable becomes a constant.  A TensorFlow error is one
line naming the node.
"""
from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from od_export import compat
from od_export.errors import CheckpointError, ExportFailed, InputError, option
from od_export.inspect.graph_index import PIPELINE_OPS, node_of, output_index, shape_of
from od_export.inspect.outputs import Discovery
from od_export.tf1.meta_graph import RestoredGraph


@dataclass(frozen=True)
class Choice:
    """The output tensors, whether they were discovered, and the discovery they came from."""

    outputs: list[str]
    discovered: bool
    discovery: Discovery


def choose_outputs(restored: RestoredGraph, requested: tuple[str, ...]) -> Choice:
    """The requested outputs (checked) or the discovered ones."""
    from od_export.inspect.meta_discovery import discover_meta
    from od_export.inspect.outputs import ambiguity_message

    found = discover_meta(restored.meta_graph_def)
    names = [n.name for n in restored.meta_graph_def.graph_def.node]
    if requested:
        known = set(names)
        for name in requested:
            if node_of(name) not in known:
                raise InputError(_unknown_node_message(name, names))
            _check_output_index(restored.graph, name)
        return Choice([name if ":" in name else f"{name}:0" for name in requested], False, found)
    if not found.outputs:
        raise InputError(f"found no inference outputs in {len(names)} nodes; name them with {option('output_nodes')}")
    if found.ambiguous:
        raise InputError(ambiguity_message(found))
    if found.declared:
        return Choice(sorted(set(found.declared_outputs.values())), True, found)
    return Choice([f"{name}:0" for name in found.outputs], True, found)


def _check_output_index(graph: Any, name: str) -> None:
    node, _, index = name.partition(":")
    count = len(graph.get_operation_by_name(node).outputs)
    if index and (not index.isdigit() or int(index) >= count):
        raise InputError(f"output {name!r}: node {node} has {count} output(s), {node}:0 to {node}:{count - 1}; "
                         "name one of them")


def _unknown_node_message(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(node_of(name), names, n=5, cutoff=0.6)
    hint = f"closest names: {', '.join(close)}" if close else "see `od-export inspect` on the .meta for its nodes"
    return f"output node {name!r} is not in the graph; {hint}"


@dataclass
class Frozen:
    graph_def: Any
    inputs: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    folded_defaults: list[str]
    #: Frozen graph input tensor → the training graph's tensor it stands for (a pipeline output).
    stands_for: dict[str, str] = field(default_factory=dict)
    #: Training graph placeholder → the value inference holds it at (fed to the reference run).
    held: dict[str, Any] = field(default_factory=dict)
    #: One line per held switch, for the log and io_spec.json.
    held_lines: list[str] = field(default_factory=list)
    #: Random op output → one fixed draw, fed to every run that is compared (a VAE samples at inference).
    draws: dict[str, Any] = field(default_factory=dict)


def _tensor_description(tensor: Any) -> dict[str, Any]:
    shape = None if tensor.shape.rank is None else [None if d is None else int(d) for d in tensor.shape.as_list()]
    return {"tensor": tensor.name, "dtype": tensor.dtype.name, "shape": shape}


def _input_description(tensor: Any) -> dict[str, Any]:
    """An input's dtype and shape; a placeholder saved without a shape gets the one its first reader implies."""
    described = _tensor_description(tensor)
    if described["shape"] is None:
        implied = _implied_shape(tensor)
        if implied is not None:
            described.update(shape=implied, shape_from=tensor.consumers()[0].type)
    return described


def _implied_shape(tensor: Any) -> list[int | None] | None:
    """``MatMul(x, W)`` implies x is ``[batch, rows of W]``; ``Reshape(x, [-1, 28, 28, 1])`` implies its shape."""
    tf = compat.import_tensorflow()
    for op in tensor.consumers():
        if op.type == "MatMul" and op.inputs[0] is tensor and not op.get_attr("transpose_a"):
            weights = op.inputs[1].shape
            inner = weights[1] if op.get_attr("transpose_b") else weights[0]
            if inner is not None:
                return [None, int(inner)]
        if op.type == "Reshape" and op.inputs[0] is tensor:
            target = tf.get_static_value(op.inputs[1])
            if target is not None and list(target).count(-1) <= 1:
                return [None if int(d) == -1 else int(d) for d in target]
    return None


def signature_key(tensor_name: str) -> str:
    """``classes:0`` → ``classes``; ``split:1`` → ``split_1`` (a SignatureDef key per tensor)."""
    node, _, index = tensor_name.partition(":")
    return node if index in ("", "0") else f"{node}_{index}"


def freeze(restored: RestoredGraph, choice: Choice) -> Frozen:
    """Variables folded into constants, pruned to the outputs, switches held, pipelines made placeholders."""
    from od_export.inspect.switches import fold

    tf = compat.import_tensorflow()
    folds = list(choice.discovery.folds)
    view = fold(restored.graph.as_graph_def(), folds)
    for node in view.node:
        if node.op == "Variable":  # TF 0.12's variable op, which the converter no longer knows: the same op
            node.op = "VariableV2"
    stands_for = _pipelines_to_placeholders(view, restored.graph)
    keep = sorted({node_of(name) for name in choice.outputs})
    _check_restored(restored, view, keep)
    with tensorflow_errors("freezing"):
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(restored.session, view, keep)
        frozen = tf.compat.v1.graph_util.extract_sub_graph(frozen, keep)
    inputs = {}
    for node in frozen.node:
        if node.op != "Placeholder":
            continue
        tensor = f"{node.name}:0"
        if tensor in stands_for:
            inputs[signature_key(tensor)] = {"tensor": tensor, "dtype": tf.as_dtype(node.attr["dtype"].type).name,
                                             "shape": shape_of(node), "stands_for": stands_for[tensor]}
        else:
            inputs[signature_key(tensor)] = _input_description(restored.graph.get_tensor_by_name(tensor))
    described = {signature_key(name): _tensor_description(restored.graph.get_tensor_by_name(name))
                 for name in choice.outputs}
    held = {f"{f.name}:0": f.value for f in folds if f.value is not None}
    defaults = sorted(f.name for f in folds if f.value is None)
    used = {spec["tensor"] for spec in inputs.values()}
    return Frozen(frozen, inputs, described, defaults, {k: v for k, v in stands_for.items() if k in used},
                  held, [f.describe() for f in folds], _random_draws(frozen, restored.graph))


def _random_draws(graph_def: Any, graph: Any) -> dict[str, Any]:
    """One fixed value per random op left on the inference path whose shape is known."""
    import numpy as np

    from od_export.inspect.switches import RANDOM_OPS

    rng = np.random.default_rng(0)
    draws = {}
    for node in graph_def.node:
        if node.op not in RANDOM_OPS:
            continue
        tensor = graph.get_tensor_by_name(f"{node.name}:0")
        if not tensor.shape.is_fully_defined():
            continue
        shape = tensor.shape.as_list()
        value = rng.uniform(size=shape) if "Uniform" in node.op else rng.normal(size=shape)
        draws[tensor.name] = value.astype(tensor.dtype.as_numpy_dtype)
    return draws


def _check_restored(restored: RestoredGraph, view: Any, keep: list[str]) -> None:
    """Every variable the outputs read holds a value from the checkpoint, else one line naming it."""
    tf = compat.import_tensorflow()
    needed = tf.compat.v1.graph_util.extract_sub_graph(view, keep)
    names = sorted(n.name for n in needed.node if n.op in ("VariableV2", "Variable"))
    if not names:
        return
    with restored.graph.as_default():
        checks = [tf.compat.v1.is_variable_initialized(restored.graph.get_tensor_by_name(f"{n}:0")) for n in names]
    missing = [n for n, ready in zip(names, restored.session.run(checks)) if not ready]
    if missing:
        raise CheckpointError(
            f"the checkpoint holds no value for {len(missing)} variable(s) the outputs {', '.join(keep)} read "
            f"({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''}): the graph's saver does not save them "
            f"and the checkpoint has no variable of that name; give the checkpoint that holds them, or name other "
            f"outputs with {option('output_nodes')}")


def _pipelines_to_placeholders(view: Any, graph: Any) -> dict[str, str]:
    """Each pipeline output the graph reads → a placeholder of its dtype and shape; placeholder → tensor."""
    nodes = {n.name: n for n in view.node}
    made: dict[str, str] = {}
    names = set(nodes)
    for node in list(view.node):
        for position, name in enumerate(node.input):
            source = nodes.get(node_of(name))
            if name.startswith("^") or source is None or source.op not in PIPELINE_OPS:
                continue
            tensor = f"{source.name}:{output_index(name)}"
            if tensor not in made:
                made[tensor] = _add_placeholder(view, source, graph.get_tensor_by_name(tensor), names)
            node.input[position] = made[tensor]
    return {f"{placeholder}:0": tensor for tensor, placeholder in made.items()}


def _add_placeholder(view: Any, source: Any, tensor: Any, names: set[str]) -> str:
    """A placeholder with the dtype and the shape TensorFlow infers for the pipeline output ``tensor``."""
    name = f"{source.name}_{tensor.value_index}"
    while name in names:
        name += "_input"
    names.add(name)
    placeholder = view.node.add(name=name, op="Placeholder")
    placeholder.attr["dtype"].type = tensor.dtype.as_datatype_enum
    placeholder.attr["shape"].shape.CopyFrom(tensor.shape.as_proto())
    return name


@contextlib.contextmanager
def tensorflow_errors(doing: str) -> Iterator[None]:
    """A TensorFlow error inside becomes one line (:func:`tensorflow_failure`), exit 1."""
    tf = compat.import_tensorflow()
    try:
        yield
    except (tf.errors.OpError, ValueError, KeyError) as exc:
        raise ExportFailed(tensorflow_failure(doing, exc)) from exc


def tensorflow_failure(doing: str, exc: Exception) -> str:
    """One line for a TensorFlow error: the node it names and what to do."""
    text = " ".join(str(getattr(exc, "message", exc)).split())
    node = getattr(getattr(exc, "op", None), "name", None)
    where = f" at node {node}" if node else ""
    return (f"TensorFlow failed {doing} the graph{where}: {text[:300]}; name the outputs you want with "
            f"{option('output_nodes')}, or check that the checkpoint holds every variable they read")
