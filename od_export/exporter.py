"""pipeline.config + checkpoint → every requested target, for each input type, verified.

One process, one model build and one checkpoint restore for all input types; each
serving function is traced once and handed to every target (SavedModel, frozen graph,
ONNX, …; see :mod:`od_export.targets`).  Everything is written into a staging
directory and verified there by :func:`od_export.validator.validate`, the same
function as ``od-export validate``, before it is moved into place.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from od_export import compat, health
from od_export.errors import NonFiniteOutputs, ValidationFailed
from od_export.layout import unit_relative
from od_export.manifest import build_manifest, export_request, write_manifest
from od_export.options import ExportOptions
from od_export.results import ExportResult, InputTypeResult
from od_export.source import checkpoints
from od_export.source.build_paths import check_build_paths
from od_export.source.model import BuiltModels, build_model, restore_checked
from od_export.source.inputs import check_checkpoint_files, export_inputs
from od_export.source.labels import Labels, read_labels
from od_export.source.pipeline_config import load_pipeline_config, meta_architecture, num_classes
from od_export.source.tracing import TracedFunction, detection_module, signature_description, trace
from od_export.storage import remote
from od_export.storage.location import AnyPath, check_scheme_supported, location
from od_export.storage.output import OutputPlan, plan_output, reserve, staged_output
from od_export.targets import TARGETS, ExportContext, Target, check_export_options, get_target, warn_unread_settings
from od_export.tf1 import od_api
from od_export.verify.compare import OutputDifference
from od_export.verify.report import artifact_label, failure_summary, failures
from od_export.validator import ValidateOptions, ValidationReport, validate

logger = logging.getLogger(__name__)
#: Timing phase per target, as manifests have always named them (other targets use their own name).
PHASES = {"saved_model": "save", "frozen_graph": "freeze"}


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
    labels: Labels | None = None


def requested_targets(options: ExportOptions) -> list[Target]:
    """The SavedModel, the frozen graph unless it was turned off, then the extra targets asked for."""
    names = ["saved_model"] + (["frozen_graph"] if options.freeze else []) + list(options.targets)
    return [get_target(name) for name in dict.fromkeys(names)]


def _check_sources(options: ExportOptions) -> _Sources:
    """Every input and output check, in order of cost; TensorFlow only for remote paths.

    Local paths are checked before TensorFlow is imported, so a typo fails in well
    under a second.  A URL whose scheme this TensorFlow cannot open fails right after
    the import, before any model is built.
    """
    check_export_options(options)
    config_path, checkpoint_path = location(options.pipeline_config), location(options.checkpoint_dir)
    for what, path in (("pipeline config", config_path), ("checkpoint directory", checkpoint_path),
                       ("output", location(options.output_dir))):
        check_scheme_supported(path, what)  # imports TensorFlow for a URL only
    config = load_pipeline_config(config_path, options.config_overrides)
    check_build_paths(config)
    resolved = checkpoints.resolve_checkpoint(checkpoint_path, options.checkpoint)
    check_checkpoint_files(resolved)
    output = plan_output(options.output_dir, options.overwrite, export_inputs(options, resolved))
    if od_api.is_tf1_config(config):
        od_api.check_tf1_request(options)
    for target in requested_targets(options):  # still before TensorFlow: a missing extra fails in a second
        target.check_available()
        target.check_request(meta_architecture(config), config, options)
    warn_unread_settings(options.conversion, [t.name for t in requested_targets(options)])
    labels = read_labels(config_path, options.label_map, num_classes(config))
    return _Sources(config, resolved, output, labels)


def check_request(options: ExportOptions) -> None:
    """Every check an export makes before TensorFlow (``batch --check`` runs these)."""
    _check_sources(options)


def export(options: ExportOptions, built: BuiltModels | None = None) -> ExportResult:
    """Run the whole export; raises an :class:`OdExportError` subclass on any problem.

    ``built`` lets a series of exports (a batch, a watched run) build each model once.
    """
    clock = _Stopwatch()
    sources = _check_sources(options)
    notes = [sources.checkpoint.note] if sources.checkpoint.note else []
    for note in notes:
        logger.warning(note)
    with reserve(sources.output, options.wait):
        if sources.output.is_remote:
            remote.check_remote_target(sources.output.target, options.overwrite)
        logger.info("loading TensorFlow and the Object Detection API")
        compat.import_object_detection()
        clock.lap("import_and_config")
        if od_api.is_tf1_config(sources.config):
            return od_api.export_tf1(options, sources.config, sources.checkpoint.prefix, sources.output, notes, clock.timings)
        result = _export_reserved(options, sources, notes, clock, built)
    if options.benchmark is not None:  # after the reservation: the benchmark takes the export's lock itself
        result.benchmark = _benchmark(result.output_dir, options.benchmark)
    return result


def _benchmark(output_dir: Any, request: Any) -> dict[str, Any]:
    from od_export.benchmark import BenchmarkOptions, DataSource, Gates, benchmark

    done = benchmark(BenchmarkOptions(output_dir, DataSource(request.data, max_images=request.max_images),
                                      Gates(request.min_map, request.max_map_drop), grid_images=0))
    if not done.ok:
        logger.error(done.failure_message())
    return done.to_dict()


def _build_and_restore(options: ExportOptions, sources: _Sources, clock: _Stopwatch,
                       built: BuiltModels | None) -> tuple[Any, list[TracedFunction]]:
    """One model build, a trace per input type, and one checked restore (only the restore when reused)."""
    architecture = meta_architecture(sources.config)
    prefix = sources.checkpoint.prefix
    key = BuiltModels.key(options, sources.config)
    reused = built.get(key) if built is not None else None
    if reused is not None:
        logger.info(f"reusing the built {architecture} model, checkpoint {prefix}")
        model, traced = reused
        _restore(model, prefix, options)
        clock.lap("restore")
        return model, traced
    logger.info(f"building {architecture} model, checkpoint {prefix}")
    model = build_model(sources.config)
    traced = [_trace(model, options.input_types[0], architecture, options)]
    clock.lap("build_and_trace")
    _restore(model, prefix, options)  # the first trace created the variables
    clock.lap("restore")
    traced += [_trace(model, t, architecture, options) for t in options.input_types[1:]]
    clock.lap("build_and_trace")
    if built is not None:
        built.put(key, model, traced)
    return model, traced


def _restore(model: Any, prefix: AnyPath, options: ExportOptions) -> None:
    restore_checked(model, prefix)
    health.check_finite_weights(model, prefix)
    if options.freeze:
        health.check_frozen_graph_fits(health.model_weight_bytes(model))


def _export_reserved(options: ExportOptions, sources: _Sources, notes: list[str], clock: _Stopwatch,
                     built: BuiltModels | None) -> ExportResult:
    """Build, write every target in staging, verify, write the manifest, publish; the target is reserved."""
    model, traced = _build_and_restore(options, sources, clock, built)
    architecture = meta_architecture(sources.config)
    final_dir = sources.output.target
    shared: dict[str, Any] = {}
    results: list[InputTypeResult] = []
    with staged_output(sources.output) as staging:
        for context in _unit_contexts(options, sources.config, architecture, traced, model, staging, shared,
                                      sources.labels):
            results.append(_write_unit(context, staging, final_dir, len(traced) == 1 or options.single_saved_model, clock))
        report, failed = _verify_staged(staging, options)
        clock.lap("check")
        validation = {**report.to_dict(), "export_dir": str(final_dir)} if options.validate else None
        for result in results:
            result.checks = _unit_checks(report, result)
            result.agreement = _unit_agreement(report, result)
            _drop_discarded(result, staging)
        write_manifest(staging, build_manifest(
            staging, request=export_request(options), pipeline_config=location(options.pipeline_config), checkpoint_prefix=sources.checkpoint.prefix,
            config_overrides=options.config_overrides, architecture=architecture,
            input_types=[{"input_type": r.input_type, "directory": str(r.relative), "signature": r.signature,
                          "traced_with_autograph": r.autograph, "targets": sorted(r.artifacts),
                          "agreement": r.agreement} for r in results],
            timings=clock.timings, validation=validation, min_agreement=options.conversion.min_agreement,
            failed=failed,
        ))
    logger.info(f"wrote {final_dir}")
    return ExportResult(final_dir, sources.checkpoint.prefix, architecture, options.signature_key, results, notes,
                        clock.timings, validation, failed)


def _unit_contexts(options: ExportOptions, config: Any, architecture: str, traced: list[TracedFunction], model: Any,
                   staging: Path, shared: dict[str, Any], labels: Labels | None) -> list[ExportContext]:
    """One unit per input type; or, for one SavedModel serving them all, one unit at the root.

    That unit's frozen graph and converter targets start from the function its
    signature key selects; its SavedModel carries every input type's function.
    """
    if not options.single_saved_model:
        return [ExportContext(config, architecture, item.input_type, item, options, model,
                              staging / unit_relative(item.input_type, len(traced) == 1), shared, labels=labels)
                for item in traced]
    by_type = {item.input_type: item for item in traced}
    selected = by_type[options.selected_input_type]
    signatures = {"serving_default": traced[0], **by_type}
    return [ExportContext(config, architecture, selected.input_type, selected, options, model, staging, shared,
                          signatures=signatures, labels=labels)]


def _write_unit(context: ExportContext, staging: Path, final_dir: AnyPath, single: bool, clock: _Stopwatch) -> InputTypeResult:
    """One input type's unit: the SavedModel (exporter_main_v2's layout), then every other target."""
    relative = unit_relative(context.input_type, single)
    directory = staging / relative
    final_directory = final_dir if single else final_dir / str(relative)
    result = InputTypeResult(context.input_type, final_directory, relative, signature_description(context.traced.concrete),
                             context.traced.autograph)
    for target in requested_targets(context.options):
        if not target.supports_input_type(context.input_type):
            logger.warning(f"{context.input_type}: no {target.name} artifact: {target.unsupported_reason(context.input_type)}")
            continue
        logger.info(f"{context.input_type}: writing {target.name}")
        where = directory if target.name == "saved_model" else directory / target.directory
        written = target.write_labelled(context, where)
        result.artifacts[target.name] = [final_directory / p.relative_to(directory) for p in written]
        clock.lap(PHASES.get(target.name, target.name))
    return result


def _verify_staged(staging: Path, options: ExportOptions) -> tuple[ValidationReport, list[dict[str, Any]]]:
    """``od-export validate`` on the staging directory; a failed artifact aborts the export.

    With ``keep_going``, each artifact that failed its check is removed from staging
    instead and returned as a record (name, reason, figures); the rest is published.
    A failure that no artifact can be removed for (a signature of one SavedModel) aborts.
    """
    logger.info("verifying every artifact against its SavedModel")
    report = validate(ValidateOptions(staging, signature_key=options.signature_key,
                                      min_agreement=options.conversion.min_agreement, staged=True))
    for check in report.checks:
        if check.artifact == "saved_model" and check.error:  # the reference itself is unusable
            raise NonFiniteOutputs(check.error)
    failed = failures(report)
    removable = all(check.artifact.partition(":")[0] in TARGETS for check, _ in failed)
    if failed and not (options.keep_going and removable):
        raise ValidationFailed(f"{failure_summary(report, staging.name)}; nothing was written")
    records = []
    for check, reason in failed:
        unit_dir = staging if check.unit == staging.name else staging / check.unit
        get_target(check.artifact.partition(":")[0]).discard(unit_dir, check.artifact)
        logger.warning(f"{artifact_label(check, staging.name)} {reason}; not published")
        records.append({"unit": check.input_type, "artifact": check.artifact, "reason": reason,
                        **({"agreement": check.agreement.to_dict()} if check.agreement else {})})
    return report, records


def _unit_checks(report: ValidationReport, result: InputTypeResult) -> dict[str, tuple[OutputDifference, ...]]:
    """The verification results of one unit, per artifact (a single-input-type export has only one unit)."""
    single = str(result.relative) == "."
    return {check.artifact: check.differences for check in report.checks
            if check.artifact != "saved_model" and (single or check.unit == result.input_type)}


def _unit_agreement(report: ValidationReport, result: InputTypeResult) -> dict[str, dict[str, Any]]:
    """Each reduced-precision artifact's detection agreement in one unit (``tflite:int8`` → figures)."""
    single = str(result.relative) == "."
    return {check.artifact: check.agreement.to_dict() for check in report.checks
            if check.agreement is not None and (single or check.unit == result.input_type)}


def _drop_discarded(result: InputTypeResult, staging: Path) -> None:
    """Forget the files that a failed check removed from staging (a whole target, or one TFLite precision)."""
    unit, prefix = staging / result.relative, len(str(result.directory)) + 1
    for name, paths in list(result.artifacts.items()):
        kept = [p for p in paths if (unit / str(p)[prefix:]).exists()]
        if kept:
            result.artifacts[name] = kept
        else:
            del result.artifacts[name]


def _trace(model: Any, input_type: str, architecture: str, options: ExportOptions) -> TracedFunction:
    logger.info(f"{input_type}: tracing the serving function")
    module = detection_module(model, input_type, options.side_inputs)
    return trace(module, input_type, architecture, options.dynamic_batch)
