"""Paths the model build itself reads, checked before it runs; paths export never reads, noted.

The OD API's ``model_builder`` reads one file: a CenterNet keypoint model's
``keypoint_label_map_path`` (the label map whose items carry the ``keypoints`` of each
keypoint task's class).  A published config leaves it ``PATH_TO_BE_CONFIGURED``, and
the build then dies with TensorFlow's raw ``NotFoundError``.  Here an unset, missing or
unfit keypoint label map is one line, exit 2, naming the field and what it must hold,
before any model is built.  Paths that export never reads (``fine_tune_checkpoint``,
the input readers' records) are only noted when they are unset or missing.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from od_export.errors import ConfigError
from od_export.source.proto_text import find_named_path, label_map_proto
from od_export.storage.reading import read_bounded

logger = logging.getLogger(__name__)

UNSET = "PATH_TO_BE_CONFIGURED"
KEYPOINT_FIELD = "model.center_net.keypoint_label_map_path"
#: What the keypoint label map must hold, for the one-line error.
_KEYPOINT_FIX = ("set it to the keypoint label map the model was trained with: a label map whose item for each "
                 "keypoint task's class lists its keypoints, like `item { id: 1 name: \"person\" keypoints { id: 0 "
                 "label: \"nose\" } ... }`")
_MAX_LABEL_MAP_BYTES = 64 * 2**20


def _keypoint_tasks(config: Any) -> list[Any]:
    if config.model.WhichOneof("model") != "center_net":
        return []
    return list(config.model.center_net.keypoint_estimation_task)


def resolve_build_paths(config: Any, config_path: Path | None) -> None:
    """A keypoint label map named relative to the config (as training often ran beside it) is found there."""
    if not _keypoint_tasks(config) or config_path is None:
        return
    written = config.model.center_net.keypoint_label_map_path
    if not written or UNSET in written or Path(written).is_file():
        return
    found = find_named_path(written, [config_path.parent])
    if found.is_file():
        logger.info(f"{KEYPOINT_FIELD} {written!r} is not a file here; using {found}, beside the pipeline.config")
        config.model.center_net.keypoint_label_map_path = str(found)


def check_build_paths(config: Any) -> None:
    """Every file the model build reads is set, present and fit for it; the rest is noted when unset."""
    tasks = _keypoint_tasks(config)
    if tasks:
        _check_keypoint_label_map(config.model.center_net.keypoint_label_map_path, tasks)
    _note_unread_paths(config)


def _check_keypoint_label_map(path: str, tasks: list[Any]) -> None:
    if not path or UNSET in path:
        raise ConfigError(f"{KEYPOINT_FIELD} is {path or 'empty'!r}, and the model build reads it for the keypoint "
                          f"tasks; {_KEYPOINT_FIX}")
    if not Path(path).is_file():
        raise ConfigError(f"{KEYPOINT_FIELD} {path} does not exist; {_KEYPOINT_FIX}")
    data = read_bounded(Path(path), "keypoint label map", _MAX_LABEL_MAP_BYTES, _KEYPOINT_FIX, ConfigError)
    try:
        proto = label_map_proto(data, path)
    except Exception as exc:  # noqa: BLE001 - the label map's own one-line error, as a config error
        raise ConfigError(f"{KEYPOINT_FIELD}: {exc}") from None
    with_keypoints = {item.name for item in proto.item if item.keypoints}
    for task in tasks:
        if task.keypoint_class_name not in with_keypoints:
            raise ConfigError(f"{KEYPOINT_FIELD} {path} has no item named {task.keypoint_class_name!r} with keypoints, "
                              f"which keypoint task {task.task_name!r} needs; {_KEYPOINT_FIX}")


def _note_unread_paths(config: Any) -> None:
    """One note for the unset or missing paths that export never reads."""
    unread = []
    if config.train_config.fine_tune_checkpoint:
        unread.append(("train_config.fine_tune_checkpoint", config.train_config.fine_tune_checkpoint))
    readers = [("train_input_reader", config.train_input_reader)]
    readers += [(f"eval_input_reader[{i}]", reader) for i, reader in enumerate(config.eval_input_reader)]
    for name, reader in readers:
        unread += [(f"{name}.tf_record_input_reader.input_path", p) for p in reader.tf_record_input_reader.input_path]
    unset = [field for field, value in unread if UNSET in value]
    if unset:
        logger.info(f"ignored (export does not read them): {', '.join(dict.fromkeys(unset))}, "
                    f"still {UNSET}")
