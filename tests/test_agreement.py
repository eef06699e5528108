"""Detection agreement (fp16/int8 checks) and the side-by-side drawings: pure logic, no TensorFlow."""
from __future__ import annotations

import numpy as np
import pytest

from od_export.verify.agreement import detection_agreement
from od_export.source.labels import parse_label_map
from od_export.verify.drawing import save_side_by_side
from od_export.verify.tolerance import Tolerance


def detections(boxes, classes, scores) -> dict[str, np.ndarray]:
    return {"detection_boxes": np.array([boxes], np.float32), "detection_classes": np.array([classes], np.float32),
            "detection_scores": np.array([scores], np.float32), "num_detections": np.array([len(scores)], np.float32)}


REFERENCE = detections([[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9], [0.2, 0.6, 0.3, 0.7], [0, 0, 0, 0]],
                       [1, 2, 3, 1], [0.9, 0.8, 0.6, 0.01])


def test_identical_detections_agree_fully():
    agreement = detection_agreement([REFERENCE], [REFERENCE], "fp16", Tolerance())
    assert (agreement.matched, agreement.total, agreement.extra) == (3, 3, 0)
    assert agreement.fraction == 1.0 and agreement.ok and agreement.mean_iou == pytest.approx(1.0)


def test_lost_moved_and_relabelled_detections_lower_the_agreement():
    candidate = detections([[0.12, 0.1, 0.42, 0.4], [0.5, 0.5, 0.9, 0.9], [0.6, 0.0, 0.7, 0.1], [0, 0, 0, 0]],
                           [1, 3, 3, 1], [0.85, 0.8, 0.5, 0.0])
    agreement = detection_agreement([REFERENCE], [candidate], "int8", Tolerance(min_agreement=(("int8", 0.5),)))
    # the first is found (moved a little), the second changed class, the third vanished; two extras
    assert (agreement.matched, agreement.total, agreement.extra) == (1, 3, 2)
    assert agreement.max_score_diff == pytest.approx(0.05, abs=1e-6) and not agreement.ok
    assert "1/3 = 0.33" in agreement.describe() and "required 0.5" in agreement.describe()


def test_defaults_per_precision_and_boxes_without_area():
    point = detections([[0.5, 0.5, 0.5, 0.5]], [1], [0.7])
    nudged = detections([[0.505, 0.5, 0.505, 0.5]], [1], [0.69])
    fp16 = detection_agreement([point], [nudged], "fp16", Tolerance())
    assert fp16.matched == 1 and fp16.min_agreement == 0.9 and fp16.mean_iou == 1.0
    assert detection_agreement([point], [nudged], "int8", Tolerance()).min_agreement == 0.5
    assert detection_agreement([point], [point], "int8", Tolerance(min_agreement=(("int8", 1.0),))).ok


def test_label_map_and_side_by_side_sheet(tmp_path):
    from PIL import Image

    labels = parse_label_map('item { id: 1 name: "cat" }\nitem {\n  name: "dog"\n  id: 2\n  display_name: "Dog"\n}\n')
    assert labels == {1: "cat", 2: "Dog"}
    image = np.full((700, 1400, 3), 200, np.uint8)  # a large photo: each panel is scaled to 640 px wide
    lost_one = detections([[0.1, 0.1, 0.4, 0.4], [0, 0, 0, 0]], [1, 1], [0.9, 0.01])
    columns = [("SavedModel", [REFERENCE], []), ("tflite:int8", [lost_one], [])] + [(f"other{i}", [], []) for i in range(3)]
    [path] = save_side_by_side(tmp_path, "unit/a", [image], ["street photo.jpg"], columns, labels, 0.05)
    assert path.name == "unit_a_street_photo.png"
    with Image.open(path) as sheet:  # five panels: a grid of four columns, two rows
        assert sheet.size == (4 * 648 - 8, 2 * (320 + 22 + 8) - 8)
        assert sheet.getpixel((int(0.1 * 640) + 1, 22 + int(0.25 * 320))) != (200, 200, 200)  # a box edge
        second = 648  # the int8 panel marks the two detections it missed as dashed grey boxes
        assert (128, 128, 128) in {sheet.getpixel((second + x, 22 + int(0.5 * 320))) for x in range(int(0.5 * 640) - 2, int(0.5 * 640) + 3)}


def test_label_map_named_with_a_windows_path_is_found_beside_the_config(tmp_path, caplog):
    from od_export.verify.drawing import label_map_names

    config = tmp_path / "pipeline.config"
    config.write_text('eval_input_reader { label_map_path: "C:\\\\data\\\\kangaroo\\\\label_map.pbtxt" }\n')
    (tmp_path / "label_map.pbtxt").write_text('item { id: 1 name: "kangaroo" }\n')
    assert label_map_names(config) == {1: "kangaroo"}
    (tmp_path / "label_map.pbtxt").unlink()
    assert label_map_names(config) == {} and "no label map found" in caplog.text
    given = tmp_path / "given.pbtxt"
    given.write_text('item { id: 1 name: "roo" }\n')
    assert label_map_names(config, given) == {1: "roo"}