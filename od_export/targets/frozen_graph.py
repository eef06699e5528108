"""``frozen_graph/``: the serving function frozen (:mod:`od_export.source.freezing`), written as
``frozen_inference_graph.pb`` (or ``.pbtxt``) with ``io_spec.json``, and verified in a TF1 session."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from od_export.layout import IO_SPEC_NAME
from od_export.source.freezing import FrozenGraph, node_name
from od_export.storage.location import AnyPath
from od_export.targets.base import ArtifactRunner, ExportContext, Target, pixels_as
from od_export.verify.reference import Reference
from od_export.verify.report import ArtifactCheck, Tolerance, compare_runs

FROZEN_GRAPH_DIR = "frozen_graph"
FROZEN_GRAPH_NAME = "frozen_inference_graph"


def write_frozen_graph(frozen: FrozenGraph, directory: Path, fmt: str) -> list[Path]:
    """Write ``frozen_inference_graph.pb`` and/or ``.pbtxt`` plus the I/O description."""
    from google.protobuf import text_format

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if fmt in ("pb", "both"):
        path = directory / f"{FROZEN_GRAPH_NAME}.pb"
        path.write_bytes(frozen.graph_def.SerializeToString())
        written.append(path)
    if fmt in ("pbtxt", "both"):
        path = directory / f"{FROZEN_GRAPH_NAME}.pbtxt"
        path.write_text(text_format.MessageToString(frozen.graph_def), encoding="utf-8")
        written.append(path)
    spec_path = directory / IO_SPEC_NAME
    spec_path.write_text(json.dumps(frozen.io_spec, indent=2) + "\n", encoding="utf-8")
    written.append(spec_path)
    return written


def frozen_io(path: AnyPath, output_keys: list[str]) -> tuple[Any, str, dict[str, str]]:
    """GraphDef, input tensor name and output key → tensor name of a frozen graph file.

    Without ``io_spec.json`` (exporter_main_v2 plus a freezing script) the outputs are
    the ``Identity_N`` nodes in the alphabetical order of the signature keys, which is
    how ``convert_variables_to_constants_v2`` names them.
    """
    from od_export.verify import samples

    graph_def = samples.load_graph_def(path)
    spec_path = path.parent / IO_SPEC_NAME
    if spec_path.is_file():
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        return graph_def, spec["inputs"]["input_tensor"]["tensor"], {k: v["tensor"] for k, v in spec["outputs"].items()}
    names = {node.name for node in graph_def.node}
    input_name = "input_tensor:0" if "input_tensor" in names else next(
        f"{n.name}:0" for n in graph_def.node if n.op == "Placeholder")
    keys = sorted(output_keys)
    return graph_def, input_name, {k: ("Identity:0" if i == 0 else f"Identity_{i}:0") for i, k in enumerate(keys)}


#: An OD API detection signature's outputs (their alphabetical order names a script-frozen graph's Identity_N).
DETECTION_OUTPUT_KEYS = ("detection_anchor_indices", "detection_boxes", "detection_classes",
                         "detection_multiclass_scores", "detection_scores", "num_detections",
                         "raw_detection_boxes", "raw_detection_scores")


class FrozenGraphFileRunner(ArtifactRunner):
    """``benchmark``'s view of a frozen graph: a default TF1 session (grappler on), the input's own dtype."""

    runtime = "TensorFlow (session)"

    def load(self) -> None:
        from od_export.verify import samples

        graph_def, self.input_name, fetches = frozen_io(self.files[0], list(DETECTION_OUTPUT_KEYS))
        self.fetches = {k: v for k, v in fetches.items() if k.startswith(("detection_", "num_"))}
        placeholder = next(n for n in graph_def.node if n.name == node_name(self.input_name))
        self.dtype = "uint8" if placeholder.attr["dtype"].type == 4 else "float32"  # DT_UINT8 is 4
        self.runner = samples.FrozenGraphRunner(graph_def, optimize=True)

    def feed(self, pixels: Any, encoded: bytes) -> Any:
        return pixels_as(self.dtype, pixels)

    def infer(self, feed: Any) -> Any:
        return self.runner.run({self.input_name: feed}, self.fetches)

    def close(self) -> None:
        self.runner.close()


class FrozenGraphTarget(Target):
    """``frozen_graph/frozen_inference_graph.pb`` (or ``.pbtxt``) plus ``io_spec.json``.

    Verified in a default ``tf.compat.v1.Session`` (grappler on), as users run it.
    """

    name = "frozen_graph"
    directory = FROZEN_GRAPH_DIR

    def write(self, context: ExportContext, directory: Path) -> list[Path]:
        return write_frozen_graph(context.frozen_graph(), directory, context.options.frozen_format)

    def find(self, unit_dir: AnyPath) -> AnyPath | None:
        folder = unit_dir / FROZEN_GRAPH_DIR
        return next((folder / f"{FROZEN_GRAPH_NAME}{ext}" for ext in (".pb", ".pbtxt")
                     if (folder / f"{FROZEN_GRAPH_NAME}{ext}").is_file()), None)

    def runners(self, artifact: AnyPath) -> list[ArtifactRunner]:
        return [FrozenGraphFileRunner(self.name, [artifact])]

    def inspect_file(self, path: AnyPath) -> dict[str, Any]:
        from od_export.inspect.graph_summary import describe_graph_file

        return describe_graph_file(path)

    def verify(self, artifact: AnyPath, reference: Reference, tolerance: Tolerance) -> ArtifactCheck:
        """In a default session; a two-stage model that differs there is also run without grappler.

        A two-stage model keeps a few proposals out of hundreds of near-tied anchors, so
        grappler's float rewrites can change which ones it keeps, and with them its
        detections, although the graph is a faithful freeze.  When the default session
        differs for such a model, the graph is run once more as the SavedModel runs it
        (no rewrites); if that matches, the check passes and says what the default
        session changed, so the user learns how sensitive the model is.
        """
        check = ArtifactCheck(reference.unit.name, self.name, reference.input_type)
        try:
            graph_def, input_name, fetches = frozen_io(artifact, list(reference.outputs[0]))
        except Exception as exc:  # unreadable graph: the artifact is unusable
            check.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            return check
        run = _compare_in_session(check, graph_def, input_name, fetches, reference, tolerance, optimize=True)
        if run.ok or not _two_stage(reference):
            return run
        default = ", ".join(f"{d.key} {d.max_abs_diff:.3g}" for d in run.differences if not d.ok) or run.error
        exact = _compare_in_session(ArtifactCheck(check.unit, self.name, check.input_type), graph_def, input_name,
                                    fetches, reference, tolerance, optimize=False)
        if exact.ok:
            exact.notes.append(f"in a default session (grappler on) this two-stage model keeps other near-tied "
                               f"proposals and differs ({default}); without grappler's rewrites it matches")
            return exact
        return run


def _two_stage(reference: Reference) -> bool:
    from od_export.layout import PIPELINE_CONFIG_NAME
    from od_export.source.pipeline_config import load_pipeline_config, meta_architecture

    config_path = reference.unit.directory / PIPELINE_CONFIG_NAME
    try:
        return config_path.is_file() and meta_architecture(load_pipeline_config(config_path)) == "faster_rcnn"
    except Exception:  # an unreadable config decides nothing: the default-session result stands
        return False


def _compare_in_session(check: ArtifactCheck, graph_def: Any, input_name: str, fetches: dict[str, str],
                        reference: Reference, tolerance: Tolerance, optimize: bool) -> ArtifactCheck:
    from od_export.verify import samples

    try:
        runner = samples.FrozenGraphRunner(graph_def, optimize=optimize)
    except Exception as exc:  # a graph TensorFlow cannot import is unusable
        check.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        return check
    try:
        return compare_runs(check, reference.outputs,
                            lambda i: runner.run({input_name: reference.feed(reference.images[i])}, fetches), tolerance,
                            reference)
    finally:
        runner.close()
