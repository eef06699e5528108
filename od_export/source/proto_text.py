"""Reading what a pipeline.config names: protobuf's parse errors as prose, paths found where runs keep them,
label maps as the OD API's own proto.  Nothing here imports another od_export.source module."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from od_export.errors import InputError

_PARSE_POSITION = re.compile(r"^(\d+):(\d+)\s*:\s*(.*)$", re.S)


def describe_parse_error(source: str, error: Exception) -> str:
    """Turn protobuf's ``"12:5 : Message type ... has no field named ..."`` into prose."""
    text = " ".join(str(error).split())
    match = _PARSE_POSITION.match(text)
    if not match:
        return f"{source}: {text}"
    line, column, detail = match.groups()
    detail = detail.rstrip(".")
    return f"{source} line {line} column {column}: {detail}"


def find_named_path(path: str, bases: list[Path]) -> Path:
    """A path (or glob) a config names: as written, else relative to, or by its file name in, each base directory.

    The bases are where the config is and where the run's config was: a run's config
    often names ``data/train.record`` relative to where training ran, or a Windows path.
    """
    import glob
    from pathlib import PureWindowsPath

    if glob.glob(path):
        return Path(path)
    name = PureWindowsPath(path).name if "\\" in path else path
    for base in bases:
        for candidate in (base / name, base / Path(name).name):
            if glob.glob(str(candidate)):
                return candidate
    return Path(path)


def label_map_proto(data: bytes | str, source: str = "label map") -> Any:
    """The OD API's ``StringIntLabelMap`` from text format, or the binary form where the text does not parse."""
    from google.protobuf import message, text_format

    from od_export import compat

    proto = compat.import_od_proto("string_int_label_map_pb2").StringIntLabelMap()
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        text_format.Merge(raw.decode("utf-8"), proto)
    except (text_format.ParseError, UnicodeDecodeError, RecursionError) as exc:
        proto.Clear()
        try:
            proto.ParseFromString(raw)
        except (message.DecodeError, RecursionError, ValueError):
            raise InputError(f"label map is malformed: {describe_parse_error(source, exc)}; fix that line (a label "
                             "map is `item { id: 1 name: \"cat\" }` blocks)") from None
    return proto
