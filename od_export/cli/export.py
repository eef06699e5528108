"""``od-export export``: its arguments (shared with ``watch``), the options they build, the handler."""
from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from od_export import log
from od_export.cli import batch as cli_batch
from od_export.cli import benchmark as cli_benchmark
from od_export.cli import legacy
from od_export.options import (
    FROZEN_FORMATS, INPUT_TYPES, SIGNATURE_KEYS, BenchmarkRequest, ConversionOptions, ExportOptions, parse_side_inputs,
)
from od_export.storage.location import location
from od_export.verify.tolerance import REDUCED_PRECISIONS, Thresholds, describe_defaults, parse_threshold, thresholds

logger = logging.getLogger("od_export.cli")


def add_subcommand(subparsers: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = subparsers.add_parser(
        "export",
        help="checkpoint → SavedModel (+ frozen graph) for one or more input types",
        description="Export an OD API training run. Also accepts exporter_main_v2.py's flag spellings.",
    )
    parser.add_argument("--pipeline-config", "--pipeline_config_path", dest="pipeline_config", required=True, metavar="PATH", help="the run's pipeline.config")
    parser.add_argument("--checkpoint-dir", "--trained_checkpoint_dir", dest="checkpoint_dir", required=True, metavar="DIR", help="directory with ckpt-N files (or a checkpoint prefix)")
    parser.add_argument("--checkpoint", default="latest", help="ckpt-N, N, a prefix path, latest (default), or all (each into OUTPUT/ckpt-N, with OUTPUT/latest)")
    add_export_arguments(parser)
    add_common(parser)
    parser.set_defaults(handler=run)


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Everything but the sources (config, checkpoint directory and choice), which export and watch take differently."""
    parser.add_argument("--output-dir", "--output_directory", dest="output_dir", required=True, metavar="DIR", action=legacy.RecordSpelling, help="where to write the export (must not exist unless --overwrite; exporter_main_v2's --output_directory replaces it, as that tool does)")
    parser.add_argument("--input-type", "--input_type", dest="input_types", action="append", metavar="TYPE", help=f"repeatable; one of {', '.join(INPUT_TYPES)} (default image_tensor)")
    parser.add_argument("--config-override", "--config_override", dest="config_overrides", action="append", default=[], metavar="TEXT_PROTO", help="text proto merged into the config (repeatable)")
    parser.add_argument("--config-override-file", dest="config_override_files", action="append", default=[], metavar="PATH", help="file holding a text-proto override (repeatable)")
    parser.add_argument("--use-side-inputs", "--use_side_inputs", dest="use_side_inputs", action="store_true", help="add side inputs to the image_tensor signature")
    parser.add_argument("--side-input-shapes", "--side_input_shapes", dest="side_input_shapes", default="", help="e.g. 1,-1,4/1,-1 (as exporter_main_v2)")
    parser.add_argument("--side-input-types", "--side_input_types", dest="side_input_types", default="", help="e.g. float32,int32")
    parser.add_argument("--side-input-names", "--side_input_names", dest="side_input_names", default="", help="e.g. boxes,classes")
    parser.add_argument("--signature-key", default="serving_default", help=f"signature the frozen graph (and converter targets) start from: {', '.join(SIGNATURE_KEYS)}, or with --single-saved-model any input type")
    parser.add_argument("--single-saved-model", action="store_true", help="one saved_model/ for every input type: serving_default (the first input type) plus a signature named after each input type, variables stored once")
    parser.add_argument("--dynamic-batch", action="store_true", help="image_tensor takes any batch size (the exporter fixes it at 1): the SavedModel, the frozen graph, ONNX and OpenVINO; not the tensorrt file, whose batch is static")
    parser.add_argument("--no-postprocessing", dest="postprocessing", action="store_false", help="onnx, tflite (fp32): end at raw_detection_boxes and raw_detection_scores (every anchor, before non-maximum suppression), for your own NMS; the SavedModel and frozen graph keep theirs")
    parser.add_argument("--no-freeze", dest="freeze", action="store_false", help="skip the frozen graph")
    parser.add_argument("--frozen-format", default="pb", help=f"one of {', '.join(FROZEN_FORMATS)} (default pb)")
    parser.add_argument("--full-object-graph", action="store_true", help="save the exporter's full Keras object graph (slower, larger)")
    add_target_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory (atomically)")
    parser.add_argument("--validate", action="store_true", help="also record the verification report in manifest.json and --json (every export is verified, as `od-export validate` does, before it is moved into place)")
    parser.add_argument("--keep-going", action="store_true", help="publish the artifacts that pass their checks, record each one that fails (name, reason, figures) in the manifest and the result, and exit 1; by default one failure publishes nothing")
    parser.add_argument("--wait", action="store_true", help="if another od-export is writing the same output, wait for it instead of failing")
    benchmark = parser.add_argument_group("benchmark the export when written (od-export benchmark; any of these turns it on)")
    benchmark.add_argument("--benchmark-images", type=int, metavar="N", help="eval images to benchmark on (0: all; default 100)")
    cli_benchmark.add_gate_arguments(benchmark)


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """``--target`` and each target's declared settings (export and convert share them)."""
    from od_export.targets import OPTIONAL_TARGETS, SETTINGS, setting_targets

    parser.add_argument("--target", dest="targets", action="append", default=[], metavar="TARGET",
                        help=f"repeatable; also write this artifact: {', '.join(OPTIONAL_TARGETS)}")
    for setting in SETTINGS.values():
        parser.add_argument(setting.cli_flag, dest=setting.name, metavar=setting.metavar,
                            action="append" if setting.repeatable else "store", help=_setting_help(setting, setting_targets(setting.name)))
    parser.add_argument("--label-map", metavar="PATH", help="the run's label_map.pbtxt, whose class names go into "
                        "every artifact (default: the one the pipeline.config names; without one, a warning)")
    parser.add_argument("--calibration-images", metavar="DIR", help="int8 files (tflite int8/int8_full, openvino int8): JPEG/PNG images to calibrate on (default: 100 "
                        "images drawn, seeded, from the config's train_input_reader records; synthetic images, with a "
                        "warning, only when the run has none)")
    add_agreement_argument(parser)


def _setting_help(setting: Any, targets: tuple[str, ...]) -> str:
    choices = f": {', '.join(setting.choices)}" if setting.choices else ""
    repeat = "repeatable, " if setting.repeatable else ""
    default = ", ".join(setting.default) if setting.repeatable else setting.default
    shown = "" if default is None else f" (default {default})"
    return f"{' and '.join(targets)}: {repeat}{setting.help}{choices}{shown}"


def add_agreement_argument(parser: argparse.ArgumentParser, note: str = "") -> None:
    parser.add_argument("--min-agreement", action="append", metavar="PRECISION=F",
                        help="repeatable; reduced-precision artifacts: fraction of the SavedModel's detections a "
                        f"PRECISION ({', '.join(REDUCED_PRECISIONS)}) artifact must find (default {describe_defaults()})"
                        + note)


def thresholds_from_args(args: argparse.Namespace) -> Thresholds:
    """``--min-agreement int8=0.3 --min-agreement fp16=0.95`` → checked (precision, fraction) pairs."""
    return thresholds(parse_threshold(text) for text in args.min_agreement or ())


def conversion_options_from_args(args: argparse.Namespace) -> ConversionOptions:
    """The settings given on the command line (the others keep the defaults their targets declare)."""
    from od_export.targets import SETTINGS

    given = {}
    for name, setting in SETTINGS.items():
        text = getattr(args, name)  # parsed here, so that a bad value is one line like every other
        if text is not None:
            given[name] = tuple(map(setting.from_text, text)) if setting.repeatable else setting.from_text(text)
    return ConversionOptions.of(args.calibration_images, thresholds_from_args(args), **given)


def benchmark_request_from_args(args: argparse.Namespace) -> BenchmarkRequest | None:
    given = (args.benchmark_images, args.min_map, args.max_map_drop)
    if all(value is None for value in given):
        return None
    return BenchmarkRequest(100 if args.benchmark_images is None else args.benchmark_images, args.min_map,
                            args.max_map_drop)


def export_options_from_args(args: argparse.Namespace) -> ExportOptions:
    from od_export.source.pipeline_config import read_text

    overrides = list(args.config_overrides)
    overrides += [read_text(path, "config override file") for path in args.config_override_files]
    side_inputs = ()
    if args.use_side_inputs:
        side_inputs = parse_side_inputs(args.side_input_shapes, args.side_input_types, args.side_input_names)
    return ExportOptions(
        pipeline_config=location(args.pipeline_config),
        checkpoint_dir=location(args.checkpoint_dir),
        output_dir=location(args.output_dir),
        input_types=tuple(args.input_types or ("image_tensor",)),
        checkpoint=args.checkpoint,
        config_overrides=tuple(overrides),
        side_inputs=side_inputs,
        signature_key=args.signature_key,
        single_saved_model=args.single_saved_model,
        freeze=args.freeze,
        frozen_format=args.frozen_format,
        full_object_graph=args.full_object_graph,
        overwrite=args.overwrite,
        validate=args.validate,
        wait=args.wait,
        keep_going=args.keep_going,
        benchmark=benchmark_request_from_args(args),
        label_map=args.label_map,
        dynamic_batch=args.dynamic_batch,
        postprocessing=args.postprocessing,
        targets=tuple(args.targets),
        conversion=conversion_options_from_args(args),
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    from od_export.cli.progress import phase_spinner
    from od_export.exporter import export

    options = export_options_from_args(args)
    if options.checkpoint == "all":
        return _export_all_checkpoints(args, options)
    if legacy.replaces_like_exporter_main_v2(args) and not options.overwrite and location(options.output_dir).exists():
        logger.info(f"{options.output_dir} exists: replacing it (atomically), as exporter_main_v2 writes over it; "
                    "--output-dir refuses instead")
        options = replace(options, overwrite=True)
    with phase_spinner(quiet=args.verbosity < 0):
        result = export(options)
    if not args.json:
        for artifact in result.artifacts:
            print(f"{artifact.input_type}: {artifact.directory}")
    return result.to_dict()


def _export_all_checkpoints(args: argparse.Namespace, options: ExportOptions) -> dict[str, Any]:
    from od_export.cli.progress import progress_display
    from od_export.pipelines.batch import export_checkpoints
    from od_export.pipelines.jobs import CheckpointSelection

    start = time.perf_counter()
    with log.progress_shows_info(), progress_display(0, quiet=args.verbosity < 0) as progress:
        result = export_checkpoints(options, CheckpointSelection("all"), progress)
    if not args.json:
        cli_batch.print_summary(result, time.perf_counter() - start)
    return result.to_dict()
