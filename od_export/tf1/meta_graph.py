"""A TF1 training checkpoint (``model.ckpt-N.meta`` + its variables) → a frozen inference graph.

TF1's recipe was ``freeze_graph.py --output_node_names=...`` after finding the output
nodes in TensorBoard by eye.  Here the graph is restored as TF1 saved it
(``import_meta_graph`` and the saver it declares), its outputs are found with the
same rule ``od-export inspect`` uses (nodes nothing consumes that are not saver,
gradient, optimizer, summary, initialiser or shape-check nodes, nor members of the
``train_op``/``summaries`` collections), and freezing keeps only what those outputs
need: gradients, optimizer slots, queues and an input that only the loss reads fall
away.  A ``PlaceholderWithDefault`` (dropout's keep-prob, an ``is_training`` switch)
becomes its default, so the frozen graph's inputs are exactly what a client feeds.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from od_export import compat
from od_export.errors import CheckpointError, InputError, option

logger = logging.getLogger(__name__)

META_SUFFIX = ".meta"
_STATE_LINE = re.compile(r'^model_checkpoint_path:\s*"(.*)"\s*$', re.MULTILINE)


def checkpoint_exists(prefix: Path) -> bool:
    """A V2 checkpoint (``prefix.index``) or a V1 single file."""
    return prefix.with_name(prefix.name + ".index").is_file() or prefix.is_file()


def _latest_in_state_file(directory: Path) -> Path | None:
    state = directory / "checkpoint"
    if not state.is_file():
        return None
    match = _STATE_LINE.search(state.read_text(encoding="utf-8", errors="replace"))
    if not match:
        return None
    latest = Path(match.group(1))
    return latest if latest.is_absolute() else directory / latest


def resolve_sources(meta_graph: str | Path, checkpoint: str | Path | None) -> tuple[Path, Path]:
    """The ``.meta`` file and the checkpoint prefix, checked without TensorFlow.

    Without an explicit prefix: the one the ``.meta`` is named after, else the latest
    in the ``checkpoint`` state file beside it.
    """
    if "://" in str(meta_graph) or "://" in str(checkpoint or ""):
        raise InputError("freeze reads local TF1 checkpoints; copy the .meta and the checkpoint files here first")
    meta = Path(meta_graph)
    if not meta.is_file():
        raise InputError(f"meta graph {meta} does not exist; give the model.ckpt-N.meta file the training run saved")
    if checkpoint is not None:
        prefix = Path(checkpoint)
        if prefix.is_dir():
            found = _latest_in_state_file(prefix)
            if found is None:
                raise CheckpointError(f"{prefix} has no checkpoint state file; give a checkpoint prefix like {prefix}/model.ckpt-N")
            prefix = found
        if not checkpoint_exists(prefix):
            raise CheckpointError(f"checkpoint {prefix} does not exist (no {prefix.name}.index); give a prefix like model.ckpt-N")
        return meta, prefix
    beside = meta.with_name(meta.name[:-len(META_SUFFIX)]) if meta.name.endswith(META_SUFFIX) else None
    if beside is not None and checkpoint_exists(beside):
        return meta, beside
    latest = _latest_in_state_file(meta.parent)
    if latest is not None and checkpoint_exists(latest):
        return meta, latest
    raise CheckpointError(f"no checkpoint beside {meta} (looked for {beside or meta}.index and a checkpoint state file); "
                          f"give its prefix with {option('checkpoint')}")


@dataclass
class RestoredGraph:
    """The training graph in a session with the checkpoint's values, and what inference needs of it."""

    graph: Any
    session: Any
    meta_graph_def: Any

    def close(self) -> None:
        self.session.close()


def restore(meta: Path, prefix: Path) -> RestoredGraph:
    """Import the meta graph (devices cleared) and restore its variables with its own saver."""
    tf = compat.import_tensorflow()
    meta_graph_def = tf.compat.v1.MetaGraphDef()
    try:
        meta_graph_def.ParseFromString(meta.read_bytes())
    except Exception as exc:  # protobuf's DecodeError and friends
        raise InputError(f"{meta} is not a TF1 MetaGraphDef ({type(exc).__name__}); give the .meta file of a checkpoint") from exc
    graph = tf.Graph()
    try:
        with graph.as_default():
            saver = tf.compat.v1.train.import_meta_graph(meta_graph_def, clear_devices=True)
            if saver is None:  # a graph saved without a saver: restore every variable by its name
                saver = tf.compat.v1.train.Saver(var_list=_reference_variables(graph) or None, allow_empty=True)
    except (ValueError, KeyError, tf.errors.OpError) as exc:
        raise InputError(f"TensorFlow {tf.__version__} cannot import {meta}: {exc}") from exc
    session = tf.compat.v1.Session(graph=graph)
    try:
        with graph.as_default():  # outside it the saver would restore eagerly, into nothing
            saver.restore(session, str(prefix))
            _restore_the_rest(graph, session, prefix)
    except (ValueError, tf.errors.OpError) as exc:
        session.close()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {prefix} does not fit {meta.name}: {first}; give the checkpoint this graph saved") from exc
    return RestoredGraph(graph, session, meta_graph_def)


def _reference_variables(graph: Any) -> dict[str, Any]:
    """TF1 reference variables by node name (what a saver of the whole graph would save)."""
    return {op.name: op.outputs[0] for op in graph.get_operations() if op.type in ("VariableV2", "Variable")}


def _restore_the_rest(graph: Any, session: Any, prefix: Path) -> None:
    """Variables the graph's saver left out (a saver made before them) restored from the checkpoint by name."""
    tf = compat.import_tensorflow()
    variables = _reference_variables(graph)
    if not variables:
        return
    checks = [tf.compat.v1.is_variable_initialized(tensor) for tensor in variables.values()]
    missing = [name for name, ready in zip(variables, session.run(checks)) if not ready]
    stored = dict(tf.train.list_variables(str(prefix))) if missing else {}
    found = {name: variables[name] for name in missing
             if name in stored and list(stored[name]) == variables[name].shape.as_list()}
    if found:
        tf.compat.v1.train.Saver(var_list=found).restore(session, str(prefix))
        logger.info(f"restored {len(found)} variable(s) the graph's saver leaves out by their names: "
                    f"{', '.join(sorted(found)[:5])}")
