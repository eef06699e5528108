"""``od-export benchmark EXPORT_DIR``: COCO mAP, latency and size of every artifact."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_gate_arguments(parser: Any) -> None:
    """``--min-map`` and ``--max-map-drop`` (benchmark, and export/watch that benchmark what they write)."""
    parser.add_argument("--min-map", type=float, metavar="X",
                        help="fail (exit 1) when an artifact's COCO mAP@[.5:.95] is below X")
    parser.add_argument("--max-map-drop", type=float, metavar="D",
                        help="fail (exit 1) when an artifact's mAP is more than D below its SavedModel's (0.02 = 2 points)")


def add_subcommand(subparsers: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="COCO mAP, latency and size of every artifact of an export, on the run's evaluation data",
        description="Run every artifact of an export (each input type's SavedModel, frozen graph, ONNX, TensorRT "
        "file, each TFLite precision, OpenVINO) on the evaluation images and score it with the OD API's COCO "
        "evaluator. By default the data is the pipeline.config's eval_input_reader. Prints a table and saves "
        "benchmark/ (benchmark.json, plots, benchmark.html) in the export.",
    )
    parser.add_argument("export_dir", metavar="EXPORT_DIR")
    data = parser.add_argument_group("evaluation data (default: the config's eval_input_reader)")
    data.add_argument("--data", action="append", default=[], metavar="PATTERN",
                      help="OD API TFRecord file or glob (repeatable)")
    data.add_argument("--coco", metavar="ANNOTATIONS.json", help="COCO instances file whose category ids are the model's class ids")
    data.add_argument("--images", metavar="DIR", help="with --coco: the directory its file_name entries are in")
    data.add_argument("--max-images", type=int, default=0, metavar="N", help="evaluate the first N images (default: all)")
    data.add_argument("--label-map", metavar="PATH", help="label map for the records' text labels and class names "
                      "(default: the eval reader's)")
    add_gate_arguments(parser)
    parser.add_argument("--signature-key", default="serving_default")
    parser.add_argument("--grid-images", type=int, default=4, metavar="N",
                        help="eval images drawn with every artifact's detections in benchmark.html (default 4)")
    parser.add_argument("--no-save", dest="save", action="store_false", help="print the results; write nothing into the export")
    add_common(parser)
    parser.set_defaults(handler=run)


def gates_from_args(args: argparse.Namespace) -> Any:
    from od_export.benchmark import Gates

    return Gates(args.min_map, args.max_map_drop)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from od_export.benchmark import BenchmarkOptions, DataSource, benchmark, format_table
    from od_export.storage.location import location

    source = DataSource(tuple(args.data), Path(args.coco) if args.coco else None,
                        Path(args.images) if args.images else None, args.max_images,
                        Path(args.label_map) if args.label_map else None)
    result = benchmark(BenchmarkOptions(location(args.export_dir), source, gates_from_args(args), args.signature_key,
                                        args.save, args.grid_images))
    if not args.json:
        print(format_table(result))
        for path in result.written[:2]:
            print(f"wrote {path}")
    if not result.ok:
        print(f"od-export: error: {result.failure_message()}", file=sys.stderr)
    return result.to_dict()
