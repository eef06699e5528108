"""CenterNet keypoints in a TFLite file, for any number of classes.

The OD API post-processes keypoints in one of two ways.  With one keypoint task and
``num_classes: 1`` it computes every detection's keypoints with fixed shapes
(``_postprocess_keypoints_single_class``, the path its own TFLite pose model takes).
Otherwise (the zoo's COCO pose configs have 90 classes) it first gathers the
detections of the keypoint class with ``tf.where``, a tensor whose size depends on
the picture; its docstring calls that path "not tf.lite/tf.js compatible", and the
file LiteRT gets fails (``UNPACK ... NumElements(input) > 0``) on any picture whose
top detections hold no object of that class.

For the TFLite trace only, the model's multi-class path is replaced by the fixed-shape
computation for every detection followed by a mask: detections of other classes get
zero keypoints and zero scores, which is what the multi-class path scatters for them.
Each detection's keypoints are refined on their own, so the keypoint class's values
are the same; the file is verified against the SavedModel, which keeps the OD API's
own path.
"""
from __future__ import annotations

import types
from typing import Any

from od_export.errors import InputError


def check_keypoint_tasks(config: Any) -> None:
    """One keypoint task at most: the fixed-shape path computes one task's keypoints for every detection."""
    tasks = config.model.center_net.keypoint_estimation_task
    if len(tasks) > 1:
        raise InputError(f"this CenterNet has {len(tasks)} keypoint tasks; its TFLite file can carry one (the OD API's "
                         "TFLite keypoint path takes a single task); export the other targets, or train one task")


def fixed_shape_keypoints(model: Any) -> None:
    """Replace ``model``'s multi-class keypoint post-processing with fixed shapes (see the module docstring)."""
    if model._num_classes == 1 or len(model._kp_params_dict) != 1:
        return  # the OD API takes its own fixed-shape path (one class), or check_keypoint_tasks refused
    model._postprocess_keypoints_multi_class = types.MethodType(_every_detection_masked, model)


def _every_detection_masked(self: Any, prediction_dict: Any, classes: Any, y_indices: Any, x_indices: Any,
                            boxes: Any, num_detections: Any) -> tuple[Any, Any]:
    from od_export import compat
    from object_detection.meta_architectures import center_net_meta_arch as meta

    tf = compat.import_tensorflow()
    task_name, kp_params = next(iter(self._kp_params_dict.items()))
    maps = [prediction_dict[meta.get_keypoint_name(task_name, kind)][-1]
            for kind in (meta.KEYPOINT_HEATMAP, meta.KEYPOINT_OFFSET, meta.KEYPOINT_REGRESSION)]
    batch = classes.shape[0]
    coords, scores = [], []
    for index in range(batch):
        coord, score, _ = self._postprocess_keypoints_for_class_and_image(
            *maps, classes, y_indices, x_indices, boxes, index, kp_params)
        coords.append(coord)
        scores.append(score)
    keep = tf.logical_and(tf.equal(classes, kp_params.class_id),
                          tf.range(classes.shape[1])[None] < tf.cast(num_detections, tf.int32)[:, None])
    keep = tf.cast(keep, tf.float32)
    return tf.concat(coords, axis=0) * keep[:, :, None, None], tf.concat(scores, axis=0) * keep[:, :, None]
