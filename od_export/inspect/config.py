"""pipeline.config → the facts a user checks before exporting (``od-export inspect``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import json_format

from od_export.source.pipeline_config import load_pipeline_config, meta_architecture, model_input_size, num_classes


def _nms(model: Any, architecture: str) -> dict[str, Any] | None:
    if architecture == "ssd":
        nms = model.ssd.post_processing.batch_non_max_suppression
    elif architecture == "faster_rcnn":
        nms = model.faster_rcnn.second_stage_post_processing.batch_non_max_suppression
    elif architecture == "center_net":
        return {"max_detections": model.center_net.object_center_params.max_box_predictions}
    else:
        return None
    return {
        "score_threshold": nms.score_threshold,
        "iou_threshold": nms.iou_threshold,
        "max_detections_per_class": nms.max_detections_per_class,
        "max_detections": nms.max_total_detections,
    }


def _paths(config: Any) -> list[dict[str, Any]]:
    """Every path the config references, and whether it exists (relative to the cwd, as the OD API reads it)."""
    found: list[tuple[str, str]] = []
    if config.model.WhichOneof("model") == "center_net" and config.model.center_net.keypoint_label_map_path:
        found.append(("model.center_net.keypoint_label_map_path", config.model.center_net.keypoint_label_map_path))
    if config.train_config.fine_tune_checkpoint:
        found.append(("train_config.fine_tune_checkpoint", config.train_config.fine_tune_checkpoint))
    readers = [("train_input_reader", config.train_input_reader)]
    readers += [(f"eval_input_reader[{i}]", r) for i, r in enumerate(config.eval_input_reader)]
    for name, reader in readers:
        if reader.label_map_path:
            found.append((f"{name}.label_map_path", reader.label_map_path))
        for path in reader.tf_record_input_reader.input_path:
            found.append((f"{name}.tf_record_input_reader.input_path", path))
    return [{"field": field, "path": value, "exists": _exists(value)} for field, value in found]


def _exists(value: str) -> bool:
    """A file, a checkpoint prefix (``.index`` beside it) or a sharded glob that matches."""
    path = Path(value)
    return path.exists() or Path(value + ".index").exists() or any(path.parent.glob(path.name))


def describe_pipeline_config(path: Path) -> dict[str, Any]:
    config = load_pipeline_config(path)
    architecture = meta_architecture(config)
    model = getattr(config.model, architecture)
    resizer = model.image_resizer
    resizer_kind = resizer.WhichOneof("image_resizer_oneof")
    return {
        "meta_architecture": architecture,
        "feature_extractor": model.feature_extractor.type,
        "num_classes": num_classes(config),
        "image_resizer": {
            "type": resizer_kind,
            **(json_format.MessageToDict(getattr(resizer, resizer_kind), preserving_proto_field_name=True) if resizer_kind else {}),
        },
        "input_size": list(model_input_size(config)),
        "postprocessing": _nms(config.model, architecture),
        "paths": _paths(config),
    }
