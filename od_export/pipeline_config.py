"""pipeline.config → TrainEvalPipelineConfig proto, with errors that point at the line."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from od_export import compat
from od_export.errors import ConfigError

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


def read_text(path: str | Path, what: str = "pipeline config") -> str:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} {path} does not exist; pass the pipeline.config written by your training run")
    if path.is_dir():
        candidate = path / "pipeline.config"
        hint = f" (did you mean {candidate}?)" if candidate.is_file() else ""
        raise ConfigError(f"{what} {path} is a directory, not a file{hint}")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from exc


def load_pipeline_config(path: str | Path, overrides: tuple[str, ...] = ()) -> Any:
    """Parse ``path`` and merge each text-proto override in order, like exporter_main_v2."""
    od = compat.import_object_detection()
    from google.protobuf import text_format

    config = od.pipeline_pb2.TrainEvalPipelineConfig()
    try:
        text_format.Merge(read_text(path), config)
    except text_format.ParseError as exc:
        raise ConfigError(
            f"pipeline config is malformed: {describe_parse_error(str(path), exc)}; fix that line"
        ) from exc
    for index, override in enumerate(overrides, start=1):
        try:
            text_format.Merge(override, config)
        except text_format.ParseError as exc:
            raise ConfigError(
                f"config override #{index} is malformed: {describe_parse_error('override', exc)}"
            ) from exc
    if not config.HasField("model") or config.model.WhichOneof("model") is None:
        raise ConfigError(f"pipeline config {path} has no `model {{ ... }}` block; it is not an OD API pipeline.config")
    return config


def meta_architecture(config: Any) -> str:
    """``ssd``, ``faster_rcnn``, ``center_net``, ... for a parsed pipeline config."""
    return str(config.model.WhichOneof("model"))


def num_classes(config: Any) -> int:
    return int(getattr(config.model, meta_architecture(config)).num_classes)


def model_input_size(config: Any) -> tuple[int, int]:
    """The (height, width) the config's image resizer produces; 128×128 if it is open-ended."""
    resizer = getattr(config.model, meta_architecture(config)).image_resizer
    kind = resizer.WhichOneof("image_resizer_oneof")
    if kind == "fixed_shape_resizer":
        return resizer.fixed_shape_resizer.height, resizer.fixed_shape_resizer.width
    if kind == "keep_aspect_ratio_resizer":
        side = resizer.keep_aspect_ratio_resizer.max_dimension
        return side, side
    return 128, 128
