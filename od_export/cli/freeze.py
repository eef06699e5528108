"""``od-export freeze --meta-graph model.ckpt-N.meta``: a TF1 checkpoint → a verified frozen graph."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from od_export.errors import InputError, option


def add_subcommand(subparsers: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = subparsers.add_parser(
        "freeze",
        help="TF1 checkpoint (.meta + variables) → frozen graph (+ SavedModel), outputs found for you",
        description="Restore a TF1 checkpoint, find its inference outputs (or take --output-nodes), and write "
        "frozen_graph/frozen_inference_graph.pb with io_spec.json, verified against the checkpointed graph.",
    )
    parser.add_argument("--meta-graph", required=True, metavar="PATH", help="the model.ckpt-N.meta file")
    parser.add_argument("--checkpoint", metavar="PREFIX", help="checkpoint prefix or directory (default: the prefix "
                        "the .meta is named after, else the latest in its checkpoint state file)")
    parser.add_argument("--output-dir", required=True, metavar="DIR")
    parser.add_argument("--output-nodes", metavar="A,B", help="output node names (default: found like `od-export inspect` does)")
    parser.add_argument("--saved-model", action="store_true", help="also write saved_model/ with a Predict serving_default signature")
    parser.add_argument("--signature-inputs", metavar="KEY=TENSOR,...", help="the signature's input keys (default: the input node names)")
    parser.add_argument("--signature-outputs", metavar="KEY=TENSOR,...", help="the signature's output keys (default: the output node names)")
    parser.add_argument("--encoded-image-input", action="store_true", help="the SavedModel takes JPEG/PNG bytes "
                        "(decoded and resized to the image input's size); implies --saved-model")
    parser.add_argument("--encoded-image-range", default="0,255", metavar="LOW,HIGH",
                        help="float image input: the values decoded pixels 0 and 255 become (default 0,255)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory (atomically)")
    parser.add_argument("--wait", action="store_true", help="if another od-export is writing this output, wait for it")
    add_common(parser)
    parser.set_defaults(handler=run)


def parse_names(text: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def parse_pairs(text: str | None, name: str) -> tuple[tuple[str, str], ...]:
    """``"a=x:0,b=y"`` → (("a", "x:0"), ("b", "y"))."""
    pairs = []
    for item in parse_names(text):
        key, sep, tensor = item.partition("=")
        if not sep or not key.strip() or not tensor.strip():
            raise InputError(f"{option(name)} entry {item!r} is not KEY=TENSOR; write it like images=input:0")
        pairs.append((key.strip(), tensor.strip()))
    return tuple(pairs)


def parse_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError as exc:
        raise InputError(f"encoded image range {text!r} is not two numbers; write it like 0,1 or -1,1") from exc
    return low, high


def run(args: argparse.Namespace) -> dict[str, Any]:
    from od_export.tf1.freeze import FreezeOptions, freeze_checkpoint

    result = freeze_checkpoint(FreezeOptions(
        meta_graph=args.meta_graph, output_dir=args.output_dir, checkpoint=args.checkpoint,
        output_nodes=parse_names(args.output_nodes), saved_model=args.saved_model,
        signature_inputs=parse_pairs(args.signature_inputs, "signature_inputs"),
        signature_outputs=parse_pairs(args.signature_outputs, "signature_outputs"),
        encoded_image_input=args.encoded_image_input, encoded_image_range=parse_range(args.encoded_image_range),
        overwrite=args.overwrite, wait=args.wait,
    ))
    if not args.json:
        print(result.frozen_graph)
        if result.saved_model:
            print(result.saved_model)
    return result.to_dict()
