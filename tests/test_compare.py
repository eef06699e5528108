"""Detections are compared as a user judges them: by class and overlap, not by index."""
from __future__ import annotations

import numpy as np

from od_export.verify.compare import UNMATCHED_KEY, box_iou, compare_outputs


def detections(rows: list[tuple[float, int, tuple[float, float, float, float]]], slots: int = 5) -> dict[str, np.ndarray]:
    """A batch of one: (score, class, box) rows, padded with zeros to ``slots``."""
    scores, classes, boxes = np.zeros((1, slots), np.float32), np.zeros((1, slots), np.float32), np.zeros((1, slots, 4), np.float32)
    for i, (score, cls, box) in enumerate(rows):
        scores[0, i], classes[0, i], boxes[0, i] = score, cls, box
    return {"detection_scores": scores, "detection_classes": classes, "detection_boxes": boxes,
            "num_detections": np.array([float(slots)], np.float32)}


A = (0.9, 1, (0.1, 0.1, 0.4, 0.4))
B = (0.5001, 2, (0.5, 0.5, 0.9, 0.9))
C = (0.5, 3, (0.2, 0.6, 0.3, 0.8))


def verdict(reference, candidate, **kwargs) -> dict[str, bool]:
    return {d.key: d.ok for d in compare_outputs(reference, candidate, **kwargs)}


def test_identical_detections_match():
    result = verdict(detections([A, B, C]), detections([A, B, C]))
    assert all(result.values()) and UNMATCHED_KEY in result


def test_near_equal_scores_that_swap_places_in_nms_are_not_a_failure():
    swapped = (C[0] + 0.0003, C[1], C[2]), (B[0] - 0.0002, B[1], B[2])
    assert all(verdict(detections([A, B, C]), detections([A, *swapped])).values())


def test_missing_extra_moved_or_reclassified_detections_fail():
    assert not verdict(detections([A, B, C]), detections([A, B]))[UNMATCHED_KEY]  # missing
    assert not verdict(detections([A, B]), detections([A, B, C]))[UNMATCHED_KEY]  # extra
    moved = (B[0], B[1], (0.52, 0.5, 0.92, 0.9))  # IoU still > 0.5, but 0.02 off
    assert not verdict(detections([A, B]), detections([A, moved]))["detection_boxes"]
    other_class = (B[0], 3, B[2])
    assert not verdict(detections([A, B]), detections([A, other_class]))[UNMATCHED_KEY]


def test_detections_at_the_threshold_or_cut_by_a_full_list_are_explained():
    faint = (0.052, 1, (0.6, 0.1, 0.7, 0.2))
    assert all(verdict(detections([A, faint]), detections([A]), score_threshold=0.05).values())
    # both lists are full (3 slots); their last entries differ by rounding: each fell off the other's list
    other = (0.5003, 1, (0.7, 0.7, 0.8, 0.8))
    assert all(verdict(detections([A, B, C], slots=3), detections([A, B, other], slots=3)).values())
    # a list that was full before entries were set aside (candidate_floors) still explains what fell off
    thinned = detections([A, B], slots=3)
    assert not verdict(detections([A, B, C], slots=3), thinned)[UNMATCHED_KEY]
    assert verdict(detections([A, B, C], slots=3), thinned, candidate_floors=np.array([0.5]))[UNMATCHED_KEY]


def test_outputs_of_different_shapes_are_reported():
    result = verdict(detections([A, B, C]), detections([A, B], slots=2))
    assert result["detection_boxes"] is False and result["detection_scores"] is False


def test_raw_outputs_and_counts():
    reference = {"raw_detection_scores": np.array([[0.1, 0.2]]), "num_detections": np.array([2.0])}
    assert verdict(reference, {"raw_detection_scores": np.array([[0.105, 0.2]]), "num_detections": np.array([2.0])},
                   atol=1e-2) == {"num_detections": True, "raw_detection_scores": True}
    assert not verdict(reference, {"raw_detection_scores": np.array([[0.2, 0.2]]), "num_detections": np.array([2.0])},
                       atol=1e-2)["raw_detection_scores"]
    assert not verdict(reference, {"raw_detection_scores": np.array([[0.1, 0.2]]), "num_detections": np.array([3.0])})[
        "num_detections"]
    assert verdict(reference, {"num_detections": np.array([2.0])}) == {"num_detections": True, "raw_detection_scores": False}


def test_box_iou_accepts_either_corner_order():
    a = np.array([[0.0, 0.0, 1.0, 1.0]])
    b = np.array([[0.5, 1.0, 0.0, 0.0]])  # same as [0, 0, 0.5, 1] with corners swapped
    assert np.isclose(box_iou(a, b)[0, 0], 0.5)
    assert box_iou(a, np.array([[2.0, 2.0, 3.0, 3.0]]))[0, 0] == 0.0


def test_raw_rows_of_proposals_that_trade_places_are_paired_by_box():
    rng = np.random.default_rng(1)
    boxes = np.sort(rng.uniform(0, 1, (1, 6, 2, 2)), axis=3).transpose(0, 1, 3, 2).reshape(1, 6, 4)
    scores = rng.uniform(0, 1, (1, 6, 3))
    reference = {"raw_detection_boxes": boxes, "raw_detection_scores": scores}
    order = [1, 0, 2, 3, 5, 4]  # near-tied proposals in another order: the same rows
    swapped = {key: value[:, order] for key, value in reference.items()}
    assert all(verdict(reference, swapped).values())
    replaced = {key: value.copy() for key, value in swapped.items()}
    replaced["raw_detection_boxes"][0, 2] = [0.0, 0.0, 0.05, 0.05]  # a proposal only one side kept
    assert not verdict(reference, replaced)["raw_detection_boxes"]


def test_raw_boxes_far_outside_the_image_are_judged_relative_to_their_size():
    """An untrained FPN's raw boxes reach several image sizes out; float32 rounding there grows with them."""
    far = np.array([[[-2.9, -3.1, 4.2, 3.8], [0.2, 0.3, 0.5, 0.6]]])
    rounded = far + np.array([[[0.0143, -0.0143, 0.0143, 0.0]], ]).reshape(1, 1, 4) * [[[1], [0]]]
    assert verdict({"raw_detection_boxes": far}, {"raw_detection_boxes": rounded})["raw_detection_boxes"]
    assert not verdict({"raw_detection_boxes": far}, {"raw_detection_boxes": rounded}, rtol=0.0)["raw_detection_boxes"]
    inside = far.copy()
    inside[0, 1] += 0.05  # a box inside the image moved by a tampered weight's amount
    assert not verdict({"raw_detection_boxes": far}, {"raw_detection_boxes": inside})["raw_detection_boxes"]
    scores = {"raw_detection_scores": np.array([[0.9]])}
    assert not verdict(scores, {"raw_detection_scores": np.array([[0.9 + 0.0143]])})["raw_detection_scores"]


def test_a_failing_raw_comparison_of_a_full_size_model_costs_no_more_memory_than_a_passing_one():
    """A 320² FPN-lite with 90 classes: 12,804 anchors.  Pairing every row with every row took 11.6 GB."""
    import tracemalloc

    rng = np.random.default_rng(0)
    anchors = 12_804
    reference = {"raw_detection_boxes": rng.normal(size=(1, anchors, 4)).astype(np.float32),
                 "raw_detection_scores": rng.random((1, anchors, 91), dtype=np.float32)}

    def peak(candidate) -> tuple[int, bool]:
        tracemalloc.start()
        try:
            ok = all(verdict(reference, candidate).values())
            return tracemalloc.get_traced_memory()[1], ok
        finally:
            tracemalloc.stop()

    passing, passed = peak({k: v + np.float32(1e-5) for k, v in reference.items()})
    failing, failed = peak({k: v + np.float32(0.1) for k, v in reference.items()})
    assert passed and not failed
    assert failing <= passing + 64 * 2**20, (failing / 2**20, passing / 2**20)
