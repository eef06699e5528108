"""Any path an OD API user has → what it contains, as a dictionary (``od-export inspect``).

Kinds: an export directory (od-export's or exporter_main_v2's), a SavedModel, a
frozen graph (``.pb``/``.pbtxt``), a TF1 ``.meta``, a checkpoint directory or
prefix, and a ``pipeline.config``.  SavedModels and graphs are read as protos, not
loaded, so inspecting is quick and works for graphs that would not run here.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from od_export import compat
from od_export.source import checkpoints
from od_export.errors import InputError, option
from od_export.inspect.graph_summary import (describe_graph_file, read_graph_def, summarize_meta,
                                             summarize_signatures)
from od_export.manifest import read_manifest, require_finished
from od_export.storage.location import AnyPath, check_scheme_supported, location
from od_export.layout import looks_like_export, unit_directories
from od_export.source.labels import SAVED_MODEL_LABELS
from od_export.targets import TARGETS, find_artifacts
from od_export.storage.reading import check_protobuf_file


@dataclass(frozen=True)
class InspectOptions:
    path: Path
    pipeline_config: Path | None = None
    tensorboard_dir: Path | None = None


_CONFIG_START = re.compile(rb"^\s*(model|train_config|eval_config)\s*:?\s*\{", re.M)


def _looks_like_pipeline_config(path: AnyPath) -> bool:
    if path.suffix == ".config":
        return True
    with path.open("rb") as handle:
        head = handle.read(64 * 1024)
    return b"\0" not in head and _CONFIG_START.search(head) is not None


def detect_kind(path: AnyPath) -> str:
    if checkpoints.is_prefix(path):
        return "checkpoint"
    if not path.exists():
        raise InputError(f"{path} does not exist; pass an export, SavedModel, graph, checkpoint or pipeline.config")
    if path.is_dir():
        require_finished(path)
        if (path / "saved_model.pb").is_file():
            return "saved_model"
        if looks_like_export(path):
            return "export"
        if checkpoints.available_checkpoints(path) or checkpoints.available_checkpoints(path / "checkpoint"):
            return "checkpoint"
        raise InputError(f"{path} holds no SavedModel, export or checkpoint")
    if path.name == "saved_model.pb":
        return "saved_model"
    if path.suffix == ".meta":
        return "meta_graph"
    if path.suffix in (".pb", ".pbtxt"):
        return "graph"
    claimed = next((name for name, target in TARGETS.items() if target.claims(path)), None)
    if claimed is not None:
        return claimed
    if path.suffix == ".index" or ".data-" in path.name:
        return "checkpoint"
    if _looks_like_pipeline_config(path):
        return "pipeline_config"
    files = ", ".join(t.file_description for t in TARGETS.values() if t.file_description)
    raise InputError(
        f"od-export does not know what {path} is; inspect takes an export directory, a SavedModel, a .pb or "
        f".pbtxt graph, a TF1 .meta graph, {files}, a checkpoint or a pipeline.config"
    )


def inspect_path(options: InspectOptions) -> dict[str, Any]:
    path = location(options.path)
    check_scheme_supported(path, "path")
    kind = detect_kind(path)
    handlers = {
        "export": _export, "saved_model": _saved_model, "graph": describe_graph_file, "meta_graph": _meta_graph,
        "checkpoint": lambda p: _checkpoint(p, options.pipeline_config), "pipeline_config": _pipeline_config,
        **{name: target.inspect_file for name, target in TARGETS.items() if target.file_description},
    }
    report = {"path": str(path), "kind": kind, **handlers[kind](path)}
    if "config_check" in report:  # a gate: a checkpoint that does not fit its config fails
        report["ok"] = bool(report["config_check"]["restores"])
    if options.tensorboard_dir is not None:
        report["tensorboard"] = write_tensorboard(path, kind, Path(options.tensorboard_dir))
    return report


# ------------------------------------------------------------------ graphs
def _load_saved_model_proto(path: Path) -> Any:
    file = path if path.is_file() else path / "saved_model.pb"
    check_protobuf_file(file, "SavedModel", "give a SavedModel directory")  # before TensorFlow: in milliseconds
    compat.import_tensorflow()
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(file.read_bytes())
    except Exception as exc:  # protobuf raises its own DecodeError type
        raise InputError(f"{file} is not a SavedModel ({exc})") from exc
    return proto


def _saved_model(path: Path) -> dict[str, Any]:
    proto = _load_saved_model_proto(path)
    meta_graphs = []
    for meta_graph in proto.meta_graphs:
        meta_graphs.append({
            "tags": sorted(meta_graph.meta_info_def.tags),
            "signatures": summarize_signatures(meta_graph),
            "functions": len(meta_graph.graph_def.library.function),
            "has_object_graph": meta_graph.HasField("object_graph_def"),
        })
    return {"meta_graphs": meta_graphs}


def _read_meta_graph(path: Path) -> Any:
    compat.import_tensorflow()
    from tensorflow.core.protobuf import meta_graph_pb2

    meta_graph = meta_graph_pb2.MetaGraphDef()
    try:
        meta_graph.ParseFromString(path.read_bytes())
    except Exception as exc:
        raise InputError(f"{path} is not a TF1 MetaGraphDef ({exc})") from exc
    return meta_graph


def _meta_graph(path: Path) -> dict[str, Any]:
    meta_graph = _read_meta_graph(path)
    return {
        "tags": sorted(meta_graph.meta_info_def.tags),
        "signatures": summarize_signatures(meta_graph),
        **summarize_meta(meta_graph),
    }


def _export(path: Path) -> dict[str, Any]:
    units = unit_directories(path) or [path]
    report_units = []
    for unit in units:
        entry: dict[str, Any] = {"name": unit.name, "directory": str(unit), "saved_model": _saved_model(unit / "saved_model")}
        artifacts = find_artifacts(unit)
        entry["targets"] = ["saved_model", *artifacts]
        for name, artifact in artifacts.items():
            entry[name] = TARGETS[name].inspect_artifact(artifact)
        labels = unit / SAVED_MODEL_LABELS
        entry["labels"] = labels.read_text(encoding="utf-8").splitlines() if labels.is_file() else None
        entry["has_checkpoint"] = (unit / "checkpoint").is_dir()
        entry["has_pipeline_config"] = (unit / "pipeline.config").is_file()
        report_units.append(entry)
    manifest = read_manifest(path)
    return {"units": report_units, "finished": manifest is not None, "manifest": manifest}


# ------------------------------------------------------------- checkpoints
def _checkpoint(path: Path, pipeline_config: Path | None) -> dict[str, Any]:
    from od_export.source.model import open_checkpoint

    tf = compat.import_tensorflow()
    resolved = checkpoints.resolve_checkpoint(path)
    reader = open_checkpoint(resolved.prefix)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    variables = [
        {"name": name, "shape": list(shapes[name]), "dtype": dtypes[name].name}
        for name in sorted(shapes) if name != "_CHECKPOINTABLE_OBJECT_GRAPH"
    ]
    parameters = sum(math.prod(v["shape"]) for v in variables)
    size = sum(math.prod(v["shape"]) * tf.as_dtype(v["dtype"]).size for v in variables if v["dtype"] != "string")
    report = {
        "directory": str(resolved.directory), "checkpoints": list(resolved.available), "selected": resolved.name,
        "note": resolved.note or None, "variable_count": len(variables), "parameters": parameters, "bytes": size,
        "variables": variables,
    }
    if pipeline_config is not None:
        report["config_check"] = _config_check(resolved.prefix, pipeline_config)
    return report


def _config_check(prefix: Path, pipeline_config: Path) -> dict[str, Any]:
    from od_export.source.model import build_model, compare_with_checkpoint, create_variables
    from od_export.source.pipeline_config import load_pipeline_config

    config = load_pipeline_config(pipeline_config)
    model = build_model(config)
    create_variables(model, config)
    comparison = compare_with_checkpoint(model, prefix)
    return {
        "pipeline_config": str(pipeline_config), "restores": comparison.ok, "matched": comparison.matched,
        "mismatched": [{"variable": m.path, "checkpoint_shape": list(m.checkpoint_shape), "model_shape": list(m.model_shape)}
                       for m in comparison.mismatched],
        "missing": list(comparison.missing), "unexpected": list(comparison.unexpected),
    }


# ------------------------------------------------------------ pipeline.config
def _pipeline_config(path: Path) -> dict[str, Any]:
    from od_export.inspect.config import describe_pipeline_config

    return describe_pipeline_config(path)


# --------------------------------------------------------------- tensorboard
def write_tensorboard(path: Path, kind: str, logdir: Path) -> str:
    """Write the graph as a TensorBoard event file under ``logdir``."""
    tf = compat.import_tensorflow()
    if kind == "graph":
        graph_def = read_graph_def(path)
    elif kind == "meta_graph":
        graph_def = _read_meta_graph(path).graph_def
    elif kind in ("saved_model", "export"):
        saved_model_dir = path if kind == "saved_model" else next(
            p for p in ([path / "saved_model"] + sorted(path.glob("*/saved_model"))) if p.is_dir())
        graph_def = _load_saved_model_proto(saved_model_dir).meta_graphs[0].graph_def
    else:
        raise InputError(f"{option('tensorboard_dir')} needs a graph, SavedModel or export, not a {kind.replace('_', ' ')}")
    logdir.mkdir(parents=True, exist_ok=True)
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        tf.summary.graph(graph_def)
    writer.flush()
    return str(logdir)
