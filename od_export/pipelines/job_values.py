"""A batch file's values → typed option values: strict, never a silent change (``true`` is not 1)."""
from __future__ import annotations

import os
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any

from od_export.errors import InputError
from od_export.options import SIDE_INPUT_DTYPES, BenchmarkRequest, SideInput


def benchmark(value: Any, base: Path) -> BenchmarkRequest | None:
    """``benchmark: {max_images: 100, max_map_drop: 0.03}`` (``true``: the defaults; ``false``: none)."""
    if isinstance(value, bool):
        return BenchmarkRequest() if value else None
    if not isinstance(value, dict):
        raise InputError(f"must be true or a mapping like {{max_map_drop: 0.03}}, not {value!r}")
    allowed = tuple(f.name for f in fields(BenchmarkRequest))
    unknown = [key for key in value if key not in allowed]
    if unknown:
        raise InputError(f"unknown key {unknown[0]!r}; known keys: {', '.join(allowed)}")
    given = dict(value)
    if "data" in given:
        items = [given["data"]] if isinstance(given["data"], str) else given["data"]
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise InputError("benchmark data must be a record path or a list of them")
        given["data"] = tuple(path(v, base) for v in items)
    for name in ("min_map", "max_map_drop"):
        if name in given and (isinstance(given[name], bool) or not isinstance(given[name], (int, float))):
            raise InputError(f"benchmark {name} must be a number from 0 to 1, not {given[name]!r}")
    if "max_images" in given and type(given["max_images"]) is not int:
        raise InputError(f"benchmark max_images must be a whole number, not {given['max_images']!r}")
    request = BenchmarkRequest(**given)
    request.check()
    return request


def default(field: Field[Any]) -> Any:
    return field.default if field.default is not MISSING else field.default_factory()  # type: ignore[misc]


def scalar(value: Any, kind: type, what: str) -> Any:
    if type(value) is not kind:  # bool is an int subclass: `opset: true` must not pass as 1
        raise InputError(f"must be {what}, not {value!r}")
    return value


def path(value: str, base: Path) -> str:
    """URLs and absolute paths as given; ``~`` expanded; anything else relative to the batch file."""
    if not value.strip():
        raise InputError(f"is empty ({value!r}), which would mean the batch file's own directory; a variable that "
                         "should hold it is probably unset: give the path")
    if "\x00" in value:
        raise InputError(f"{value!r} contains a NUL byte; no file system accepts that")
    if "://" in value:
        return value
    return os.path.normpath(base / os.path.expanduser(value))  # an absolute right-hand side replaces base


def side_inputs(value: Any) -> tuple[SideInput, ...]:
    if not isinstance(value, list):
        raise InputError("must be a list of {name, dtype, shape} mappings")
    result = []
    for entry in value:
        if not isinstance(entry, dict) or set(entry) != {"name", "dtype", "shape"}:
            raise InputError("each side input is a mapping with exactly name, dtype and shape")
        shape = entry["shape"]
        if not isinstance(shape, list) or not all(d is None or type(d) is int for d in shape):
            raise InputError(f"side input {entry['name']!r}: shape must be a list of sizes (null for unknown)")
        dtype = str(entry["dtype"]).removeprefix("tf.")
        if dtype not in SIDE_INPUT_DTYPES:
            raise InputError(f"side input {entry['name']!r} has unknown dtype {entry['dtype']!r}; use one of: "
                             f"{', '.join(SIDE_INPUT_DTYPES)}")
        result.append(SideInput(str(entry["name"]), dtype, tuple(None if d is None or d < 0 else d for d in shape)))
    return tuple(result)
