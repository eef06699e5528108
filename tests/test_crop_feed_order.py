"""The crop feed's bookkeeping, without a model: a second stage run in the candidate's proposal order is
put back into the reference's, and so are the proposal indices that point into it."""
from __future__ import annotations

import numpy as np

from od_export.verify import crop_feed


class _Feed:
    """A stand-in for the SavedModel's graph: its 'second stage' is a function of the boxes it is fed."""

    crop_boxes = ["crop:0"]

    def __init__(self, own: np.ndarray) -> None:
        self.own, self.sources, self.fed = own, ["proposal_boxes_normalized"], []

    def own_boxes(self, image_feed):
        return [self.own.reshape(-1, 4)]

    def outputs(self, image_feed, boxes):
        fed = np.asarray(boxes[0], np.float32).reshape(1, -1, 4)
        self.fed.append(fed)
        return {"raw_detection_boxes": fed * 2.0, "detection_anchor_indices": np.float32([[2, 0]]),
                "detection_boxes": fed[:, :2] * 2.0, "detection_scores": np.float32([[0.9, 0.8]]),
                "detection_classes": np.float32([[1, 1]]), "proposal_boxes_normalized": fed}


def _boxes(*rows):
    return np.float32([rows])


def test_the_second_stage_is_run_on_the_candidate_s_proposals_and_put_in_the_reference_s_order():
    own = _boxes([0.1, 0.1, 0.3, 0.3], [0.4, 0.4, 0.6, 0.6], [0.7, 0.7, 0.9, 0.9])
    moved = own[:, [2, 0, 1]] + np.float32(1e-5)  # the candidate kept the same proposals in another order
    feed = _Feed(own)
    reference = {"proposal_boxes_normalized": own, "raw_detection_boxes": own * 2.0}
    judged = crop_feed.judged_on(feed, np.zeros(1), reference, {"proposal_boxes_normalized": moved}, 1e-2, 0.0)
    assert np.array_equal(feed.fed[0], moved)  # fed the candidate's own boxes, in its order
    assert np.allclose(judged["raw_detection_boxes"], own * 2.0, atol=1e-4)  # back in the reference's order
    assert np.array_equal(judged["proposal_boxes_normalized"], own)  # the first stage stays the reference's own
    # index 2 of the candidate's order is its third row, the reference's first proposal
    assert judged["detection_anchor_indices"].tolist() == [[1, 2]]


def test_without_the_candidate_s_proposals_the_reference_is_returned_as_it_is():
    own = _boxes([0.1, 0.1, 0.3, 0.3])
    reference = {"proposal_boxes_normalized": own, "raw_detection_boxes": own}
    assert crop_feed.judged_on(_Feed(own), np.zeros(1), reference, {"raw_detection_boxes": own}, 1e-2, 0.0) \
        is reference


def test_an_export_without_proposals_has_them_read_at_its_crop():
    own = _boxes([0.1, 0.1, 0.3, 0.3], [0.4, 0.4, 0.6, 0.6])
    feed = _Feed(own)
    feed.sources = [None]
    candidate = {"proposal_boxes_normalized": own[:, ::-1].copy()}
    judged = crop_feed.judged_on(feed, np.zeros(1), {"raw_detection_boxes": own * 2.0}, candidate, 1e-2, 0.0)
    assert feed.sources == ["proposal_boxes_normalized"]
    assert np.allclose(judged["raw_detection_boxes"], own * 2.0)
    assert "proposal_boxes_normalized" not in judged  # only what the SavedModel outputs is compared
