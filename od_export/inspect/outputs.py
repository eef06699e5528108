"""Which nodes of a TF1 graph are its inference inputs and outputs: the rule ``freeze`` and ``inspect`` share.

A TF1 training graph ends in much that is not inference: the loss, metrics such as
accuracy, the optimizer, savers and summaries, and shape helpers the losses build.
Taking the nodes nothing consumes (what people do by eye in TensorBoard) picks the loss
and the accuracy, and keeps the labels placeholder as a required input.  The rule:

0. **What the author declared comes first:** a ``signature_def`` in the ``.meta``, or
   the CloudML-era ``inputs``/``outputs`` collections of JSON, are used as they are.
1. **Inference view.** Training switches are held still and untaken ``tf.cond``
   branches removed (:mod:`od_export.inspect.switches`).
2. **Losses** are where backpropagation starts (the forward nodes with a
   ``gradients/<name>_grad`` scope none of whose consumers has one), and the members of
   the ``losses`` collection.
3. **Data** comes from placeholders and from each output of an input pipeline's dequeue
   or iterator.  A source is a **model input** when some node combines it, and no other
   source, with a variable's value (``MatMul(X, W)``); **labels** are the other
   sources a loss reads, which meet the variables only after they have met an input
   (``Y_ * log(Y)``).
4. Everything computed from labels or a loss is *tainted*: losses, metrics and their
   summaries are never outputs.  Nor is what only computes a shape (``Shape`` → ``Slice``
   → ``concat``, as a loss's reshapes do): an output depends on the input's values and,
   where the graph has variables, on the variables' values.
5. An **output** is such a node that no untainted node consumes.  Where it only exists
   to feed a loss or a metric (an unnamed ``Log`` of the probabilities, the ``ArgMax``
   that accuracy compares), the rule steps back to what it reads.  A node the author
   named that no learned op follows is an output too (``Y`` and ``prediction =
   argmax(Y)``); when the author named outputs, unnamed leftovers inside a library's name
   scope (a loop's unused ``Exit``) are not outputs.

The result is ambiguous when it holds several unnamed nodes that do not lie on one
chain and the graph's saver keeps them all (a notebook that built the model twice
saves only the copy its saver was made for); the message then ranks them,
probabilities and logits first, with their shapes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from od_export.errors import option
from od_export.inspect.graph_index import (TRAINING_SCOPE, VARIABLE_OPS, GraphIndex, auto_named, is_training_node,
                                           node_of, walk)
from od_export.inspect.switches import Fold

_GRADIENT_SCOPE = re.compile(r"^gradients(_\d+)?/(.+)_grad/")
#: Unnamed ops that, just before a loss or a metric, only reshape what the model computed for it.
_LOSS_HELPERS = frozenset({"Log", "Log1p", "LogSoftmax", "ArgMax", "ArgMin", "Cast", "Neg", "Square", "Sqrt", "Abs",
                           "Maximum", "Minimum", "ClipByValue", "Identity", "Equal", "NotEqual", "Reshape", "Squeeze"})
_COMPARISON_OPS = frozenset({"Sub", "SquaredDifference", "Mul", "Equal", "NotEqual"})
_ARITHMETIC = frozenset({"Add", "AddV2", "Sub", "Mul", "RealDiv", "Div", "Maximum", "Minimum"})
_PROBABILITY_OPS = frozenset({"Softmax", "Sigmoid"})
_LOGIT_OPS = frozenset({"BiasAdd", "Add", "AddV2", "MatMul"})


@dataclass(frozen=True)
class Candidate:
    name: str
    op: str
    shape: list[int | None] | None
    named: bool

    def describe(self) -> str:
        shape = "?" if self.shape is None else "[" + ",".join("?" if d is None else str(d) for d in self.shape) + "]"
        return f"{self.name} ({self.op} {shape})"


@dataclass(frozen=True)
class Discovery:
    outputs: tuple[str, ...]
    losses: tuple[str, ...]
    labels: tuple[str, ...]
    ambiguous: bool
    #: Model inputs (placeholders and pipeline outputs such as ``dequeue:1``).
    inputs: tuple[str, ...] = ()
    #: The candidates, best first, when ambiguous.
    ranked: tuple[Candidate, ...] = ()
    #: Placeholders held still for inference.
    folds: tuple[Fold, ...] = ()
    #: Where declared outputs came from (``signature_def serving_default``), else None.
    declared: str | None = None
    #: Declared signature keys → tensor names, when declared.
    declared_inputs: dict[str, str] = field(default_factory=dict)
    declared_outputs: dict[str, str] = field(default_factory=dict)


def ambiguity_message(found: Discovery) -> str:
    listed = "; ".join(c.describe() for c in found.ranked) or ", ".join(found.outputs)
    return (f"the inference outputs are ambiguous: candidates, most likely first: {listed}; name the ones you want "
            f"with {option('output_nodes')}")


class _Rule:
    """One graph's classification of nodes (see the module docstring)."""

    def __init__(self, graph_def: Any, excluded: frozenset[str], losses: frozenset[str] | None) -> None:
        self.graph = graph = GraphIndex(graph_def)
        self.training = {name for name, n in graph.nodes.items() if is_training_node(n, excluded)}
        self.bookkeeping = {name for name, n in graph.nodes.items()
                            if TRAINING_SCOPE.match(name) or name in excluded or "Summary" in n.op}
        self.losses = sorted((losses if losses is not None else loss_roots(graph)) & set(graph.nodes))
        variables = {name for name, n in graph.nodes.items() if n.op in VARIABLE_OPS}
        self.reads = {c for v in variables for c in graph.consumers.get(v, [])
                      if graph.nodes[c].op in ("Identity", "ReadVariableOp")}
        self.learned = graph.value_descendants(variables) if variables else None
        self.sources = [name for name, n in graph.nodes.items()
                        if n.op == "Placeholder" and not TRAINING_SCOPE.match(name)]
        self.sources += sorted(graph.sources)
        self.inputs = [s for s in self.sources if self._is_input(s)]
        read_by_loss = {s for s in self.sources if any(loss in graph.reach(s) for loss in self.losses)}
        self.labels = sorted(s for s in read_by_loss if s not in self.inputs and not self._known_scalar(s)) \
            if self.inputs else []
        self.tainted = graph.descendants(set(self.labels) | set(self.losses))
        fed = set(self.inputs or self.sources)
        self.data = graph.value_descendants(fed) if fed else None
        self.reached = graph.descendants(fed) if fed else None
        if self.losses:
            self.tainted |= graph.descendants(self._targets())

    def _targets(self) -> set[str]:
        """Where the model's value meets a target that is not a labels source (see the module docstring)."""
        learned = self.learned or set()
        targets = set()
        for name in learned:
            node = self.graph.nodes.get(name)
            if node is None or node.op not in _COMPARISON_OPS:
                continue
            others = [i for i in self.graph.inputs.get(name, []) if i not in learned]
            if any(self._baked(o) for o in others) or (others and self.reached and self._loss_only(name)
                                                       and any(o in self.reached for o in others)):
                targets.add(name)
        return targets

    def _baked(self, name: str) -> bool:
        """A constant of more than one element (labels saved into the graph), or what reads only such."""
        node = self.graph.nodes.get(name)
        while node is not None and node.op in ("ArgMax", "Cast", "Identity", "Reshape") and node.input:
            node = self.graph.nodes.get(node_of(node.input[0]))
        return node is not None and node.op == "Const" and _elements(node) > 1

    def _loss_only(self, name: str) -> bool:
        """Everything ``name`` feeds ends in a loss (an autoencoder's reconstruction term)."""
        after = self.graph.descendants({name})
        ends = [n for n in after if not [c for c in self.graph.consumers.get(n, []) if c not in self.bookkeeping]]
        return bool(ends) and all(n in self.losses or n in self.training for n in ends)

    def _known_scalar(self, source: str) -> bool:
        shape = self.graph.shape(source)
        return shape is not None and len(shape) == 0

    def _is_input(self, source: str) -> bool:
        """Some node combines this source alone with a variable's value."""
        learned = self.learned or set()
        graph = self.graph
        return any(n in learned and all(n not in graph.reach(other) for other in self.sources if other != source)
                   for n in graph.reach(source) if n not in self.training)

    def eligible(self, name: str) -> bool:
        """Untainted inference computed from the data's values (and the variables'); by mere reach if named."""
        if name not in self.graph.nodes or name in self.tainted or name in self.training or name in self.reads:
            return False
        if not auto_named(self.graph.nodes[name]):
            return self.reached is None or name in self.reached
        return (self.data is None or name in self.data) and (self.learned is None or name in self.learned)

    def final(self, name: str) -> bool:
        """Nothing but losses, metrics and training bookkeeping reads it."""
        return name not in self.graph.controlling and all(
            c in self.tainted or c in self.bookkeeping for c in self.graph.consumers.get(name, []))

    def step_back(self, name: str, via_helper: bool = False) -> list[str]:
        """``name``, or for an unnamed helper that only feeds a loss or metric, what it reads (recursively)."""
        node = self.graph.nodes[name]
        feeds_loss = via_helper or any(c in self.tainted for c in self.graph.consumers.get(name, []))
        if not (feeds_loss and auto_named(node) and (node.op in _LOSS_HELPERS or self._constant_step(name))):
            return [name]
        sources = [s for s in self.graph.inputs.get(name, []) if self.eligible(s)]
        return [o for s in sources for o in self.step_back(s, True)] or [name]

    def reduces_batch(self, name: str) -> bool:
        """A scalar computed from batched inputs: a mean over the batch (a loss term, a metric), not a result."""
        shape = self.graph.shape(name)
        if shape is None or len(shape) > 0 or not self.inputs or not self.losses:
            return False
        return all((s := self.graph.shape(i)) is not None and len(s) > 0 for i in self.inputs)

    def _constant_step(self, name: str) -> bool:
        """An arithmetic op with a constant operand (``Y + 1e-7``, ``1 - Y``) before a loss."""
        if self.graph.nodes[name].op not in _ARITHMETIC:
            return False
        return any(self.graph.op(i) == "Const" for i in self.graph.inputs.get(name, []))

    def last_learned(self, name: str) -> frozenset[str]:
        """The learned ops nearest upstream of ``name`` (itself if it is one)."""
        found, seen, stack = set(), {name}, [name]
        while stack:
            current = stack.pop()
            sources = self.graph.inputs.get(current, [])
            if set(sources) & self.reads:
                found.add(current)
                continue
            for source in sources:
                if source not in seen and self.eligible(source):
                    seen.add(source)
                    stack.append(source)
        return frozenset(found)

    def heads(self, outputs: set[str]) -> set[str]:
        """Named nodes that lead to an output with no learned op after them (``Y`` before ``argmax(Y)``)."""
        heads = set()
        for name, node in self.graph.nodes.items():
            if name in outputs or auto_named(node) or not self.eligible(name):
                continue
            after = self.graph.descendants({name}) - {name}
            downstream = {n for n in after if self.eligible(n)}
            if downstream & outputs and not any(set(self.graph.inputs.get(n, [])) & self.reads for n in downstream):
                heads.add(name)
        return heads


def loss_roots(graph: GraphIndex) -> frozenset[str]:
    """The forward nodes with a ``gradients/<name>_grad`` scope that no other such node is computed from.

    Not every op between two such nodes has a gradient scope of its own (an ``If``'s
    outputs pass through ``Identity`` ops that have none), so "computed from" follows
    whole paths, not only direct consumers.
    """
    forward = {m.group(2) for name in graph.nodes if (m := _GRADIENT_SCOPE.match(name))} & set(graph.nodes)
    upstream = walk({i for f in forward for i in graph.inputs.get(f, [])}, lambda name: graph.inputs.get(name, []))
    return frozenset(forward - upstream)


def discover_outputs(graph_def: Any, excluded: frozenset[str] = frozenset(),
                     losses: frozenset[str] | None = None, unsaved: frozenset[str] = frozenset()) -> Discovery:
    """The inference outputs of ``graph_def`` by the module's rule.

    ``excluded``: names declared training-only; ``losses``: the losses, when found on
    the training graph before its untaken branches were removed (else found here);
    ``unsaved``: variables the graph's saver does not save.  Among ambiguous outputs,
    those that read such a variable cannot be what the checkpoint was saved for.
    """
    rule = _Rule(graph_def, excluded, losses)
    graph = rule.graph
    candidates = [n for n in graph.nodes if rule.eligible(n) and rule.final(n) and not rule.reduces_batch(n)]
    found = {o for n in candidates for o in rule.step_back(n)}
    found |= rule.heads(found)
    named = {o for o in found if not auto_named(graph.nodes[o])}
    preferred = {o for o in named if "/" not in o} or named
    if preferred:  # the author's names (top-level ones first), and unnamed top-level results beside them
        found = preferred | {o for o in found if "/" not in o}
    found = {o for o in found if o in named or not graph.descendants({o}) & (found - {o})}
    outputs = sorted(found)
    ambiguous = _ambiguous(rule, outputs)
    restorable = [o for o in outputs if not graph.ancestors(o) & unsaved]
    if ambiguous and restorable and len(restorable) < len(outputs):
        outputs = restorable
        ambiguous = _ambiguous(rule, outputs)
    ranked = tuple(sorted((_candidate(graph, o) for o in outputs), key=_rank)) if ambiguous else ()
    return Discovery(tuple(outputs), tuple(rule.losses), tuple(rule.labels), ambiguous, tuple(rule.inputs), ranked)


def _elements(node: Any) -> int:
    count = 1
    for dim in node.attr["value"].tensor.tensor_shape.dim:
        count *= max(dim.size, 0)
    return count


def _candidate(graph: GraphIndex, name: str) -> Candidate:
    node = graph.nodes[name]
    return Candidate(name, node.op, graph.shape(name), not auto_named(node))


def _rank(candidate: Candidate) -> tuple[int, int, str]:
    kind = 0 if candidate.op in _PROBABILITY_OPS else 1 if candidate.op in _LOGIT_OPS else 2
    return (0 if candidate.named else 1, kind, candidate.name)


def _ambiguous(rule: _Rule, outputs: list[str]) -> bool:
    """Several outputs, some unnamed, that are not one chain (none feeds the others)."""
    graph = rule.graph
    if len(outputs) < 2 or all(not auto_named(graph.nodes[o]) for o in outputs):
        return False
    downstream = {o: graph.descendants({o}) for o in outputs}
    if any(all(other in downstream[o] for other in outputs if other != o) for o in outputs):
        return False
    learned = {rule.last_learned(o) for o in outputs}
    return rule.learned is None or len(learned) != 1  # several views of one learned op are one head


def likely_output_nodes(graph_def: Any, excluded: frozenset[str] = frozenset()) -> list[Any]:
    """The nodes :func:`discover_outputs` finds, sorted by name."""
    nodes = {n.name: n for n in graph_def.node}
    return [nodes[name] for name in discover_outputs(graph_def, excluded).outputs]
