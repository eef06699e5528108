"""Build the inference model from the config and restore it from the checkpoint, safely.

exporter_main_v2 restores *before* the model's variables exist, so a checkpoint of
another shape silently becomes the variable's initial value and the SavedModel it
writes cannot be loaded.  Here the variables are created first (by tracing), the
checkpoint's object graph is compared with the live model variable by variable, and
only a checkpoint that fits is restored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from od_export import compat
from od_export.errors import CheckpointError, ConfigError
from od_export.storage.location import AnyPath

if TYPE_CHECKING:
    from od_export.options import ExportOptions
    from od_export.source.tracing import TracedFunction

_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_VARIABLE_ATTRIBUTE = "VARIABLE_VALUE"


@dataclass(frozen=True)
class ShapeMismatch:
    path: str
    checkpoint_shape: tuple[int, ...]
    model_shape: tuple[int, ...]

    def describe(self) -> str:
        return f"{self.path}: checkpoint {self.checkpoint_shape} vs model {self.model_shape}"


@dataclass(frozen=True)
class CheckpointComparison:
    """How a checkpoint's ``model`` subtree lines up with the live model's variables."""

    matched: int
    mismatched: tuple[ShapeMismatch, ...]
    missing: tuple[str, ...]  # model variables the checkpoint has no value for
    unexpected: tuple[str, ...] = ()  # checkpoint variables under model/ the model does not have

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.missing


def build_model(config: Any) -> Any:
    """``model_builder.build(config.model, is_training=False)`` with build errors as ConfigError."""
    from od_export.source.build_paths import check_build_paths

    check_build_paths(config)
    od = compat.import_object_detection()
    try:
        return od.model_builder.build(config.model, is_training=False)
    except (ValueError, KeyError, TypeError, NotImplementedError, AttributeError) as exc:
        raise ConfigError(f"cannot build the model from pipeline config: {exc}") from exc


def create_variables(model: Any, config: Any) -> None:
    """Run the model once on zeros so that every variable exists (cheaper than a trace).

    Post-processing too: DeepMAC's mask network is first called there, and a checkpoint
    written without its variables does not restore into the exported model.
    """
    from od_export.source.pipeline_config import model_input_size

    tf = compat.import_tensorflow()
    height, width = model_input_size(config)
    images, true_shapes = model.preprocess(tf.zeros([1, height, width, 3], tf.float32))
    model.postprocess(model.predict(images, true_shapes), true_shapes)


def open_checkpoint(prefix: AnyPath) -> Any:
    """A checkpoint reader for ``prefix``; an unreadable checkpoint is a CheckpointError.

    ``tf.train.load_checkpoint`` first asks whether the prefix is a directory, which
    object stores (and ``ram://``) answer yes for any name prefix; the reader itself
    does not.
    """
    tf = compat.import_tensorflow()
    try:
        return tf.compat.v1.train.NewCheckpointReader(str(prefix))
    except (tf.errors.OpError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read checkpoint {prefix} (truncated or corrupt?): "
                              f"{' '.join(str(exc).split())[:200]}; copy it again from the training run") from exc


def compare_with_checkpoint(model: Any, prefix: AnyPath) -> CheckpointComparison:
    """Walk the checkpoint's object graph and the live ``Checkpoint(model=model)`` in step."""
    tf = compat.import_tensorflow()
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    reader = open_checkpoint(prefix)
    if not reader.has_tensor(_OBJECT_GRAPH_KEY):
        raise CheckpointError(f"{prefix} is a TF1 (name-based) checkpoint; od-export needs a TF2 object-based checkpoint")
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    try:
        graph.ParseFromString(reader.get_tensor(_OBJECT_GRAPH_KEY))
    except Exception as exc:  # noqa: BLE001 - a truncated data file fails in several ways (IndexError, DecodeError…)
        raise CheckpointError(f"cannot read checkpoint {prefix} (truncated or corrupt?): "
                              f"{' '.join(str(exc).split())[:200]}; copy it again from the training run") from exc
    shapes = reader.get_variable_to_shape_map()

    matched, mismatched, missing, seen, used_keys = 0, [], [], set(), set()
    root = tf.train.Checkpoint(model=model)
    pending: list[tuple[Any, int | None, str]] = [(root, 0, "")]
    while pending:
        obj, node_id, path = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, tf.Variable):
            key = _variable_key(graph, node_id)
            used_keys.add(key)
            if key is None:
                missing.append(path)
            elif tuple(shapes[key]) != tuple(obj.shape.as_list()):
                mismatched.append(ShapeMismatch(path, tuple(shapes[key]), tuple(obj.shape.as_list())))
            else:
                matched += 1
            continue
        saved_children = {} if node_id is None else {c.local_name: c.node_id for c in graph.nodes[node_id].children}
        for name, child in tf.train.TrackableView(obj).children(obj).items():
            pending.append((child, saved_children.get(name), f"{path}/{name}" if path else name))
    unexpected = tuple(sorted(_model_variable_keys(graph) - used_keys))
    return CheckpointComparison(
        matched, tuple(sorted(mismatched, key=lambda m: m.path)), tuple(sorted(missing)), unexpected
    )


def _model_variable_keys(graph: Any) -> set[str]:
    """Checkpoint keys of every variable in the checkpoint's ``model`` subtree."""
    roots = [c.node_id for c in graph.nodes[0].children if c.local_name == "model"]
    keys, pending, seen = set(), list(roots), set()
    while pending:
        node_id = pending.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        key = _variable_key(graph, node_id)
        if key is not None:
            keys.add(key)
        pending.extend(c.node_id for c in graph.nodes[node_id].children)
    return keys


def _variable_key(graph: Any, node_id: int | None) -> str | None:
    if node_id is None:
        return None
    for attribute in graph.nodes[node_id].attributes:
        if attribute.name == _VARIABLE_ATTRIBUTE:
            return str(attribute.checkpoint_key)
    return None


def describe_comparison(comparison: CheckpointComparison, prefix: AnyPath, limit: int = 3) -> str:
    parts = []
    if comparison.mismatched:
        shown = "; ".join(m.describe() for m in comparison.mismatched[:limit])
        more = len(comparison.mismatched) - limit
        parts.append(f"{len(comparison.mismatched)} shape mismatch(es): {shown}" + (f" (+{more} more)" if more > 0 else ""))
    if comparison.missing:
        shown = ", ".join(comparison.missing[:limit])
        more = len(comparison.missing) - limit
        parts.append(f"{len(comparison.missing)} model variable(s) missing from it: {shown}" + (f" (+{more} more)" if more > 0 else ""))
    return (
        f"checkpoint {prefix} does not match the model built from the pipeline config: {'; '.join(parts)}; "
        "use the pipeline.config the checkpoint was trained with (num_classes, feature extractor)"
    )


def restore_checked(model: Any, prefix: AnyPath) -> CheckpointComparison:
    """Refuse a checkpoint that does not fit, then restore it into the (already built) model."""
    tf = compat.import_tensorflow()
    comparison = compare_with_checkpoint(model, prefix)
    if not comparison.ok:
        raise CheckpointError(describe_comparison(comparison, prefix))
    try:
        status = tf.train.Checkpoint(model=model).restore(str(prefix)).expect_partial()
        status.assert_existing_objects_matched()
    except AssertionError as exc:
        raise CheckpointError(f"checkpoint {prefix} did not restore every model object: {exc}") from exc
    except (tf.errors.OpError, ValueError) as exc:
        raise CheckpointError(f"cannot restore checkpoint {prefix} (truncated or corrupt?): "
                              f"{' '.join(str(exc).split())[:200]}; copy it again from the training run") from exc
    return comparison


class BuiltModels:
    """Models built and traced in this process, kept so that further checkpoints only restore weights.

    A batch or watch passes one instance to every :func:`export`: an export whose config,
    overrides, input types and side inputs match an earlier one reuses its model and
    traced functions (they read the variables, which the restore overwrites) and skips
    the build and the traces.  Targets that retrace (ONNX, TensorRT) still do.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[Any, ...], tuple[Any, list[TracedFunction]]] = {}

    @staticmethod
    def key(options: ExportOptions, config: Any) -> tuple[Any, ...]:
        return (config.SerializeToString(deterministic=True), options.input_types, options.side_inputs,
                options.dynamic_batch)

    def get(self, key: tuple[Any, ...]) -> tuple[Any, list[TracedFunction]] | None:
        return self._entries.get(key)

    def put(self, key: tuple[Any, ...], model: Any, traced: list[TracedFunction]) -> None:
        self._entries = {key: (model, traced)}  # one at a time: a model holds ~100 MB to GBs
