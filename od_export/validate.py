"""Export directory → proof that every artifact computes the SavedModel's detections.

Each export unit (one input type's ``saved_model/`` plus whatever sits beside it) is
run on the same images: the SavedModel is the reference, every other artifact
(today the frozen graph) must match it — equal ``num_detections`` and classes, boxes
and scores within ``atol`` for confident detections, raw outputs within ``atol``.
Works on exports from od-export and from exporter_main_v2 (plus a freezing script:
without ``io_spec.json`` the ``Identity_N`` outputs are matched to the signature
keys in alphabetical order, which is how freezing names them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from od_export import compat, samples
from od_export.compare import OutputDifference, compare_outputs
from od_export.errors import InputError
from od_export.freeze import FROZEN_GRAPH_NAME, IO_SPEC_NAME
from od_export.health import non_finite_names
from od_export.manifest import read_manifest, require_finished, verify_inventory
from od_export.options import INPUT_TYPES
from od_export.storage.location import AnyPath, check_scheme_supported, location
from od_export.storage.owners import is_od_export_temporary

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclass(frozen=True)
class ValidateOptions:
    export_dir: AnyPath
    images_dir: Path | None = None
    random_images: int = 2
    atol: float = 1e-4
    score_threshold: float = 0.05
    signature_key: str = "serving_default"
    staged: bool = False  # the export's own check of its staging directory (not yet a finished export)


@dataclass(frozen=True)
class ExportUnit:
    name: str
    saved_model: AnyPath
    frozen_graph: AnyPath | None


@dataclass
class ArtifactCheck:
    unit: str
    artifact: str
    input_type: str
    differences: tuple[OutputDifference, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(d.ok for d in self.differences)

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit, "artifact": self.artifact, "input_type": self.input_type, "ok": self.ok, "error": self.error,
            "outputs": {d.key: {"max_abs_diff": d.max_abs_diff, "ok": d.ok} for d in self.differences},
        }


@dataclass
class ValidationReport:
    export_dir: AnyPath
    images: int
    atol: float
    checks: list[ArtifactCheck] = field(default_factory=list)
    manifest: str = "none"  # "verified", "none" (not written by od-export) or the problem found

    @property
    def compared(self) -> int:
        """Artifacts compared with a SavedModel (not counting SavedModels that only ran)."""
        return sum(1 for check in self.checks if check.artifact != "saved_model")

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks) and self.manifest in ("verified", "none")

    def to_dict(self) -> dict[str, Any]:
        return {"export_dir": str(self.export_dir), "images": self.images, "atol": self.atol, "ok": self.ok,
                "compared": self.compared, "manifest": self.manifest, "checks": [c.to_dict() for c in self.checks]}


def find_units(export_dir: AnyPath, staged: bool = False) -> list[ExportUnit]:
    """Each directory holding a SavedModel: the export itself or one per input type."""
    if not export_dir.is_dir():
        raise InputError(f"{export_dir} is not a directory; pass the --output-dir of an export")
    if not staged:
        require_finished(export_dir)
    if (export_dir / "saved_model.pb").is_file():  # a bare SavedModel directory
        return [ExportUnit(export_dir.name, export_dir, None)]
    candidates = [export_dir] + sorted(
        (p for p in export_dir.iterdir() if p.is_dir() and not is_od_export_temporary(p.name)), key=str)
    units = []
    for directory in candidates:
        if (directory / "saved_model" / "saved_model.pb").is_file():
            frozen = next((directory / "frozen_graph" / f"{FROZEN_GRAPH_NAME}{ext}" for ext in (".pb", ".pbtxt")
                           if (directory / "frozen_graph" / f"{FROZEN_GRAPH_NAME}{ext}").is_file()), None)
            units.append(ExportUnit(directory.name, directory / "saved_model", frozen))
    if not units:
        raise InputError(f"no SavedModel found in {export_dir}; pass an export written by od-export or exporter_main_v2")
    return units


def load_images(options: ValidateOptions) -> list[np.ndarray]:
    if options.images_dir is None:
        if options.random_images < 1:
            raise InputError("--random needs at least 1 image")
        return [samples.sample_image(120 + 16 * i, 160 - 8 * i, seed=100 + i) for i in range(options.random_images)]
    directory = Path(options.images_dir)
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if directory.is_dir() else []
    if not files:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {directory}; pass a directory of test images or use --random N")
    tf = compat.import_tensorflow()
    return [tf.io.decode_image(p.read_bytes(), channels=3, expand_animations=False).numpy() for p in files]


def _input_type_candidates(unit: ExportUnit, signature: Any) -> list[str]:
    if unit.name in INPUT_TYPES:
        return [unit.name]
    inputs = signature.structured_input_signature[1]
    if "input_tensor" not in inputs:
        raise InputError(
            f"{unit.saved_model} takes {', '.join(inputs) or 'no inputs'}, not input_tensor; it is not an OD API export"
        )
    dtype = inputs["input_tensor"].dtype.name
    return {"uint8": ["image_tensor"], "float32": ["float_image_tensor"]}.get(dtype, ["encoded_image_string_tensor", "tf_example"])


def _frozen_io(path: Path, output_keys: list[str]) -> tuple[Any, str, dict[str, str]]:
    import json

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


def _run_reference(function: Any, candidates: list[str], images: list[np.ndarray]) -> tuple[str, list[dict[str, np.ndarray]]]:
    tf = compat.import_tensorflow()
    last_error: Exception | None = None
    for input_type in candidates:
        try:
            outputs = [function(input_tensor=tf.constant(samples.input_batch(input_type, image))) for image in images]
            return input_type, [{k: v.numpy() for k, v in out.items()} for out in outputs]
        except (tf.errors.InvalidArgumentError, ValueError) as exc:
            last_error = exc
    raise InputError(f"the SavedModel rejects every sample input ({last_error}); is it an OD API export?")


def _merge(per_image: list[tuple[OutputDifference, ...]]) -> tuple[OutputDifference, ...]:
    merged: dict[str, OutputDifference] = {}
    for differences in per_image:
        for d in differences:
            seen = merged.get(d.key)
            merged[d.key] = OutputDifference(d.key, max(d.max_abs_diff, seen.max_abs_diff if seen else 0.0), d.ok and (seen.ok if seen else True))
    return tuple(merged[k] for k in sorted(merged))


def _load_signature(unit: ExportUnit, signature_key: str) -> Any:
    tf = compat.import_tensorflow()
    try:
        loaded = tf.saved_model.load(str(unit.saved_model))
    except (OSError, ValueError, tf.errors.OpError) as exc:
        raise InputError(f"cannot load the SavedModel {unit.saved_model}: {exc}") from exc
    if signature_key not in loaded.signatures:
        raise InputError(f"{unit.saved_model} has no signature {signature_key!r}; it has: {', '.join(loaded.signatures)}")
    return loaded.signatures[signature_key]


def _compare_frozen(unit: ExportUnit, input_type: str, images: list[np.ndarray], references: list[dict[str, np.ndarray]],
                    options: ValidateOptions) -> ArtifactCheck:
    tf = compat.import_tensorflow()
    check = ArtifactCheck(unit.name, "frozen_graph", input_type)
    try:
        graph_def, input_name, fetches = _frozen_io(unit.frozen_graph, list(references[0]))
        runner = samples.FrozenGraphRunner(graph_def)
        per_image = []
        for image, reference in zip(images, references):
            candidate = runner.run({input_name: samples.input_batch(input_type, image)}, fetches)
            per_image.append(compare_outputs(reference, candidate, options.atol, options.score_threshold))
        runner.close()
        check.differences = _merge(per_image)
    except (tf.errors.OpError, KeyError, ValueError, StopIteration) as exc:
        check.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return check


def _manifest_state(export_dir: AnyPath) -> str:
    manifest = read_manifest(export_dir)
    if manifest is None:
        return "none"
    problems = verify_inventory(export_dir, manifest)
    return "verified" if not problems else "damaged: " + "; ".join(problems[:3])


def validate(options: ValidateOptions) -> ValidationReport:
    check_scheme_supported(location(options.export_dir), "export")
    units = find_units(location(options.export_dir), options.staged)
    images = load_images(options)
    report = ValidationReport(options.export_dir, len(images), options.atol, manifest=_manifest_state(options.export_dir))
    for unit in units:
        function = _load_signature(unit, options.signature_key)
        input_type, references = _run_reference(function, _input_type_candidates(unit, function), images)
        ran = ArtifactCheck(unit.name, "saved_model", input_type)
        bad = non_finite_names(item for reference in references for item in sorted(reference.items()))
        if bad:
            ran.error = f"the SavedModel computes NaN or infinite values in {', '.join(sorted(set(bad)))}"
        report.checks.append(ran)
        if unit.frozen_graph is not None and ran.ok:
            report.checks.append(_compare_frozen(unit, input_type, images, references, options))
    return report


def _verdict(report: ValidationReport) -> str:
    if not report.ok:
        if report.manifest not in ("verified", "none"):
            return "DAMAGED: the export's files do not match its manifest"
        return "MISMATCH: an artifact does not compute the SavedModel's detections (or does not run)"
    saved_models = len(report.checks) - report.compared
    if report.compared == 0:
        return (f"{saved_models} SavedModel(s) load and run with finite outputs; there is no other artifact "
                "to compare with them (exported without a frozen graph)")
    return f"all {report.compared} artifact(s) match their SavedModel"


def format_report(report: ValidationReport) -> str:
    lines = [f"{'unit':<28} {'artifact':<13} {'output':<28} {'max |diff|':>11}  result"]
    for check in report.checks:
        if check.artifact == "saved_model" and check.ok:
            lines.append(f"{check.unit:<28} {check.artifact:<13} {'(loads and runs)':<28} {'':>11}  ok")
        if check.error:
            lines.append(f"{check.unit:<28} {check.artifact:<13} {'(failed to run)':<28} {'':>11}  FAIL: {check.error}")
        for d in check.differences:
            lines.append(f"{check.unit:<28} {check.artifact:<13} {d.key:<28} {d.max_abs_diff:>11.3g}  {'ok' if d.ok else 'MISMATCH'}")
    if report.manifest not in ("verified", "none"):
        lines.append(f"manifest: {report.manifest}")
    lines.append(f"{report.images} image(s), atol {report.atol:g}: {_verdict(report)}")
    return "\n".join(lines)
