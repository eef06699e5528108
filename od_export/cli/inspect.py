"""``od-export inspect`` and ``od-export validate``: argument parsing and text rendering."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from od_export.cli.export import add_agreement_argument, thresholds_from_args
from od_export.storage.location import location
from od_export.verify.tolerance import DEFAULT_ATOL, DEFAULT_SCORE_THRESHOLD

_LIST_LIMIT = 25


def add_subcommands(subparsers: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    inspect = subparsers.add_parser(
        "inspect",
        help="show what an export, SavedModel, frozen graph, .meta, checkpoint or pipeline.config contains",
        description="Inputs and outputs (names, dtypes, shapes) of any OD API artifact, without loading it into TensorFlow.",
    )
    inspect.add_argument("path", metavar="PATH")
    inspect.add_argument("--pipeline-config", metavar="PATH", help="with a checkpoint: check that the model built from this config restores from it")
    inspect.add_argument("--tensorboard", dest="tensorboard_dir", metavar="LOGDIR", help="write the graph so that `tensorboard --logdir LOGDIR` shows it")
    add_common(inspect)
    inspect.set_defaults(handler=run_inspect)

    validate = subparsers.add_parser(
        "validate",
        help="run every artifact of an export on the same inputs and compare with the SavedModel",
        description="Exit 0 when every artifact matches its SavedModel, 1 on any mismatch, 2 on bad input.",
    )
    validate.add_argument("export_dir", metavar="EXPORT_DIR")
    source = validate.add_mutually_exclusive_group()
    source.add_argument("--images", metavar="DIR", help="directory of .jpg/.png test images")
    source.add_argument("--random", dest="random_images", type=int, default=2, metavar="N", help="N seeded synthetic images (default 2)")
    validate.add_argument("--atol", type=float, default=DEFAULT_ATOL, help=f"tolerance for boxes and scores, raw and final (default {DEFAULT_ATOL:g}; see the README)")
    validate.add_argument("--score-threshold", type=float, default=DEFAULT_SCORE_THRESHOLD, help="compare classes/boxes of detections scoring above this (default 0.05)")
    validate.add_argument("--signature-key", default="serving_default")
    add_agreement_argument(validate, "; a precision not given uses the threshold the export was verified with")
    validate.add_argument("--save-images", metavar="DIR", help="write each image with the SavedModel's detections and each artifact's drawn side by side")
    validate.add_argument("--label-map", metavar="PATH", help="label map that names the classes in those pictures (default: the one the pipeline.config names)")
    add_common(validate)
    validate.set_defaults(handler=run_validate)


def run_inspect(args: argparse.Namespace) -> dict[str, Any]:
    from od_export.inspect.paths import InspectOptions, inspect_path

    report = inspect_path(InspectOptions(
        location(args.path),
        location(args.pipeline_config) if args.pipeline_config else None,
        Path(args.tensorboard_dir) if args.tensorboard_dir else None,
    ))
    if not args.json:
        print("\n".join(render(report)))
    return report


def run_validate(args: argparse.Namespace) -> dict[str, Any]:
    from od_export.validator import ValidateOptions, format_report, validate

    report = validate(ValidateOptions(
        location(args.export_dir), Path(args.images) if args.images else None, args.random_images, args.atol,
        args.score_threshold, args.signature_key, thresholds_from_args(args),
        save_images=Path(args.save_images) if args.save_images else None,
        label_map=Path(args.label_map) if args.label_map else None,
    ))
    if not args.json:
        print(format_report(report))
    return report.to_dict()  # carries "ok": main() exits 1 when it is false


def _scalar(value: Any) -> str:
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return "[" + ", ".join("?" if v is None else str(v) for v in value) + "]"
    return "?" if value is None else str(value)


def _tensor_line(name: str, info: dict[str, Any]) -> str | None:
    if isinstance(info, dict) and "dtype" in info and "shape" in info:
        tensor = info.get("tensor")
        return f"{name}: {info['dtype']} {_scalar(info['shape'])}" + (f"  ({tensor})" if tensor and tensor != name else "")
    return None


def render(value: Any, indent: int = 0, key: str | None = None) -> list[str]:
    """Readable, indented text for an inspect report; long lists are cut with a count."""
    pad = "  " * indent
    if isinstance(value, dict):
        if key is not None:
            line = _tensor_line(key, value)
            if line:
                return [pad + line]
        lines = [pad + f"{key}:"] if key is not None else []
        for child_key, child in value.items():
            if child is not None:  # an absent value (no note, no tensor name) is left out, not shown as "?"
                lines += render(child, indent + (1 if key is not None else 0), str(child_key))
        return lines
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        lines = [pad + f"{key}: ({len(value)})"]
        for item in value[:_LIST_LIMIT]:
            name = item.get("name") or item.get("field") or item.get("variable") if isinstance(item, dict) else None
            line = _tensor_line(name, item) if name else None
            if line:
                lines.append(pad + "  - " + line)
            else:
                nested = render(item, indent + 2)
                lines += [pad + "  - " + nested[0].strip()] + nested[1:] if nested else []
        if len(value) > _LIST_LIMIT:
            lines.append(pad + f"  … {len(value) - _LIST_LIMIT} more (use --json for all)")
        return lines
    return [pad + f"{key}: {_scalar(value)}"]
