"""Building blocks of the TensorRT file's graph: the ``EfficientNMS_TRT`` node and what follows it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from od_export.targets.tensorrt_check import NMS_OP

#: NVIDIA's OD API sample never lets the plugin's score threshold go below this (speed).
PLUGIN_MIN_SCORE_THRESHOLD = 0.01


def nms_node(graph: Any, prefix: str, boxes: Any, scores: Any, k: int, score_threshold: float, iou_threshold: float,
             background_class: int = 0, class_agnostic: bool = False) -> list[Any]:
    """An ``EfficientNMS_TRT`` node (corner boxes, converted scores) and its four outputs."""
    import onnx_graphsurgeon as gs

    batch = scores.shape[0]
    outputs = [gs.Variable(f"{prefix}num_detections", np.int32, (batch, 1)),
               gs.Variable(f"{prefix}nms_boxes", np.float32, (batch, k, 4)),
               gs.Variable(f"{prefix}detection_scores", np.float32, (batch, k)),
               gs.Variable(f"{prefix}detection_classes", np.int32, (batch, k))]
    attrs = {"plugin_version": "1", "background_class": background_class, "max_output_boxes": k,
             "score_threshold": float(score_threshold), "iou_threshold": float(iou_threshold),
             "score_activation": 0, "box_coding": 0}
    if class_agnostic:
        attrs["class_agnostic"] = 1
    graph.layer(op=NMS_OP, name=f"{prefix}nms", inputs=[boxes, scores], outputs=outputs, attrs=attrs)
    return outputs


def _with_background(graph: Any, boxes: Any, scores: Any) -> tuple[Any, Any]:
    """An empty class 0 before the classes, so the plugin's class indices count from 1 as the SavedModel's do.

    Per-class boxes [B,N,C,4] get an empty box column to match; shared boxes ([B,N,4], [B,N,1,4]) stay.
    """
    import onnx_graphsurgeon as gs

    batch, count, columns = scores.shape
    padded = gs.Variable("scores_with_background", np.float32, (batch, count, columns + 1))
    zero = gs.Constant("background_scores", np.zeros((batch, count, 1), np.float32))
    graph.layer(op="Concat", inputs=[zero, scores], outputs=[padded], attrs={"axis": 2})
    if len(boxes.shape) == 4 and boxes.shape[2] == columns > 1:
        wide = gs.Variable("boxes_with_background", np.float32, (batch, count, columns + 1, 4))
        empty = gs.Constant("background_boxes", np.zeros((batch, count, 1, 4), np.float32))
        graph.layer(op="Concat", inputs=[empty, boxes], outputs=[wide], attrs={"axis": 2})
        boxes = wide
    return boxes, padded


def finish_detections(graph: Any, boxes: Any, scores: Any, settings: Any, window: np.ndarray, producer: str,
                      version: str, classes: int | None = None, change_frame: bool | None = None,
                      extend: Callable[[Any, list[Any]], list[Any]] | None = None) -> Any:
    """NMS as the config's ``batch_non_max_suppression`` says, the window clip and frame change: the four outputs.

    ``scores`` without a background column (``classes`` columns, all of them when None) get an empty one first.
    ``change_frame``: boxes relative to the window (default: the settings' ``change_coordinate_frame``).
    ``extend(graph, outputs)``: more layers after the four outputs; the tensors it returns are outputs too.
    """
    import onnx_graphsurgeon as gs

    batch = scores.shape[0]
    if classes is None or scores.shape[2] == classes:
        boxes, scores = _with_background(graph, boxes, scores)
    k = int(settings.max_total_detections)
    outputs = nms_node(graph, "", boxes, scores, k, max(float(settings.score_threshold), PLUGIN_MIN_SCORE_THRESHOLD),
                       settings.iou_threshold, background_class=0, class_agnostic=settings.use_class_agnostic_nms)
    low, high = np.tile(window[:2], 2).astype(np.float32), np.tile(window[2:], 2).astype(np.float32)
    clipped = gs.Variable("clipped_boxes", np.float32, (batch, k, 4))
    lifted = gs.Variable("boxes_above_window_start", np.float32, (batch, k, 4))
    graph.layer(op="Max", inputs=[outputs[1], gs.Constant("window_start", low)], outputs=[lifted])
    final = gs.Variable("detection_boxes", np.float32, (batch, k, 4))
    if settings.change_coordinate_frame if change_frame is None else change_frame:  # relative to the real image
        graph.layer(op="Min", inputs=[lifted, gs.Constant("window_end", high)], outputs=[clipped])
        shifted = gs.Variable("boxes_from_window_start", np.float32, (batch, k, 4))
        graph.layer(op="Sub", inputs=[clipped, gs.Constant("window_offset", low)], outputs=[shifted])
        graph.layer(op="Div", inputs=[shifted, gs.Constant("window_size", high - low)], outputs=[final])
    else:
        graph.layer(op="Min", inputs=[lifted, gs.Constant("window_end", high)], outputs=[final])
    graph.outputs = [outputs[0], final, outputs[2], outputs[3]]
    if extend is not None:
        graph.outputs += extend(graph, graph.outputs)
    graph.cleanup().toposort()
    exported = gs.export_onnx(graph)
    exported.producer_name, exported.producer_version = producer, version
    return exported
