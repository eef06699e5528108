"""pipeline.config + checkpoint → SavedModel and frozen graph for each input type.

One process, one model build and one checkpoint restore for all input types; each
serving function is traced once and used for both the SavedModel and the frozen
graph.  Everything is written into a staging directory and checked (the SavedModel
is loaded from disk and run, the frozen graph is run, and both must give the same
detections) before it is moved into place.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from od_export import checkpoints, compat, freeze, health, log, samples
from od_export.compare import OutputDifference, compare_outputs
from od_export.errors import ExportFailed, ValidationFailed
from od_export.manifest import MANIFEST_NAME, build_manifest, write_manifest
from od_export.model import build_model, restore_checked
from od_export.options import ExportOptions
from od_export.pipeline_config import load_pipeline_config, meta_architecture
from od_export.saved_model import CHECKPOINT_DIR, SAVED_MODEL_DIR, copy_checkpoint, write_checkpoint, write_saved_model
from od_export.storage import remote
from od_export.storage.location import AnyPath, check_scheme_supported, location
from od_export.storage.target import OutputPlan, plan_output, reserve, staged_output
from od_export.tracing import TracedFunction, detection_module, signature_description, trace
from od_export.validate import ValidateOptions, format_report, validate


@dataclass
class InputTypeResult:
    input_type: str
    directory: AnyPath
    relative: Path
    signature: dict[str, Any]
    autograph: bool
    frozen_files: list[Path] = field(default_factory=list)
    check: tuple[OutputDifference, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_type": self.input_type,
            "directory": str(self.directory),
            "saved_model": str(self.directory / SAVED_MODEL_DIR),
            "checkpoint": str(self.directory / CHECKPOINT_DIR / "ckpt-0"),
            "pipeline_config": str(self.directory / "pipeline.config"),
            "frozen_graph": [str(p) for p in self.frozen_files],
            "signature": self.signature,
            "traced_with_autograph": self.autograph,
            "check": {d.key: {"max_abs_diff": d.max_abs_diff, "ok": d.ok} for d in self.check},
        }


@dataclass
class ExportResult:
    output_dir: AnyPath
    checkpoint: AnyPath
    architecture: str
    signature_key: str
    artifacts: list[InputTypeResult]
    notes: list[str]
    timings: dict[str, float]
    validation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_dir": str(self.output_dir),
            "manifest": str(self.output_dir / MANIFEST_NAME),
            "validation": self.validation,
            "checkpoint": str(self.checkpoint),
            "architecture": self.architecture,
            "signature_key": self.signature_key,
            "input_types": [a.to_dict() for a in self.artifacts],
            "notes": self.notes,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }


class _Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + now - self._last
        self._last = now


@dataclass(frozen=True)
class _Sources:
    config: Any
    checkpoint: checkpoints.ResolvedCheckpoint
    output: OutputPlan


def _check_sources(options: ExportOptions) -> _Sources:
    """Every input and output check, in order of cost; TensorFlow only for remote paths.

    Local paths are checked before TensorFlow is imported, so a typo fails in well
    under a second.  A URL whose scheme this TensorFlow cannot open fails right after
    the import, before any model is built.
    """
    options.check()
    config_path, checkpoint_path = location(options.pipeline_config), location(options.checkpoint_dir)
    for what, path in (("pipeline config", config_path), ("checkpoint directory", checkpoint_path),
                       ("output", location(options.output_dir))):
        check_scheme_supported(path, what)  # imports TensorFlow for a URL only
    config = load_pipeline_config(config_path, options.config_overrides)
    resolved = checkpoints.resolve_checkpoint(checkpoint_path, options.checkpoint)
    output = plan_output(options.output_dir, options.overwrite,
                         [("checkpoint directory", resolved.directory), ("pipeline config", config_path)])
    return _Sources(config, resolved, output)


def export(options: ExportOptions) -> ExportResult:
    """Run the whole export; raises an :class:`OdExportError` subclass on any problem."""
    clock = _Stopwatch()
    sources = _check_sources(options)
    notes = [sources.checkpoint.note] if sources.checkpoint.note else []
    for note in notes:
        log.warn(note)
    with reserve(sources.output, options.wait):
        if sources.output.is_remote:
            remote.check_remote_target(sources.output.target, options.overwrite)
        compat.import_object_detection()
        clock.lap("import_and_config")
        return _export_reserved(options, sources, notes, clock)


def _build_and_restore(options: ExportOptions, sources: _Sources, clock: _Stopwatch) -> tuple[Any, list[TracedFunction]]:
    """One model build, a trace per input type, and one checked restore."""
    architecture = meta_architecture(sources.config)
    prefix = sources.checkpoint.prefix
    log.info(f"building {architecture} model, checkpoint {prefix}")
    model = build_model(sources.config)
    traced = [_trace(model, options.input_types[0], architecture, options)]
    clock.lap("build_and_trace")
    restore_checked(model, prefix)  # the first trace created the variables
    health.check_finite_weights(model, prefix)
    if options.freeze:
        health.check_frozen_graph_fits(health.model_weight_bytes(model))
    clock.lap("restore")
    traced += [_trace(model, t, architecture, options) for t in options.input_types[1:]]
    clock.lap("build_and_trace")
    return model, traced


def _export_reserved(options: ExportOptions, sources: _Sources, notes: list[str], clock: _Stopwatch) -> ExportResult:
    """Build, write in staging, check, write the manifest, publish; the target is reserved."""
    model, traced = _build_and_restore(options, sources, clock)
    final_dir = sources.output.target
    single = len(traced) == 1
    results: list[InputTypeResult] = []
    with staged_output(sources.output) as staging:
        for item in traced:
            relative = Path() if single else Path(item.input_type)
            first_checkpoint = (staging / results[0].relative / CHECKPOINT_DIR) if results else None
            results.append(_write_input_type(model, sources.config, item, staging, relative, final_dir,
                                             first_checkpoint, options, clock))
        validation = None
        if options.validate:
            validation = _validate_staged(staging, final_dir, options)
            clock.lap("validate")
        write_manifest(staging, build_manifest(
            staging, pipeline_config=location(options.pipeline_config), checkpoint_prefix=sources.checkpoint.prefix,
            config_overrides=options.config_overrides, architecture=meta_architecture(sources.config),
            input_types=[{"input_type": r.input_type, "directory": str(r.relative),
                          "signature": r.signature, "traced_with_autograph": r.autograph} for r in results],
            timings=clock.timings, validation=validation,
        ))
    log.info(f"wrote {final_dir}")
    return ExportResult(final_dir, sources.checkpoint.prefix, meta_architecture(sources.config),
                        options.signature_key, results, notes, clock.timings, validation)


def _write_input_type(
    model: Any, config: Any, item: TracedFunction, staging: Path, relative: Path, final_dir: AnyPath,
    first_checkpoint: Path | None, options: ExportOptions, clock: _Stopwatch,
) -> InputTypeResult:
    """exporter_main_v2's layout for one input type, plus the frozen graph, then the check."""
    od = compat.import_object_detection()
    directory = staging / relative
    final_directory = final_dir / str(relative) if str(relative) != "." else final_dir
    directory.mkdir(parents=True, exist_ok=True)
    if first_checkpoint is None:
        write_checkpoint(model, directory / CHECKPOINT_DIR)
    else:
        copy_checkpoint(first_checkpoint, directory / CHECKPOINT_DIR)  # identical files: copy, not save
    od.config_util.save_pipeline_config(config, str(directory))
    log.info(f"{item.input_type}: writing SavedModel")
    write_saved_model(model, item, directory / SAVED_MODEL_DIR, options.full_object_graph)
    clock.lap("save")
    result = InputTypeResult(item.input_type, final_directory, relative, signature_description(item.concrete),
                             item.autograph)
    frozen = None
    if options.freeze:
        frozen = freeze.freeze_function(item.concrete, options.signature_key)
        health.check_frozen_graph_fits(frozen.graph_def.ByteSize())
        written = freeze.write_frozen_graph(frozen, directory / "frozen_graph", options.frozen_format)
        result.frozen_files = [final_directory / "frozen_graph" / p.name for p in written]
        clock.lap("freeze")
    result.check = _check_artifacts(item, result.signature["inputs"], directory, frozen, options.signature_key)
    clock.lap("check")
    return result


def _validate_staged(staging: Path, final_dir: Path, options: ExportOptions) -> dict[str, Any]:
    """``od-export validate`` on the finished staging directory; a mismatch aborts the export."""
    log.info("validating every artifact against its SavedModel")
    report = validate(ValidateOptions(staging, signature_key=options.signature_key, staged=True))
    if not report.ok:
        raise ValidationFailed(format_report(report).splitlines()[-1] + "; nothing was written")
    document = report.to_dict()
    document["export_dir"] = str(final_dir)
    return document


def _trace(model: Any, input_type: str, architecture: str, options: ExportOptions) -> TracedFunction:
    log.info(f"{input_type}: tracing the serving function")
    module = detection_module(model, input_type, options.side_inputs)
    return trace(module, input_type, architecture)


def sample_feeds(signature_inputs: dict[str, Any], input_type: str) -> dict[str, np.ndarray]:
    """Sample values for every signature input: the image, and zeros for side inputs."""
    feeds = {}
    for name, spec in signature_inputs.items():
        if name == "input_tensor":
            feeds[name] = samples.input_batch(input_type, samples.sample_image())
        else:
            shape = [1 if d is None else d for d in (spec["shape"] or [1])]
            feeds[name] = np.zeros(shape, dtype=np.dtype(spec["dtype"]) if spec["dtype"] != "string" else object)
    return feeds


def _check_artifacts(
    item: TracedFunction, signature_inputs: dict[str, Any], directory: Path, frozen: freeze.FrozenGraph | None, signature_key: str
) -> tuple[OutputDifference, ...]:
    """Load the written SavedModel and run it; run the frozen graph; require equal detections."""
    feeds = sample_feeds(signature_inputs, item.input_type)
    try:
        reference = samples.run_saved_model(directory / SAVED_MODEL_DIR, feeds, signature_key)
    except Exception as exc:  # any failure here means the artifact is unusable
        raise ExportFailed(f"{item.input_type}: the written SavedModel does not load and run: {exc}") from exc
    health.check_finite_outputs(reference, f"the {item.input_type} SavedModel")
    if frozen is None:
        return ()
    spec = frozen.io_spec
    candidate = samples.run_frozen_graph(
        frozen.graph_def,
        {spec["inputs"][name]["tensor"]: value for name, value in feeds.items()},
        {key: entry["tensor"] for key, entry in spec["outputs"].items()},
    )
    differences = compare_outputs(reference, candidate)
    bad = [d for d in differences if not d.ok]
    if bad:
        raise ExportFailed(
            f"{item.input_type}: the frozen graph disagrees with the SavedModel on "
            + ", ".join(f"{d.key} (max |diff| {d.max_abs_diff:.3g})" for d in bad)
        )
    return differences
