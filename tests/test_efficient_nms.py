"""The reference EfficientNMS follows the plugin's documented semantics."""
from __future__ import annotations

import numpy as np
import pytest

from od_export.verify.efficient_nms import EfficientNmsAttributes, as_tensorflow_would, efficient_nms

BOXES = np.array([[[0.0, 0.0, 0.5, 0.5],     # 0
                   [0.0, 0.0, 0.5, 0.52],    # 1: overlaps 0 (IoU 0.96)
                   [0.5, 0.5, 1.0, 1.0],     # 2
                   [0.6, 0.6, 1.0, 1.0]]],   # 3: overlaps 2 (IoU 0.64)
                 np.float32)
# columns: background, class 1, class 2
SCORES = np.array([[[0.9, 0.8, 0.1],
                    [0.9, 0.7, 0.6],
                    [0.9, 0.2, 0.5],
                    [0.9, 0.3, 0.4]]], np.float32)


def run(**overrides) -> dict[str, np.ndarray]:
    attrs = dict(score_threshold=0.25, iou_threshold=0.5, max_output_boxes=5, background_class=0)
    return efficient_nms(BOXES, SCORES, EfficientNmsAttributes(**{**attrs, **overrides}))


def test_per_class_nms_skips_the_background_and_sorts_by_score():
    out = run()
    # class 1: box 0 (0.8) suppresses 1 (0.7); box 3 (0.3) kept (no overlap with 0), 2 (0.2) below threshold
    # class 2: box 1 (0.6) kept, box 2 (0.5) kept, box 3 (0.4) suppressed by 2
    assert out["num_detections"].tolist() == [[4]]
    assert out["detection_scores"][0].tolist() == pytest.approx([0.8, 0.6, 0.5, 0.3, 0.0])
    assert out["detection_classes"][0].tolist() == [1, 2, 2, 1, 0]
    assert np.array_equal(out["detection_boxes"][0, 3], BOXES[0, 3]) and not out["detection_boxes"][0, 4].any()


def test_max_output_boxes_cuts_the_merged_list_and_class_agnostic_suppresses_across_classes():
    assert run(max_output_boxes=2)["detection_classes"][0].tolist() == [1, 2]
    agnostic = run(class_agnostic=1)
    # best class per box: 0→1 (0.8), 1→1 (0.7), 2→2 (0.5), 3→2 (0.4); 1 is suppressed by 0, 3 by 2
    assert agnostic["num_detections"].tolist() == [[2]]
    assert agnostic["detection_classes"][0, :2].tolist() == [1, 2]


def test_only_the_encodings_od_export_writes_are_accepted():
    with pytest.raises(ValueError):
        EfficientNmsAttributes.from_node({"score_threshold": 0.1, "iou_threshold": 0.5, "max_output_boxes": 5, "box_coding": 1})


def test_what_tensorflow_would_drop_is_set_aside():
    out = run()
    out["detection_boxes"][0, 1] = [0.5, 0.5, 0.5, 0.9]  # no height: TensorFlow drops it after clipping
    adjusted, capped, empty = as_tensorflow_would(out, max_per_class=1)
    # TensorFlow caps each class before it clips: the empty box still takes class 2's one place
    assert (capped, empty) == (2, 1)
    assert adjusted["detection_scores"][0].tolist() == pytest.approx([0.8, 0.0, 0.0, 0.0, 0.0])
