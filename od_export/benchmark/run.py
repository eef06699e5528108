"""``od-export benchmark``: every artifact of an export on the run's own evaluation data.

Each unit's SavedModel and every artifact beside it (one runner per file: each
TFLite precision, OpenVINO at f32 and at this CPU's default) is loaded, warmed up
and run on the same decoded images, fed as its users feed it; its detections are
scored by the OD API's COCO evaluator.  The result is a table, ``benchmark/`` in
the export (``benchmark.json``, two plots, ``benchmark.html``, recorded in the
manifest), and gates on mAP that fail the command (exit 1) and name the artifact.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from od_export.benchmark.data import DataSource, EvalImage, read_coco, read_records, records_from_config
from od_export.benchmark.report import BenchmarkResult, Gates, Row
from od_export.errors import InputError, option
from od_export.layout import PIPELINE_CONFIG_NAME, Unit
from od_export.targets import find_units
from od_export.storage.location import AnyPath, check_scheme_supported, location

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchmarkOptions:
    export_dir: AnyPath
    source: DataSource = DataSource()
    gates: Gates = Gates()
    signature_key: str = "serving_default"
    #: Write ``benchmark/`` (JSON, plots, HTML) into the export and record it in the manifest.
    save: bool = True
    #: Evaluation images drawn with every artifact's detections in ``benchmark.html``.
    grid_images: int = 4


def check_options(options: BenchmarkOptions) -> None:
    """Refuse impossible values before anything is read (library words, no flag names)."""
    source, gates = options.source, options.gates
    if source.max_images < 0:
        raise InputError(f"{option('max_images')} must be 0 (all) or more, not {source.max_images}")
    if gates.min_map is not None and not 0.0 <= gates.min_map <= 1.0:
        raise InputError(f"{option('min_map')} is a COCO mAP between 0 and 1, not {gates.min_map:g}")
    if gates.max_map_drop is not None and not 0.0 <= gates.max_map_drop <= 1.0:
        raise InputError(f"{option('max_map_drop')} is an mAP difference between 0 and 1, not {gates.max_map_drop:g}")
    if (source.coco_annotations is None) != (source.coco_images is None):
        raise InputError(f"COCO data needs both the annotation file ({option('coco')}) and the image directory "
                         f"({option('images')})")
    if source.records and source.coco_annotations is not None:
        raise InputError(f"give the evaluation data either as records ({option('data')}) or as COCO "
                         f"({option('coco')}), not both")
    if options.grid_images < 0:
        raise InputError(f"{option('grid_images')} is a number of images, 0 or more, not {options.grid_images}")
    if source.label_map is not None and not Path(source.label_map).is_file():
        raise InputError(f"label map {source.label_map} does not exist; give the path of a label_map.pbtxt")


def _config(export_dir: AnyPath, units: list[Unit]) -> tuple[Any, list[Path]]:
    """The export's pipeline.config, and where the paths it names may be relative to."""
    from od_export.manifest import data_directories
    from od_export.source.pipeline_config import load_pipeline_config

    for directory in [unit.directory for unit in units] + [export_dir]:
        if (directory / PIPELINE_CONFIG_NAME).is_file():
            path = directory / PIPELINE_CONFIG_NAME
            return load_pipeline_config(path), data_directories(path)
    raise InputError(f"{export_dir} has no pipeline.config; benchmark needs it for the classes and the evaluation data")


def load_data(options: BenchmarkOptions, config: Any, bases: list[Path]) -> tuple[list[EvalImage], str, Path | None]:
    """The images, a description of where they came from, and the label map that names the classes."""
    from od_export.source.pipeline_config import num_classes

    source, classes = options.source, num_classes(config)
    if source.coco_annotations is not None:
        images = read_coco(source.coco_annotations, source.coco_images, classes, source.max_images)
        return images, str(source.coco_annotations), source.label_map
    if source.records:
        return read_records(source.records, source.label_map, classes, source.max_images), ", ".join(source.records), source.label_map
    patterns, label_map = records_from_config(config, bases)
    label_map = source.label_map or label_map
    return read_records(patterns, label_map, classes, source.max_images), ", ".join(patterns), label_map


def benchmark(options: BenchmarkOptions) -> BenchmarkResult:
    from od_export.benchmark import coco
    from od_export.benchmark.timing import ResizedImages, run_artifact
    from od_export.source.pipeline_config import num_classes
    from od_export.verify.drawing import label_map_names

    started = time.perf_counter()
    check_options(options)
    export_dir = location(options.export_dir)
    check_scheme_supported(export_dir, "export")
    units = find_units(export_dir)
    config, bases = _config(export_dir, units)
    loading = time.perf_counter()
    images, described, label_map = load_data(options, config, bases)
    names = label_map_names(None, label_map) if label_map else {}
    categories = coco.categories(num_classes(config), names)
    result = BenchmarkResult(str(options.export_dir), described, len(images), gates=options.gates,
                             data_seconds=time.perf_counter() - loading)
    resized = ResizedImages(images)
    for unit in units:
        unit_name = "." if len(units) == 1 else unit.name
        unit_rows = []
        for runner in _runners(unit, options.signature_key):
            logger.info(f"benchmarking {runner.name} on {len(images)} images")
            unit_rows.append(Row(unit_name, run_artifact(runner, resized)))
        evaluated = time.perf_counter()
        for row in unit_rows:
            if row.run.error is None:
                row.coco = coco.evaluate(images, row.run.detections, categories)
        result.evaluator_seconds += time.perf_counter() - evaluated
        reference = unit_rows[0].coco
        for row in unit_rows:
            row.map_drop = reference.map - row.coco.map if reference and row.coco else None
        result.rows += unit_rows
    if options.save:
        from od_export.benchmark.save import save_benchmark

        result.seconds = time.perf_counter() - started  # as benchmark.json records it: all but writing it
        result.written = save_benchmark(export_dir, result, images, names, options.grid_images)
    result.seconds = time.perf_counter() - started
    return result


def _runners(unit: Unit, signature_key: str) -> list[Any]:
    from od_export.targets import TARGETS
    from od_export.targets.saved_model import SavedModelRunner

    runners = [SavedModelRunner("saved_model", unit.saved_model, signature_key)]
    for name, artifact in unit.artifacts.items():
        runners += TARGETS[name].runners(artifact)
    return runners
