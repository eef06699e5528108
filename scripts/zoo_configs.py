#!/usr/bin/env python
"""Write the model blocks of the OD API's published TF2 configs as test data.

Reads every ``*.config`` under ``research/object_detection/configs/tf2`` of a checkout
of ``tensorflow/models`` (or a copy of that folder), keeps only the ``model { ... }``
block (comments, training schedules and Google's dataset paths go), and writes it in
protobuf's text format to ``tests/fixtures/zoo_tf2/NAME.config``:

    .venv/bin/python scripts/zoo_configs.py PATH/TO/models/research/object_detection/configs/tf2

The configs are Apache-2.0 (the tensorflow/models licence); the header of each file
names its source.  A block is written only after the OD API's own proto parses it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = REPO / "tests" / "fixtures" / "zoo_tf2"
SOURCE = "tensorflow/models research/object_detection/configs/tf2"


def model_block(text: str) -> str:
    """The top-level ``model { ... }`` block of a config's text, braces matched outside strings and comments."""
    start = _top_level_field(text, "model")
    depth, index, in_string = 0, text.index("{", start), None
    while True:
        char = text[index]
        if in_string:
            if char == "\\":
                index += 1
            elif char == in_string:
                in_string = None
        elif char in "\"'":
            in_string = char
        elif char == "#":
            index = text.index("\n", index)
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start:index + 1]
        index += 1


def _top_level_field(text: str, name: str) -> int:
    for offset, line in _lines_with_offsets(text):
        if line.split("#")[0].strip().replace(" ", "").startswith(name + "{"):
            return offset
    raise ValueError(f"no top-level {name} block")


def _lines_with_offsets(text: str):
    offset = 0
    for line in text.splitlines(keepends=True):
        yield offset, line
        offset += len(line)


def normalised(block: str) -> str:
    """The block parsed by the OD API's proto and printed back (no comments, one field per line)."""
    from google.protobuf import text_format

    from od_export import compat

    compat.import_object_detection()
    config = compat.import_pipeline_proto().TrainEvalPipelineConfig()
    text_format.Merge(block, config)
    return text_format.MessageToString(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs_dir", type=Path)
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    written = 0
    for path in sorted(args.configs_dir.glob("*.config")):
        text = path.read_text(encoding="utf-8")
        try:
            block = model_block(text)
        except ValueError:
            print(f"skipped {path.name}: no model block")
            continue
        header = (f"# The model block of {path.name} from {SOURCE} (Apache-2.0),\n"
                  "# written by scripts/zoo_configs.py: comments and everything outside `model` dropped.\n")
        (OUT / path.name).write_text(header + normalised(block), encoding="utf-8")
        written += 1
    print(f"wrote {written} model blocks to {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
