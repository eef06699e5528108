"""A GraphDef as a dependency graph the output rule walks: who reads whom, and what data feeds it.

Data enters a TF1 graph through placeholders and through input pipelines: a queue's
dequeue (an Estimator's ``numpy_input_fn``) or a ``tf.data`` iterator's ``GetNext``
gives features and labels as separate outputs of one op.  So each output of such an op
is its own source here (``random_shuffle_queue_DequeueMany:1``), and the features can be
told from the labels.  Reads protos only.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

#: Ops whose outputs are separate streams of data (features, labels).
PIPELINE_OPS = frozenset({"QueueDequeueV2", "QueueDequeueManyV2", "QueueDequeueUpToV2", "QueueDequeue",
                          "QueueDequeueMany", "QueueDequeueUpTo", "IteratorGetNext", "IteratorGetNextSync",
                          "IteratorGetNextAsOptional"})
#: Ops whose value is a shape, not the data: what reads only these does not depend on the data's values.
SHAPE_OPS = frozenset({"Shape", "ShapeN", "Size", "Rank", "VariableShape", "TensorArraySizeV3"})
VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})
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



def is_training_node(node: Any, excluded: frozenset[str] = frozenset()) -> bool:
    """Whether ``node`` can only be part of training, saving or bookkeeping (never an inference output)."""
    return (node.op in NON_OUTPUT_OPS or bool(_UPDATE_OP.match(node.op)) or bool(TRAINING_SCOPE.match(node.name))
            or node.name in excluded)


def node_of(input_name: str) -> str:
    return input_name.lstrip("^").split(":")[0]


def output_index(input_name: str) -> int:
    _, _, index = input_name.lstrip("^").partition(":")
    return int(index) if index.isdigit() else 0


def shape_of(node: Any, index: int = 0) -> list[int | None] | None:
    """A node's output shape from its ``shape`` attribute or the ``_output_shapes`` TF recorded, else None.

    Graphs written by TF 1.1 and earlier leave a placeholder's ``shape`` empty, which
    reads as a scalar; ``_output_shapes`` is preferred where it is present.
    """
    shapes = node.attr["_output_shapes"].list.shape if "_output_shapes" in node.attr else []
    if len(shapes) > index:
        proto = shapes[index]
    elif node.op in PIPELINE_OPS and "output_shapes" in node.attr and len(_declared(node)) > index:
        proto = _declared(node)[index]
    elif index == 0 and "shape" in node.attr and node.attr["shape"].HasField("shape"):
        proto = node.attr["shape"].shape
    else:
        return None
    if proto.unknown_rank:
        return None
    return [None if d.size < 0 else int(d.size) for d in proto.dim]


def _declared(node: Any) -> Any:
    return node.attr["output_shapes"].list.shape


def scalar_or_unknown(node: Any) -> bool:
    shape = shape_of(node)
    return shape is None or len(shape) == 0


def walk(roots: Iterable[str], neighbours: Callable[[str], Iterable[str]]) -> set[str]:
    """``roots`` and everything reachable from them through ``neighbours`` (cycles included)."""
    seen = set(roots)
    stack = list(seen)
    while stack:
        for name in neighbours(stack.pop()):
            if name not in seen:
                seen.add(name)
                stack.append(name)
    return seen


class GraphIndex:
    """Nodes, data edges and consumers of a GraphDef; pipeline outputs are sources of their own."""

    def __init__(self, graph_def: Any) -> None:
        self.nodes = {n.name: n for n in graph_def.node}
        pipelines = {name for name, n in self.nodes.items() if n.op in PIPELINE_OPS}
        self.sources: dict[str, Any] = {}  # "pipeline:i" → its op
        self.inputs: dict[str, list[str]] = {}
        self.consumers: dict[str, list[str]] = {name: [] for name in self.nodes}
        self.controlling: set[str] = set()
        for node in graph_def.node:
            data = []
            for name in node.input:
                if name.startswith("^"):
                    self.controlling.add(node_of(name))
                    continue
                source = node_of(name)
                if source in pipelines:
                    source = f"{source}:{output_index(name)}"
                    self.sources[source] = self.nodes[node_of(name)]
                    self.consumers.setdefault(source, [])
                data.append(source)
                self.consumers.setdefault(source, []).append(node.name)
            self.inputs[node.name] = data
        self._reach: dict[str, set[str]] = {}

    def descendants(self, roots: set[str]) -> set[str]:
        """Everything computed from ``roots`` (cycles of while loops included)."""
        return walk(roots, lambda name: self.consumers.get(name, []))

    def ancestors(self, name: str) -> set[str]:
        """Everything ``name`` is computed from (data edges)."""
        return walk({name}, lambda current: self.inputs.get(current, []))

    def reach(self, source: str) -> set[str]:
        if source not in self._reach:
            self._reach[source] = self.descendants({source})
        return self._reach[source]

    def value_descendants(self, roots: set[str]) -> set[str]:
        """What depends on the *values* of ``roots``: a shape op passes on only the shape."""
        return walk(roots, lambda name: [c for c in self.consumers.get(name, []) if self.nodes[c].op not in SHAPE_OPS])

    def op(self, name: str) -> str:
        node = self.nodes.get(name)
        return node.op if node is not None else "pipeline"

    def shape(self, name: str) -> list[int | None] | None:
        if name in self.sources:
            return shape_of(self.sources[name], output_index(name))
        return shape_of(self.nodes[name])


_GENERATED = re.compile(r"_\d+$")
#: Names TensorFlow's Python functions give by default (``tf.random_normal``, ``tf.to_float``, …).
_LIBRARY_NAMES = frozenset({
    "tofloat", "toint32", "toint64", "todouble", "randomnormal", "randomuniform", "truncatednormal", "zeros", "ones",
    "zeroslike", "oneslike", "fill", "range", "stack", "unstack", "concat", "gather", "dropout", "mean", "sum", "max",
    "min", "prod", "softmaxcrossentropywithlogits", "softmaxcrossentropywithlogitssg", "logloss", "meansquarederror",
    "sparsesoftmaxcrossentropywithlogits", "sigmoidcrossentropywithlogits", "l2loss", "batchnorm", "moments", "cond",
    "while", "map", "exponentialdecay", "clipbyvalue", "l2normalize", "flatten", "dense", "conv2d", "maxpooling2d",
    "batchnormalization", "add", "sub", "mul", "truediv", "div", "floordiv", "pow", "neg", "stridedslice", "sigmoid",
    "softmax", "relu", "tanh", "elu", "selu", "expanddims", "squeeze", "transpose", "reshape", "transposenhwc",
    "pack", "unpack", "identity", "placeholder", "placeholderwithdefault", "cast", "matmul", "biasadd", "maxpool",
    "avgpool", "lrn", "argmax", "argmin", "equal", "notequal", "select", "selectv2", "where", "tensordot", "einsum",
})


def auto_named(node: Any) -> bool:
    """Whether TensorFlow made the name (``Softmax``, ``ArgMax_1``, ``add``, ``strided_slice_3``, ``ToFloat``)."""
    base = _GENERATED.sub("", node.name.rsplit("/", 1)[-1]).lower().replace("_", "")
    op = node.op.lower()
    prefix = len(base) >= 3 and op.startswith(base)  # "add" for AddV2, "concat" for ConcatV2
    return base == op or prefix or base in _LIBRARY_NAMES
