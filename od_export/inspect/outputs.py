"""Which nodes of a TF1 graph are its inference outputs: the rule ``freeze`` and ``inspect`` share.

A TF1 training graph ends in much that is not inference: the loss, metrics such as
accuracy, the optimizer, savers and summaries.  Taking the nodes nothing consumes
(what people do by eye in TensorBoard) picks the loss and the accuracy, and keeps the
labels placeholder as a required input.  The rule here:

1. **Losses** are the nodes backpropagation starts from: the forward nodes that have a
   ``gradients/<name>_grad`` scope while none of their consumers has one.
2. **Labels** are the non-scalar placeholders a loss reads that are not model inputs.
   A placeholder is a model input when some node combines it, and no other
   placeholder, with a variable (``MatMul(X, W)``); a labels placeholder only meets
   the variables' values after they have been combined with an input
   (``Y_ * log(Y)``, ``argmax(Y_) == argmax(Y)``).  Scalar placeholders (a keep
   probability, a learning rate) are settings, never labels.
3. Everything that depends on a labels placeholder or on a loss is *tainted*: losses,
   metrics and their summaries are never outputs.
4. An **output** is an untainted node, not training bookkeeping, fed by a model input,
   that no untainted node consumes.  Where such a node only exists to feed a loss or
   a metric (an unnamed ``Log`` of the probabilities, the ``ArgMax`` that accuracy
   compares), the rule steps back to what it reads, so the result is the
   probabilities themselves.  Nodes the author named are kept as they are.

The result is ambiguous when it holds several unnamed nodes that do not lie on one
chain (two heads nobody named): then the caller lists them and asks for a choice.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from od_export.errors import option

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
#: Op families that update state (optimizer steps, scatter updates): training, never inference.
_UPDATE_OP = re.compile(r"^(Resource)?(Apply|SparseApply|Scatter)")
#: Name scopes that only training builds (the saver's restore ops, gradients, optimizer slots, initialisers).
TRAINING_SCOPE = re.compile(r"^(save(_\d+)?|gradients(_\d+)?|init(_\d+)?|report_uninitialized_variables(_\d+)?)(/|$)")


def source_node(input_name: str) -> str:
    return input_name.lstrip("^").split(":")[0]


def is_training_node(node: Any, excluded: frozenset[str] = frozenset()) -> bool:
    """Whether ``node`` can only be part of training, saving or bookkeeping (never an inference output)."""
    return (node.op in NON_OUTPUT_OPS or bool(_UPDATE_OP.match(node.op)) or bool(TRAINING_SCOPE.match(node.name))
            or node.name in excluded)


def likely_output_nodes(graph_def: Any, excluded: frozenset[str] = frozenset()) -> list[Any]:
    """The nodes :func:`discover_outputs` finds, sorted by name."""
    nodes = {n.name: n for n in graph_def.node}
    return [nodes[name] for name in discover_outputs(graph_def, excluded).outputs]


def ambiguity_message(found: Discovery) -> str:
    return (f"the inference outputs are ambiguous: candidates {', '.join(found.outputs)}; name the ones you want "
            f"with {option('output_nodes')}")


_GRADIENT_SCOPE = re.compile(r"^gradients(_\d+)?/(.+)_grad/")
_VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})
#: Unnamed ops that, just before a loss or a metric, only reshape what the model computed for it.
_LOSS_HELPERS = frozenset({"Log", "Log1p", "LogSoftmax", "ArgMax", "ArgMin", "Cast", "Neg", "Square", "Sqrt", "Abs",
                           "Maximum", "Minimum", "ClipByValue", "Identity", "Equal", "NotEqual", "Reshape", "Squeeze"})


@dataclass(frozen=True)
class Discovery:
    outputs: tuple[str, ...]
    losses: tuple[str, ...]
    labels: tuple[str, ...]
    ambiguous: bool


def auto_named(node: Any) -> bool:
    """Whether TensorFlow made the name from the op (``Softmax``, ``ArgMax_1``, ``add``, ``loss/Mean``)."""
    base = re.sub(r"_\d+$", "", node.name.rsplit("/", 1)[-1]).lower()
    op = node.op.lower()
    prefix = len(base) >= 3 and (op.startswith(base) or base.startswith(op))  # "add" for AddV2
    return base == op or prefix or base in {"add", "sub", "mul", "truediv", "div"}


class _Graph:
    def __init__(self, graph_def: Any, excluded: frozenset[str]) -> None:
        self.nodes = {n.name: n for n in graph_def.node}
        self.inputs = {n.name: [source_node(i) for i in n.input if not i.startswith("^")] for n in graph_def.node}
        self.consumers: dict[str, list[str]] = {name: [] for name in self.nodes}
        self.controlling: set[str] = set()  # nodes something waits for: bookkeeping, never a result
        for node in graph_def.node:
            for name in node.input:
                if name.startswith("^"):
                    self.controlling.add(source_node(name))
                else:
                    self.consumers.setdefault(source_node(name), []).append(node.name)
        self.training = {name for name, n in self.nodes.items() if is_training_node(n, excluded)}
        self.bookkeeping = {name for name, n in self.nodes.items()
                            if TRAINING_SCOPE.match(name) or name in excluded or "Summary" in n.op}
        self._reach: dict[str, set[str]] = {}

    def descendants(self, roots: set[str]) -> set[str]:
        """Everything computed from ``roots`` (cycles of while loops included)."""
        seen, stack = set(roots), list(roots)
        while stack:
            for consumer in self.consumers.get(stack.pop(), []):
                if consumer not in seen:
                    seen.add(consumer)
                    stack.append(consumer)
        return seen

    def reach(self, placeholder: str) -> set[str]:
        if placeholder not in self._reach:
            self._reach[placeholder] = self.descendants({placeholder})
        return self._reach[placeholder]

    def placeholders_of(self, name: str, placeholders: list[str]) -> frozenset[str]:
        return frozenset(p for p in placeholders if name in self.reach(p))

    def losses(self) -> list[str]:
        forward = {m.group(2) for name in self.nodes if (m := _GRADIENT_SCOPE.match(name))} & set(self.nodes)
        return sorted(n for n in forward if not any(c in forward for c in self.consumers.get(n, [])))


def _is_input(graph: _Graph, placeholder: str, placeholders: list[str], variables: set[str]) -> bool:
    """Some node combines this placeholder alone with a variable's value."""
    return any(n in variables and graph.placeholders_of(n, placeholders) == {placeholder}
               for n in graph.reach(placeholder) if n not in graph.training)


def _scalar(node: Any) -> bool:
    shape = node.attr["shape"].shape if "shape" in node.attr else None
    return shape is not None and not shape.unknown_rank and len(shape.dim) == 0


def discover_outputs(graph_def: Any, excluded: frozenset[str] = frozenset()) -> Discovery:
    """The inference outputs of ``graph_def`` by the module's rule; ``excluded``: names declared training-only."""
    graph = _Graph(graph_def, excluded)
    losses = graph.losses()
    placeholders = [name for name, n in graph.nodes.items() if n.op == "Placeholder" and not TRAINING_SCOPE.match(name)]
    variables = graph.descendants({name for name, n in graph.nodes.items() if n.op in _VARIABLE_OPS})
    read_by_loss = {p for p in placeholders if any(loss in graph.reach(p) for loss in losses)}
    inputs = {p for p in placeholders if _is_input(graph, p, placeholders, variables)}
    labels = sorted(p for p in read_by_loss if p not in inputs and not _scalar(graph.nodes[p])) if inputs else []
    tainted = graph.descendants(set(labels) | set(losses))
    fed = set().union(*(graph.reach(p) for p in inputs or placeholders)) if placeholders else None

    def eligible(name: str) -> bool:
        return (name not in tainted and name not in graph.training and not _variable_read(graph, name)
                and (fed is None or name in fed))

    def final(name: str) -> bool:  # nothing but losses, metrics and training bookkeeping reads it
        return name not in graph.controlling and all(
            c in tainted or c in graph.bookkeeping for c in graph.consumers.get(name, []))

    candidates = [n for n in graph.nodes if eligible(n) and final(n)]
    outputs = sorted({o for n in candidates for o in _step_back(graph, n, tainted, eligible)})
    return Discovery(tuple(outputs), tuple(losses), tuple(labels), _ambiguous(graph, outputs))


def _variable_read(graph: _Graph, name: str) -> bool:
    sources = graph.inputs.get(name, [])
    return graph.nodes[name].op == "Identity" and len(sources) == 1 and graph.nodes.get(sources[0]) is not None \
        and graph.nodes[sources[0]].op in _VARIABLE_OPS


def _step_back(graph: _Graph, name: str, tainted: set[str], eligible: Any) -> list[str]:
    """``name``, or for an unnamed helper that only feeds a loss or metric, what it reads (recursively)."""
    node = graph.nodes[name]
    feeds_loss = any(c in tainted for c in graph.consumers.get(name, []))
    if not (feeds_loss and node.op in _LOSS_HELPERS and auto_named(node)):
        return [name]
    sources = [s for s in graph.inputs.get(name, []) if s in graph.nodes and eligible(s)]
    return [o for s in sources for o in _step_back(graph, s, tainted, eligible)] or [name]


def _ambiguous(graph: _Graph, outputs: list[str]) -> bool:
    """Several outputs, some unnamed, that are not one chain (none feeds the others)."""
    if len(outputs) < 2 or all(not auto_named(graph.nodes[o]) for o in outputs):
        return False
    downstream = {o: graph.descendants({o}) for o in outputs}
    return not any(all(other in downstream[o] for other in outputs if other != o) for o in outputs)
