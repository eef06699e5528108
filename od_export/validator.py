"""Export directory → proof that every artifact computes the SavedModel's detections.

This one function is both ``od-export validate`` and the check every export runs in
its staging directory before anything is published.  Each unit's SavedModel is the
reference; every other artifact found beside it is loaded and run by its target in
the runtime and with the settings its users get by default (a default TF session,
onnxruntime's default providers, …) on the same images, and judged as
:mod:`od_export.verify.compare` describes.  Works on exports from od-export and from
exporter_main_v2 (plus a freezing script).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from od_export.errors import InputError, NonFiniteOutputs, option
from od_export.health import check_finite_outputs
from od_export.layout import PIPELINE_CONFIG_NAME, Unit
from od_export.manifest import read_manifest, recorded_thresholds, verify_inventory
from od_export.storage.reading import check_protobuf_file
from od_export.storage.location import AnyPath, check_scheme_supported, location
from od_export.targets import TARGETS, find_units
from od_export.targets.serving_warmup import warmup_checks
from od_export.verify import samples
from od_export.verify.tolerance import DEFAULT_ATOL, DEFAULT_SCORE_THRESHOLD, Thresholds, thresholds
from od_export.verify.reference import Reference, run_reference
from od_export.verify.report import ArtifactCheck, Tolerance, ValidationReport, format_report
from od_export.verify.batch import batch_checks
from od_export.verify.signatures import signature_checks

__all__ = ["ValidateOptions", "ValidationReport", "format_report", "validate"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclass(frozen=True)
class ValidateOptions:
    export_dir: AnyPath
    images_dir: Path | None = None
    random_images: int = 2
    atol: float = DEFAULT_ATOL
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    signature_key: str = "serving_default"
    #: Reduced-precision thresholds, per precision; a precision left out keeps the one the export's
    #: manifest recorded, else its default (see :mod:`od_export.verify.agreement`).
    min_agreement: Thresholds = ()
    #: Where to write each image with every model's detections drawn side by side (None: nowhere).
    save_images: Path | None = None
    #: The label map that names classes in those drawings (None: the one the pipeline.config names).
    label_map: Path | None = None
    staged: bool = False  # the export's own check of its staging directory (not yet a finished export)


def load_images(options: ValidateOptions) -> tuple[list[np.ndarray], list[str]]:
    """The images to compare on, and their names (file names, or ``random_000`` …)."""
    if options.images_dir is None:
        if options.random_images < 1:
            raise InputError(f"{option('random_images')} needs at least 1 image")
        count = options.random_images
        return ([samples.sample_image(120 + 16 * i, 160 - 8 * i, seed=100 + i) for i in range(count)],
                [f"random_{i:03d}" for i in range(count)])
    directory = Path(options.images_dir)
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if directory.is_dir() else []
    if not files:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {directory}; pass a directory of test images "
                         f"or use {option('random_images')} N")
    return [samples.read_image(path, f"image {path}") for path in files], [p.name for p in files]


def _manifest_state(export_dir: AnyPath, manifest: dict[str, Any] | None) -> str:
    if manifest is None:
        return "none"
    problems = verify_inventory(export_dir, manifest)
    return "verified" if not problems else "damaged: " + "; ".join(problems[:3])


def _reference_check(reference: Reference) -> ArtifactCheck:
    ran = ArtifactCheck(reference.unit.name, "saved_model", reference.input_type)
    try:
        for outputs in reference.outputs:
            check_finite_outputs(outputs, f"the {reference.input_type} SavedModel")
    except NonFiniteOutputs as exc:
        ran.error = exc.message
    return ran


def validate(options: ValidateOptions) -> ValidationReport:
    export_dir = location(options.export_dir)
    check_scheme_supported(export_dir, "export")
    if options.label_map is not None and not Path(options.label_map).is_file():
        raise InputError(f"label map {options.label_map} does not exist; give the path of a label_map.pbtxt")
    units = find_units(export_dir, options.staged)
    for unit in units:  # before TensorFlow: a .pb protobuf could never parse is refused in milliseconds
        check_protobuf_file(Path(str(unit.saved_model)) / "saved_model.pb", "SavedModel", "export again")
    images, names = load_images(options)
    manifest = read_manifest(export_dir)
    tolerance = Tolerance(options.atol, options.score_threshold,
                          thresholds({**dict(recorded_thresholds(manifest)), **dict(options.min_agreement)}))
    report = ValidationReport(options.export_dir, len(images), options.atol,
                              manifest=_manifest_state(export_dir, manifest))
    for unit in units:
        reference = run_reference(unit, options.signature_key, images)
        ran = _reference_check(reference)
        report.checks.append(ran)
        if not ran.ok:
            continue
        checks = [check for name, artifact in unit.artifacts.items()
                  for check in TARGETS[name].verify_all(artifact, reference, tolerance)]
        checks += signature_checks(reference, tolerance) + batch_checks(reference, tolerance) + warmup_checks(reference)
        report.checks.extend(checks)
        if options.save_images is not None:
            report.saved_images += [str(p) for p in _draw(options.save_images, options, unit, reference, names, checks)]
    return report


def _draw(directory: Path, options: ValidateOptions, unit: Unit, reference: Reference, names: list[str],
          checks: list[ArtifactCheck]) -> list[Path]:
    from od_export.verify.drawing import label_map_names, save_side_by_side

    config = next((d / PIPELINE_CONFIG_NAME for d in (unit.directory, location(options.export_dir))
                   if (d / PIPELINE_CONFIG_NAME).is_file()), None)
    labels = label_map_names(config, options.label_map)
    columns = [("SavedModel", reference.outputs, [])] + [(c.artifact, c.outputs, c.expected) for c in checks]
    return save_side_by_side(directory, unit.name, reference.images, names, columns, labels, options.score_threshold)
