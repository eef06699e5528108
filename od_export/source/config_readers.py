"""Input readers that only Google's internal build can parse: export reads no input data, so they are dropped.

Some published configs read their data through a protobuf extension of
``external_input_reader`` (``[lstm_object_detection.protos.GoogleInputReader...]``)
that the public OD API does not define.  protobuf then fails the whole file with
"Extension ... not registered. Did you import the _pb2 module", although export
never reads an input reader.  Such a top-level reader block is removed (its lines
blanked, so later errors keep their line numbers) with a note; an unknown extension
anywhere else is a one-line error naming it.
"""
from __future__ import annotations

import re

from od_export.errors import ConfigError

_UNREGISTERED = re.compile(r'^(\d+):\d+\s*:\s*Extension "([\w.]+)" not registered')
_READER_NAMES = ("train_input_reader", "eval_input_reader")
_READER_START = re.compile(rf"^\s*({'|'.join(_READER_NAMES)})\s*:?\s*\{{")


def _top_level_blocks(text: str) -> list[tuple[str, int, int]]:
    """(name, first line, last line), 1-based, of each top-level input reader block."""
    blocks: list[tuple[str, int, int]] = []
    depth, start, name = 0, 0, ""
    for number, line in enumerate(text.splitlines(), start=1):
        code = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|#.*', "", line)
        if depth == 0 and (match := _READER_START.match(code)):
            start, name = number, match.group(1)
        depth += code.count("{") - code.count("}")
        if depth == 0 and name:
            blocks.append((name, start, number))
            name = ""
    return blocks


def drop_unknown_reader(text: str, error: Exception, source: str) -> tuple[str, str] | None:
    """The text without the input reader the error points into, and the note; None if not that error."""
    match = _UNREGISTERED.match(" ".join(str(error).split()))
    if not match:
        return None
    line, extension = int(match.group(1)), match.group(2)
    for name, first, last in _top_level_blocks(text):
        if first <= line <= last:
            lines = text.splitlines()
            lines[first - 1:last] = [""] * (last - first + 1)
            return "\n".join(lines) + "\n", (
                f"{source}: {name} (lines {first}-{last}) reads its data through {extension}, which only Google's "
                "internal build of the OD API defines; ignored, since export reads no input data")
    raise ConfigError(f"{source} line {line}: {extension} is a protobuf extension that only Google's internal build "
                      "of the OD API defines, and the public OD API cannot build the model with it; remove that block")
