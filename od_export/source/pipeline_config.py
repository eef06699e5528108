"""pipeline.config → TrainEvalPipelineConfig proto, with errors that point at the line."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from od_export import compat
from od_export.errors import ConfigError
from od_export.source.config_readers import drop_unknown_reader
from od_export.source.proto_text import describe_parse_error
from od_export.storage.location import AnyPath, location
from od_export.storage.reading import decode_text, read_bounded

logger = logging.getLogger(__name__)


#: A pipeline.config is a few KB; anything this big is the wrong file (and would be slow to parse).
MAX_CONFIG_BYTES = 16 * 1024 * 1024


def read_text(path: str | AnyPath, what: str = "pipeline config") -> str:
    """The file's text; a missing, oversized, binary, non-regular or unreadable file is one ConfigError."""
    path = location(path)
    fix = "pass the pipeline.config written by your training run"
    try:
        if not path.exists():
            raise ConfigError(f"{what} {path} does not exist; {fix}")
        if path.is_dir():
            candidate = path / "pipeline.config"
            hint = f" (did you mean {candidate}?)" if candidate.is_file() else ""
            raise ConfigError(f"{what} {path} is a directory, not a file{hint}")
        if isinstance(path, Path):  # a device or FIFO says st_size 0: ask the open file
            data = read_bounded(path, what, MAX_CONFIG_BYTES, fix, ConfigError)
        else:
            size = path.stat_size()
            if size > MAX_CONFIG_BYTES:
                raise ConfigError(f"{what} {path} is {size / 2**20:.0f} MiB, far larger than any pipeline.config; {fix}")
            data = path.read_bytes()
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - OSError locally, tf.errors.* remotely
        raise ConfigError(f"cannot read {what} {path}: {' '.join(str(exc).split())[:200]}") from exc
    return decode_text(data, path, what, "pass a text-format pipeline.config", ConfigError)


def parse_pipeline_config(text: str, source: str, overrides: tuple[str, ...] = ()) -> Any:
    """Text → TrainEvalPipelineConfig, overrides merged in order (no TensorFlow needed)."""
    from google.protobuf import text_format

    config = _parse_dropping_unknown_readers(text, source)
    for index, override in enumerate(overrides, start=1):
        try:
            text_format.Merge(override, config)
        except (text_format.ParseError, ValueError, UnicodeError, RecursionError) as exc:
            raise ConfigError(
                f"config override #{index} is malformed: {describe_parse_error('override', exc)}"
            ) from exc
    if not config.HasField("model") or config.model.WhichOneof("model") is None:
        raise ConfigError(f"pipeline config {source} has no `model {{ ... }}` block; it is not an OD API pipeline.config")
    check_limits(config, source)
    return config


def _parse_dropping_unknown_readers(text: str, source: str) -> Any:
    """The parsed text; an input reader only Google's build can parse is dropped with a warning."""
    from google.protobuf import text_format

    for _ in _READER_LIMIT:
        config = compat.import_pipeline_proto().TrainEvalPipelineConfig()
        try:
            text_format.Merge(text, config)
            return config
        except (text_format.ParseError, ValueError, UnicodeError, RecursionError) as exc:
            dropped = drop_unknown_reader(text, exc, source)
            if dropped is None:
                raise ConfigError(
                    f"pipeline config is malformed: {describe_parse_error(source, exc)}; fix that line"
                ) from exc
            text, note = dropped
            logger.warning(note)
    raise ConfigError(f"pipeline config {source} has too many input readers that cannot be parsed; remove them")


#: A config has one train and a few eval readers; a bound keeps a pathological file from looping.
_READER_LIMIT = range(16)


def load_pipeline_config(path: str | AnyPath, overrides: tuple[str, ...] = ()) -> Any:
    """Read and parse ``path`` and merge each text-proto override in order, like exporter_main_v2."""
    from od_export.source.build_paths import resolve_build_paths

    config = parse_pipeline_config(read_text(path), str(path), overrides)
    where = location(path)
    resolve_build_paths(config, where if isinstance(where, Path) else None)
    return config


#: (field path under the architecture's message, smallest, largest, why the bound).  Values
#: outside these make the OD API allocate absurd tensors or loop for hours instead of failing.
_LIMITS: tuple[tuple[str, float, float], ...] = (
    ("num_classes", 1, 100_000),
    ("image_resizer.fixed_shape_resizer.height", 1, 4096),
    ("image_resizer.fixed_shape_resizer.width", 1, 4096),
    ("image_resizer.keep_aspect_ratio_resizer.min_dimension", 1, 4096),
    ("image_resizer.keep_aspect_ratio_resizer.max_dimension", 1, 4096),
    ("feature_extractor.depth_multiplier", 0.01, 8),
    ("feature_extractor.min_depth", 0, 4096),
    ("feature_extractor.bifpn.num_iterations", 1, 16),
    ("feature_extractor.bifpn.num_filters", 1, 4096),
    ("feature_extractor.fpn.additional_layer_depth", 1, 4096),
    ("anchor_generator.ssd_anchor_generator.num_layers", 1, 16),
    ("anchor_generator.ssd_anchor_generator.min_scale", 1e-3, 10),
    ("anchor_generator.ssd_anchor_generator.max_scale", 1e-3, 10),
    ("anchor_generator.ssd_anchor_generator.aspect_ratios", 1e-2, 100),
    ("anchor_generator.multiscale_anchor_generator.scales_per_octave", 1, 16),
    ("anchor_generator.multiscale_anchor_generator.anchor_scale", 1e-3, 100),
    ("anchor_generator.multiscale_anchor_generator.aspect_ratios", 1e-2, 100),
    ("first_stage_anchor_generator.grid_anchor_generator.scales", 1e-3, 100),
    ("first_stage_anchor_generator.grid_anchor_generator.aspect_ratios", 1e-2, 100),
    ("box_coder.faster_rcnn_box_coder.y_scale", 1e-3, 1e3),
    ("box_coder.faster_rcnn_box_coder.x_scale", 1e-3, 1e3),
    ("box_coder.faster_rcnn_box_coder.height_scale", 1e-3, 1e3),
    ("box_coder.faster_rcnn_box_coder.width_scale", 1e-3, 1e3),
    ("post_processing.batch_non_max_suppression.max_detections_per_class", 1, 100_000),
    ("post_processing.batch_non_max_suppression.max_total_detections", 1, 100_000),
    ("first_stage_max_proposals", 1, 100_000),
    ("second_stage_post_processing.batch_non_max_suppression.max_total_detections", 1, 100_000),
    ("object_center_params.max_box_predictions", 1, 100_000),
)


def _field_value(message: Any, dotted: str) -> Any:
    """The value at ``dotted`` if every message on the way is set, else None."""
    parts = dotted.split(".")
    for part in parts[:-1]:
        if part not in message.DESCRIPTOR.fields_by_name or not message.HasField(part):
            return None
        message = getattr(message, part)
    field = message.DESCRIPTOR.fields_by_name.get(parts[-1])
    if field is None or (field.has_presence and not message.HasField(parts[-1])):
        return None
    value = getattr(message, parts[-1])
    return value if isinstance(value, (int, float)) else list(value)  # a repeated field


def check_limits(config: Any, source: str) -> None:
    """Refuse numbers no real model uses, before they cost memory or hours."""
    architecture = getattr(config.model, meta_architecture(config))
    name = meta_architecture(config)
    for dotted, low, high in _LIMITS:
        found = _field_value(architecture, dotted)
        for value in found if isinstance(found, list) else [] if found is None else [found]:
            if not (low <= value <= high):  # also refuses NaN
                raise ConfigError(
                    f"pipeline config {source}: model.{name}.{dotted} is {value}, outside the range {low:g}…{high:g} "
                    "that a real model uses; fix that value"
                )


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
