"""A TF1 training graph as inference runs it: training switches folded, untaken branches gone.

Training scripts feed switches that inference must hold still:

- a ``placeholder_with_default`` becomes its default;
- a **keep probability**: a float placeholder, scalar or of unknown shape, that is mixed
  with random noise (``floor(keep + uniform)``, or ``uniform >= 1 - keep``) becomes 1.0;
  one mixed with the noise directly as a rate (``uniform >= rate``) becomes 0.0; so does
  a keep probability written into the graph as a constant (``tf.nn.dropout(h, 0.5)``,
  which would otherwise drop units at inference too);
- an **is-training switch**: a bool placeholder that chooses a ``tf.cond`` branch
  (a ``Switch`` predicate, an ``If`` condition) becomes False.

With its predicate constant, a V1 ``Switch`` sends its input down one branch only: the
other branch is dead (TensorFlow never runs it), so it is removed, with whatever only it
read (the batch statistics a training-time batch norm computes, the moving-average
updates).  A V2 ``If`` on a constant becomes a call of the branch it takes.  Reads protos
only, so ``inspect`` and ``freeze`` see the same graph.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from od_export.inspect.graph_index import node_of, scalar_or_unknown, walk

_FLOAT_TYPES = frozenset({1, 2, 19})  # DT_FLOAT, DT_DOUBLE, DT_HALF
_BOOL = 10
RANDOM_OPS = frozenset({"RandomUniform", "RandomStandardNormal", "TruncatedNormal", "StatelessRandomUniformV2",
                         "RandomUniformInt", "StatelessRandomUniform"})
_COMPARISONS = frozenset({"GreaterEqual", "Greater", "Less", "LessEqual"})
_PASS_THROUGH = frozenset({"Identity", "Cast", "Sub", "Reshape", "ExpandDims", "Squeeze", "LogicalNot"})


@dataclass(frozen=True)
class Fold:
    """A placeholder held at ``value`` for inference, and why."""

    name: str
    value: float | bool | None  # None: the placeholder's own default
    reason: str

    def describe(self) -> str:
        held = "its default" if self.value is None else repr(self.value)
        return f"{self.name} = {held} ({self.reason})"


def training_switches(graph_def: Any, model_scope: Any) -> list[Fold]:
    """The placeholders inference holds still (see the module docstring); ``model_scope``: names to skip."""
    consumers = _consumers(graph_def)
    nodes = {n.name: n for n in graph_def.node}
    noise = walk({n.name for n in graph_def.node if n.op in RANDOM_OPS}, lambda name: consumers.get(name, []))
    folds = []
    for node in graph_def.node:
        if node.op == "PlaceholderWithDefault" and not model_scope(node.name):
            folds.append(Fold(node.name, None, "placeholder with a default"))
        elif node.op == "Const" and not model_scope(node.name) and _float_scalar_constant(node):
            value = _dropout_value(node.name, nodes, consumers, noise, direct=True)
            if value is not None:
                folds.append(Fold(node.name, value, "dropout keep probability fixed in the graph" if value
                                  else "dropout rate fixed in the graph"))
        elif node.op != "Placeholder" or model_scope(node.name) or not scalar_or_unknown(node):
            continue
        elif node.attr["dtype"].type == _BOOL and _chooses_branch(node.name, nodes, consumers):
            folds.append(Fold(node.name, False, "is-training switch of a tf.cond"))
        elif node.attr["dtype"].type in _FLOAT_TYPES:
            value = _dropout_value(node.name, nodes, consumers, noise)
            if value is not None:
                folds.append(Fold(node.name, value, "dropout keep probability" if value else "dropout rate"))
    return folds


def _float_scalar_constant(node: Any) -> bool:
    tensor = node.attr["value"].tensor
    return node.attr["dtype"].type in _FLOAT_TYPES and not tensor.tensor_shape.dim


def _consumers(graph_def: Any) -> dict[str, list[str]]:
    consumers: dict[str, list[str]] = {}
    for node in graph_def.node:
        for name in node.input:
            consumers.setdefault(node_of(name), []).append(node.name)
    return consumers


def _chooses_branch(name: str, nodes: dict[str, Any], consumers: dict[str, list[str]]) -> bool:
    """Whether the bool placeholder ``name`` (through identities and negations) is a cond's predicate."""
    frontier, seen = [name], {name}
    while frontier:
        current = frontier.pop()
        for consumer in consumers.get(current, []):
            node = nodes[consumer]
            data = [node_of(i) for i in node.input if not i.startswith("^")]
            if node.op == "Switch" and len(data) > 1 and data[1] == current:
                return True
            if node.op in ("If", "StatelessIf") and data and data[0] == current:
                return True
            if node.op in ("Identity", "LogicalNot") and consumer not in seen:
                seen.add(consumer)
                frontier.append(consumer)
    return False


def _dropout_value(name: str, nodes: dict[str, Any], consumers: dict[str, list[str]], noise: set[str],
                   direct: bool = False) -> float | None:
    """1.0 for a keep probability, 0.0 for a rate, None when ``name`` is not mixed with random noise.

    Followed through pass-through ops; a ``Sub`` with the placeholder as its second
    operand (``1 - keep``) turns a keep probability into a rate.  ``direct``: only where
    ``name`` itself meets the noise (a constant, not the ``1`` of ``1 - keep``).
    """
    frontier: list[tuple[str, bool]] = [(name, False)]
    seen = {name}
    while frontier:
        current, flipped = frontier.pop()
        for consumer in consumers.get(current, []):
            node = nodes[consumer]
            data = [node_of(i) for i in node.input if not i.startswith("^")]
            others = [d for d in data if d != current]
            mixes = any(o in noise for o in others) and not _inside_random_scope(consumer, nodes)
            floored = node.op in ("Add", "AddV2") and any(nodes[c].op == "Floor" for c in consumers.get(consumer, []))
            if mixes and (node.op in _COMPARISONS or floored):
                is_rate = node.op in _COMPARISONS and not flipped
                return 0.0 if is_rate else 1.0
            if node.op in _PASS_THROUGH and consumer not in seen and not direct:
                seen.add(consumer)
                negates = node.op == "Sub" and len(data) == 2 and data[1] == current
                frontier.append((consumer, flipped != negates))
    return None


def _inside_random_scope(name: str, nodes: dict[str, Any]) -> bool:
    """Part of building a random value itself (``random_normal = mul + mean``), not a use of one."""
    scopes = {n.rsplit("/", 1)[0] for n, node in nodes.items() if node.op in RANDOM_OPS and "/" in n}
    return any(name == scope or name.startswith(scope + "/") for scope in scopes)


def fold(graph_def: Any, folds: list[Fold]) -> Any:
    """A copy of ``graph_def`` with each fold applied and the untaken branches removed."""
    from od_export import compat

    tf = compat.import_tensorflow()
    view = type(graph_def).FromString(graph_def.SerializeToString())
    by_name = {f.name: f for f in folds}
    for node in view.node:
        held = by_name.get(node.name)
        if held is None:
            continue
        dtype = node.attr["dtype"].type
        if node.op == "Const":
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(held.value, dtype=tf.as_dtype(dtype)))
            continue
        if held.value is None:  # PlaceholderWithDefault → Identity of its default
            node.op = "Identity"
            for attr in ("dtype", "shape"):
                del node.attr[attr]
            node.attr["T"].type = dtype
            continue
        node.op = "Const"
        for attr in list(node.attr):
            if attr != "dtype":
                del node.attr[attr]
        del node.input[:]
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(held.value, dtype=tf.as_dtype(dtype)))
    return remove_dead_branches(view)


def _constant(view_nodes: dict[str, Any], tensor: str) -> bool | None:
    """The value of a bool scalar constant behind identities, else None."""
    node = view_nodes.get(node_of(tensor))
    flip = False
    while node is not None and node.op in ("Identity", "LogicalNot"):
        flip ^= node.op == "LogicalNot"
        node = view_nodes.get(node_of(node.input[0])) if node.input else None
    if node is None or node.op != "Const" or node.attr["dtype"].type != _BOOL:
        return None
    tensor_proto = node.attr["value"].tensor
    values = list(tensor_proto.bool_val)
    if len(values) != 1 or tensor_proto.tensor_shape.dim:
        return None
    return values[0] != flip


def remove_dead_branches(view: Any) -> Any:
    """Switches on constants and what only their untaken side feeds: removed (see the module docstring)."""
    nodes = {n.name: n for n in view.node}
    dead_tensors: set[str] = set()  # "switch:k" outputs that never carry a value
    live_switch: dict[str, str] = {}  # switch name → its data input
    for node in view.node:
        if node.op == "Switch" and len(node.input) > 1 and (value := _constant(nodes, node.input[1])) is not None:
            dead_tensors.add(f"{node.name}:{0 if value else 1}")
            live_switch[node.name] = node.input[0]
        elif node.op in ("If", "StatelessIf") and node.input and (value := _constant(nodes, node.input[0])) is not None:
            _call_branch(node, value)
    dead = _dead_nodes(view, dead_tensors)
    kept = [n for n in view.node if n.name not in dead]
    for node in kept:
        _rewire(node, live_switch, dead)
    del view.node[:]
    view.node.extend(n for n in kept if n.name not in live_switch)
    return view


def _is_dead(node: Any, dead: set[str], dead_tensors: set[str]) -> bool:
    inputs = [i for i in node.input]
    reaches = [i in dead_tensors or f"{i}:0" in dead_tensors or node_of(i) in dead for i in inputs]
    if node.op == "Merge":
        data = [r for i, r in zip(inputs, reaches) if not i.startswith("^")]
        return bool(data) and all(data)
    return any(reaches)


def _dead_nodes(view: Any, dead_tensors: set[str]) -> set[str]:
    if not dead_tensors:
        return set()
    dead: set[str] = set()
    changed = True
    while changed:  # a fixpoint: graphs are not always in topological order
        changed = False
        for node in view.node:
            if node.name not in dead and _is_dead(node, dead, dead_tensors):
                dead.add(node.name)
                changed = True
    return dead


def _rewire(node: Any, live_switch: dict[str, str], dead: set[str]) -> None:
    """Inputs from a folded switch read its data instead; a merge of one live input becomes an identity."""
    rewired = []
    for name in node.input:
        control = name.startswith("^")
        source = node_of(name)
        if source in dead or (control and source in live_switch):
            continue
        rewired.append(live_switch.get(source, name))
    del node.input[:]
    node.input.extend(rewired)
    if node.op == "Merge":
        data = [i for i in node.input if not i.startswith("^")]
        if len(data) == 1:
            node.op = "Identity"
            if "N" in node.attr:
                del node.attr["N"]


def _call_branch(node: Any, value: bool) -> None:
    """``If(const, args)`` → a call of the branch it takes with ``args``."""
    branch = node.attr["then_branch" if value else "else_branch"].func
    node.op = "StatefulPartitionedCall" if node.op == "If" else "PartitionedCall"
    node.input.pop(0)
    node.attr["f"].func.CopyFrom(branch)
    for attr in ("then_branch", "else_branch", "Tcond", "output_shapes", "_lower_using_switch_merge",
                 "_read_only_resource_inputs"):
        if attr in node.attr:
            del node.attr[attr]
    node.attr["config"].s = b""
    node.attr["config_proto"].s = b""
    node.attr["executor_type"].s = b""
