"""``od-export convert frozen_inference_graph.pb --target saved_model``: a frozen graph → a served SavedModel.

The graph's inputs and outputs come from, in order: an ``io_spec.json`` (given, or
beside the graph as od-export writes it), the TF1 model zoo's well-known names
(``image_tensor:0`` in, ``detection_*:0`` and ``num_detections:0`` out, under the
TF1 exporter's signature keys), or discovery (placeholders in; unconsumed,
non-bookkeeping nodes out).  The SavedModel is run on the same sample inputs as the
graph and must give the same outputs before it is published.
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from od_export import compat
from od_export.errors import InputError, ValidationFailed
from od_export.layout import IO_SPEC_NAME, SAVED_MODEL_DIR
from od_export.manifest import output_manifest, sha256_of, write_manifest
from od_export.storage.output import plan_output, reserve, staged_output
from od_export.tf1 import serving
from od_export.tf1.inference_graph import signature_key
from od_export.verify import graphs

logger = logging.getLogger(__name__)

GRAPH_SUFFIXES = (".pb", ".pbtxt")
#: The TF1 object detection exporter's tensors (exporter.py), under its signature keys: the input
#: placeholder is named after the input type, its key is ``inputs``.
ZOO_INPUT_KEY = "inputs"
ZOO_INPUT_NODES = ("image_tensor", "encoded_image_string_tensor", "tf_example")
ZOO_SOURCE = "TF1 model zoo names"
ZOO_OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections", "detection_masks",
               "detection_multiclass_scores", "detection_keypoints", "raw_detection_boxes", "raw_detection_scores")


@dataclass(frozen=True)
class WrapOptions:
    graph: str | Path
    #: The SavedModel directory; None: ``saved_model/`` beside the graph.
    output_dir: str | Path | None = None
    io_spec: str | Path | None = None
    overwrite: bool = False
    wait: bool = False


@dataclass
class WrapResult:
    saved_model: Path
    source: str
    inputs: dict[str, str]
    outputs: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, "saved_model": str(self.saved_model), "io_from": self.source,
                "signature": {"serving_default": {"inputs": self.inputs, "outputs": self.outputs}}}


def is_graph_file(path: str | Path) -> bool:
    return Path(path).suffix in GRAPH_SUFFIXES and Path(path).is_file()


def _read_io_spec(options: WrapOptions, graph: Path) -> tuple[dict[str, Any] | None, str]:
    path = Path(options.io_spec) if options.io_spec else graph.parent / IO_SPEC_NAME
    if not path.is_file():
        if options.io_spec:
            raise InputError(f"I/O description {path} does not exist; give the io_spec.json written beside the graph")
        return None, ""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        return {part: {key: entry["tensor"] for key, entry in spec[part].items()} for part in ("inputs", "outputs")}, str(path)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{path} is not an od-export io_spec.json (needs inputs and outputs with tensor names)") from exc


def _graph_io(graph_def: Any, spec: dict[str, Any] | None) -> dict[str, Any]:
    """Signature key → tensor for inputs and outputs, and (unless from ``spec``) where they came from (``source``)."""
    from od_export.inspect.graph_summary import input_nodes
    from od_export.inspect.outputs import likely_output_nodes

    names = {node.name for node in graph_def.node}
    if spec is not None:
        missing = [t for part in spec.values() for t in part.values() if t.split(":")[0] not in names]
        if missing:
            raise InputError(f"the graph has no {', '.join(missing[:3])}; give the io_spec.json of this graph")
        return spec
    zoo_input = next((name for name in ZOO_INPUT_NODES if name in names), None)
    if zoo_input is not None and {"detection_boxes", "num_detections"} <= names:
        return {"inputs": {ZOO_INPUT_KEY: f"{zoo_input}:0"}, "outputs": {key: f"{key}:0" for key in ZOO_OUTPUTS if key in names},
                "source": ZOO_SOURCE}
    inputs = {signature_key(f"{n.name}:0"): f"{n.name}:0" for n in input_nodes(graph_def)}
    outputs = {signature_key(f"{n.name}:0"): f"{n.name}:0" for n in likely_output_nodes(graph_def)}
    if not outputs:
        raise InputError("found no outputs in the graph; give an io_spec.json naming them")
    return {"inputs": inputs, "outputs": outputs, "source": "discovered"}


def wrap_frozen_graph(options: WrapOptions) -> WrapResult:
    from od_export.verify.samples import load_graph_def

    graph = Path(options.graph)
    if not is_graph_file(graph):
        raise InputError(f"{graph} is not a frozen graph file; give a .pb or .pbtxt GraphDef")
    spec, spec_path = _read_io_spec(options, graph)
    inputs = [("frozen graph", graph)] + ([("io_spec", Path(spec_path))] if spec_path else [])
    plan = plan_output(options.output_dir or graph.parent / SAVED_MODEL_DIR, options.overwrite, inputs)
    with reserve(plan, options.wait):
        compat.import_tensorflow()
        try:
            graph_def = load_graph_def(graph)
        except Exception as exc:  # protobuf's DecodeError and text-format ParseError
            raise InputError(f"{graph} is not a readable GraphDef ({type(exc).__name__}); give a frozen graph file") from exc
        io = _graph_io(graph_def, spec)
        source = spec_path or io.pop("source")
        logger.info(f"inputs {io['inputs']} and outputs {sorted(io['outputs'])} ({source})")
        feeds, expected = _reference(graph_def, io)
        with staged_output(plan) as staging:
            build = staging / "build"
            serving.write_predict_saved_model(graph_def, io["inputs"], io["outputs"], build)
            for item in build.iterdir():
                shutil.move(str(item), str(staging / item.name))
            build.rmdir()
            _verify(staging, io, feeds, expected)
            write_manifest(staging, output_manifest(staging, "saved_model_from_graph",
                                                    source={"graph": {"path": str(graph.absolute()),
                                                                      "sha256": sha256_of([graph])}}))
    logger.info(f"wrote {plan.target}")
    return WrapResult(Path(plan.target), source, io["inputs"], io["outputs"])


def _reference(graph_def: Any, io: dict[str, dict[str, str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sample inputs the graph accepts (a string input tries image bytes, then a tf.Example) and its outputs."""
    from od_export.inspect.graph_summary import describe_node
    from od_export.verify.samples import run_frozen_graph

    tf = compat.import_tensorflow()
    nodes = {node.name: node for node in graph_def.node}
    choices = {key: graphs.sample_candidates(describe_node(nodes[tensor.split(":")[0]]))
               for key, tensor in io["inputs"].items()}
    last_error: Exception | None = None
    for attempt in range(max((len(c) for c in choices.values()), default=1)):
        feeds = {key: values[min(attempt, len(values) - 1)] for key, values in choices.items()}
        try:
            return feeds, run_frozen_graph(graph_def, {io["inputs"][k]: v for k, v in feeds.items()}, io["outputs"])
        except (tf.errors.InvalidArgumentError, ValueError) as exc:
            last_error = exc
    raise InputError(f"the graph rejects every sample input ({' '.join(str(last_error).split())[:200]}); "
                     "give an io_spec.json describing its inputs")


def _verify(directory: Path, io: dict[str, dict[str, str]], feeds: dict[str, Any], expected: dict[str, Any]) -> None:
    tf = compat.import_tensorflow()
    signature = tf.saved_model.load(str(directory)).signatures["serving_default"]
    mismatches = graphs.compare_outputs(expected, graphs.run_signature(signature, feeds))
    if mismatches:
        raise ValidationFailed(f"the SavedModel differs from the frozen graph on the same inputs "
                               f"({'; '.join(m.describe() for m in mismatches)}); nothing was written")
    logger.info(f"saved_model: same outputs as the frozen graph on {len(expected)} tensors")
