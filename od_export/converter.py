"""Existing export → more targets, without the training checkpoint (``od-export convert``).

Works on od-export's exports, exporter_main_v2's and model-zoo directories
(``saved_model/`` plus ``pipeline.config``).  When a unit carries the exporter's own
``checkpoint/ckpt-0`` the model is rebuilt from the config and restored from it, so
the targets start from the same traced function as in an export; otherwise they
start from the SavedModel's signature.  The export is rebuilt in a staging directory
(unchanged files hard-linked, not copied), the new artifacts are verified like any
export, the manifest is updated, and the whole directory is swapped into place.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from od_export import compat
from od_export.errors import InputError, OutputError, ValidationFailed, option
from od_export.layout import CHECKPOINT_DIR, PIPELINE_CONFIG_NAME, Unit
from od_export.manifest import MANIFEST_NAME, read_manifest, recorded_thresholds, update_manifest
from od_export.options import ConversionOptions, ExportOptions
from od_export.source.labels import SAVED_MODEL_LABELS, Labels, read_labels
from od_export.source.pipeline_config import load_pipeline_config, meta_architecture, num_classes
from od_export.source.tracing import TracedFunction
from od_export.storage.location import RemotePath, location
from od_export.storage.output import check_apart, plan_output, reserve, staged_output
from od_export.targets import (OPTIONAL_TARGETS, ExportContext, Target, check_conversion, find_units, get_target,
                               warn_unread_settings)
from od_export.verify.report import failure_summary
from od_export.verify.tolerance import thresholds
from od_export.validator import ValidateOptions, validate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConvertOptions:
    export_dir: str | Path
    targets: tuple[str, ...]
    pipeline_config: str | Path | None = None
    conversion: ConversionOptions = field(default_factory=ConversionOptions)
    signature_key: str = "serving_default"
    overwrite: bool = False
    wait: bool = False
    #: The run's label map (default: the one the export's pipeline.config names).
    label_map: str | Path | None = None


@dataclass
class ConvertResult:
    export_dir: Path
    written: dict[str, dict[str, list[str]]]
    validation: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"export_dir": str(self.export_dir), "written": self.written, "validation": self.validation}


def _check(options: ConvertOptions) -> tuple[Path, list[Unit], Any, list[Target], ExportOptions, Labels | None]:
    if not options.targets:
        raise InputError(f"no target given; choose from: {', '.join(OPTIONAL_TARGETS)}")
    targets = [get_target(name) for name in dict.fromkeys(options.targets)]
    if any(t.name == "saved_model" for t in targets):
        raise InputError("an export already has its SavedModel; choose another target")
    check_conversion(options.conversion)
    if "serving_warmup" in options.conversion.given():
        raise InputError("warm-up records go into the SavedModel, which convert leaves as it is; export again with them")
    for target in targets:
        target.check_available()
    warn_unread_settings(options.conversion, [t.name for t in targets])
    export_dir = location(options.export_dir)
    if isinstance(export_dir, RemotePath):
        raise InputError(f"convert works on local exports; copy {export_dir} here first")
    _check_no_links(Path(export_dir))
    units = find_units(export_dir)
    config_path = options.pipeline_config or next(
        (p for p in [u.directory / PIPELINE_CONFIG_NAME for u in units] + [export_dir / PIPELINE_CONFIG_NAME] if p.is_file()),
        None)
    if config_path is None:
        raise InputError(f"{export_dir} has no pipeline.config; give the run's config ({option('pipeline_config')})")
    config = load_pipeline_config(config_path)
    from od_export.tf1.od_api import is_tf1_config

    if is_tf1_config(config):
        raise InputError(f"{export_dir} holds a TF1 (slim) model: the TF1 exporter's frozen graph and SavedModel are "
                         "all od-export makes of it; for other targets use a TF2 (*_keras) feature extractor")
    request = ExportOptions(config_path, export_dir, export_dir, signature_key=options.signature_key,
                            conversion=options.conversion)
    for target in targets:
        target.check_request(meta_architecture(config), config, request)
        taken = [u.name for u in units if target.name in u.artifacts]
        if taken and not options.overwrite:
            raise OutputError(f"{export_dir} already has a {target.name} artifact ({', '.join(taken)}); "
                              f"pass {option('overwrite')} to replace it")
    labels = read_labels(config_path, options.label_map, num_classes(config),
                         exported=Path(units[0].directory) / SAVED_MODEL_LABELS)
    inputs = [("pipeline config", location(config_path))] + [
        (what, location(path)) for what, path in (("label map", options.label_map),
                                                  ("calibration images", options.conversion.calibration_images)) if path]
    for unit in units:  # what is kept is hard-linked over; what is rewritten must not hold an input
        for target in targets:
            check_apart(str(unit.directory / target.directory), inputs)
    return Path(export_dir), units, config, targets, request, labels


def _traced(unit: Unit, config: Any, signature_key: str, models: dict[str, Any],
            need_model: bool) -> tuple[TracedFunction, Any]:
    """The unit's serving function: retraced from its checkpoint when it has one, else its signature.

    Targets that read only the written SavedModel (OpenVINO) need neither, so then the
    model is not rebuilt.
    """
    from od_export.source.model import build_model, restore_checked
    from od_export.source.tracing import detection_module, trace
    from od_export.verify.reference import input_type_of, load_signature

    signature = load_signature(unit, signature_key)
    input_type = input_type_of(signature, unit.name)
    prefix = unit.directory / CHECKPOINT_DIR / "ckpt-0"
    if not need_model:
        return TracedFunction(input_type, None, signature, autograph=True), None
    if not prefix.with_name("ckpt-0.index").is_file():
        logger.info(f"{unit.name}: no checkpoint/ckpt-0 beside the SavedModel: converting its signature")
        return TracedFunction(input_type, None, signature, autograph=True), None
    if "model" not in models:
        models["model"] = build_model(config)
    model = models["model"]
    opened = signature.structured_input_signature[1]["input_tensor"].shape[0] is None  # as the SavedModel was exported
    traced = trace(detection_module(model, input_type), input_type, meta_architecture(config), dynamic_batch=opened)
    if "restored" not in models:
        restore_checked(model, prefix)
        models["restored"] = True
    return traced, model


def _check_no_links(export_dir: Path) -> None:
    """An export holds files, not links: converting one that links elsewhere would copy the outside in."""
    for directory, names, files in os.walk(export_dir):
        for name in names + files:
            if os.path.islink(os.path.join(directory, name)):
                link = Path(directory) / name
                raise InputError(f"{link} is a symbolic link (to {os.readlink(link)}); an export holds no links, and "
                                 "convert never follows one out of the export: replace it with the files or remove it")


def _link_tree(source: Path, destination: Path, replaced: set[str]) -> None:
    """Hard-link the export into staging, leaving out what is rewritten (never written through a link)."""
    def ignore(directory: str, names: list[str]) -> list[str]:
        return [n for n in names if n == MANIFEST_NAME or (n in replaced and os.path.isdir(os.path.join(directory, n)))]

    shutil.copytree(source, destination, symlinks=True, copy_function=os.link, ignore=ignore, dirs_exist_ok=True)


def convert(options: ConvertOptions) -> ConvertResult:
    export_dir, units, config, targets, request, labels = _check(options)
    plan = plan_output(str(export_dir), overwrite=True, keeps_contents=True)  # every file is carried over
    written: dict[str, dict[str, list[str]]] = {}
    with reserve(plan, options.wait):
        logger.info("loading TensorFlow and the Object Detection API")
        compat.import_object_detection()
        with staged_output(plan) as staging:
            _link_tree(export_dir, staging, {t.directory for t in targets})
            models: dict[str, Any] = {}
            shared: dict[str, Any] = {}
            for unit in units:
                relative = unit.directory.relative_to(export_dir)
                traced, model = _traced(unit, config, options.signature_key, models,
                                        any(target.needs_model_for(options.conversion) for target in targets))
                context = ExportContext(config, meta_architecture(config), traced.input_type, traced, request, model,
                                        staging / relative, shared, labels=labels)
                written[unit.name] = _write_targets(context, targets, staging / relative, export_dir / relative)
            # the export's own thresholds still judge its earlier artifacts; the request's win where given
            given = thresholds({**dict(recorded_thresholds(read_manifest(export_dir))),
                                **dict(options.conversion.min_agreement)})
            report = validate(ValidateOptions(staging, signature_key=options.signature_key, min_agreement=given,
                                              staged=True))
            if not report.ok:
                raise ValidationFailed(f"{failure_summary(report, staging.name)}; the export was left unchanged")
            validation = {**report.to_dict(), "export_dir": str(export_dir)}
            update_manifest(export_dir, staging, validation, [t.name for t in targets], given)
    logger.info(f"updated {export_dir}")
    return ConvertResult(export_dir, written, validation)


def _write_targets(context: ExportContext, targets: list[Target], directory: Path, final: Path) -> dict[str, list[str]]:
    written = {}
    for target in targets:
        if not target.supports_input_type(context.input_type):
            logger.warning(f"{context.input_type}: no {target.name} artifact: {target.unsupported_reason(context.input_type)}")
            continue
        logger.info(f"{context.input_type}: writing {target.name}")
        files = target.write_labelled(context, directory / target.directory)
        written[target.name] = [str(final / p.relative_to(directory)) for p in files]
        if (final / target.directory).is_dir():
            kept = target.carry_over(final / target.directory, directory / target.directory)
            if kept:
                logger.info(f"{context.input_type}: kept the earlier {target.name} {', '.join(kept)}")
    return written
