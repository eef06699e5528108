"""``od-export inspect`` for deployment files: a ``.tflite`` file and an OpenVINO IR (``.xml`` + ``.bin``)."""
from __future__ import annotations

import json
from typing import Any

from od_export.errors import InputError
from od_export.layout import IO_SPEC_NAME
from od_export.storage.location import AnyPath


def _read(path: AnyPath) -> bytes:
    with path.open("rb") as handle:
        return handle.read()


def inspect_tflite(path: AnyPath) -> dict[str, Any]:
    """Input (with quantisation), outputs by index (with meaning when they carry the SavedModel's names), custom ops."""
    from od_export.targets import get_target

    get_target("tflite").check_available()
    from ai_edge_litert.interpreter import Interpreter

    from od_export.targets.tflite import describe_file

    data = _read(path)
    try:
        interpreter = Interpreter(model_content=data)
    except Exception as exc:  # LiteRT raises ValueError/RuntimeError for a file it cannot read
        raise InputError(f"{path} is not a TFLite model ({' '.join(str(exc).split())[:200]})") from exc
    custom = sorted({op["op_name"] for op in interpreter._get_ops_details() if op["op_name"].startswith("TFLite_")})
    return {"format": "tflite", "bytes": len(data), **describe_file(data), "custom_ops": custom}


def inspect_openvino(path: AnyPath) -> dict[str, Any]:
    """Inputs and outputs of an IR, and its precision when od-export's io_spec.json lies beside it."""
    from od_export.targets import get_target

    get_target("openvino").check_available()
    from od_export.targets.openvino import OpenVinoRunner, describe_ir

    try:
        model = OpenVinoRunner.read(path)
    except Exception as exc:  # OpenVINO raises RuntimeError for what it cannot read
        raise InputError(f"{path} is not an OpenVINO IR with its .bin beside it ({' '.join(str(exc).split())[:200]})") from exc
    report = describe_ir(model)
    spec = path.parent / IO_SPEC_NAME
    if spec.is_file():
        report["precision"] = json.loads(spec.read_text(encoding="utf-8")).get("precision")
    return report
