"""A two-stage model's per-proposal outputs are compared in the reference's proposal order."""
from __future__ import annotations

import numpy as np

from od_export.verify.compare import compare_outputs
from od_export.verify.proposals import in_reference_order, proposal_order


def _two_stage(rng: np.random.Generator, proposals: int = 6) -> dict[str, np.ndarray]:
    corners = rng.uniform(0, 0.5, (1, proposals, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(0.1, 0.5, (1, proposals, 2))], axis=-1)
    return {
        "raw_detection_boxes": boxes.astype(np.float32),
        "raw_detection_scores": rng.uniform(0, 1, (1, proposals, 3)).astype(np.float32),
        "proposal_boxes": (boxes * 640).astype(np.float32),
        "class_predictions_with_background": rng.normal(size=(proposals, 3)).astype(np.float32),
        "box_classifier_features": rng.normal(size=(proposals, 2, 2, 4)).astype(np.float32),
        "rpn_features_to_crop": rng.normal(size=(1, 4, 4, 2)).astype(np.float32),
    }


def _permuted(outputs: dict[str, np.ndarray], order: np.ndarray) -> dict[str, np.ndarray]:
    moved = dict(outputs)
    for key in ("raw_detection_boxes", "raw_detection_scores", "proposal_boxes"):
        moved[key] = outputs[key][:, order]
    for key in ("class_predictions_with_background", "box_classifier_features"):
        moved[key] = outputs[key][order]
    return moved


def test_proposals_that_trade_places_are_paired_for_every_per_proposal_output():
    reference = _two_stage(np.random.default_rng(0))
    order = np.array([1, 0, 2, 3, 5, 4])  # two pairs of near-tied proposals swapped
    candidate = _permuted(reference, order)
    rows = proposal_order(reference, candidate, 1e-2)
    assert rows is not None and list(rows[0]) == [1, 0, 2, 3, 5, 4]
    for key in ("class_predictions_with_background", "box_classifier_features", "proposal_boxes"):
        assert np.array_equal(in_reference_order(key, candidate[key], rows), reference[key]), key
    assert np.array_equal(in_reference_order("rpn_features_to_crop", candidate["rpn_features_to_crop"], rows),
                          candidate["rpn_features_to_crop"])
    assert all(d.ok for d in compare_outputs(reference, candidate)), compare_outputs(reference, candidate)


def test_a_second_stage_that_computes_otherwise_still_fails_after_pairing():
    """The tampered artifact: proposals swapped (allowed) and the box classifier's features changed (not)."""
    reference = _two_stage(np.random.default_rng(1))
    candidate = _permuted(reference, np.array([1, 0, 2, 3, 4, 5]))
    candidate["box_classifier_features"] = candidate["box_classifier_features"] * 1.5
    verdict = {d.key: d.ok for d in compare_outputs(reference, candidate)}
    assert verdict["box_classifier_features"] is False
    assert verdict["class_predictions_with_background"] is True


def test_rows_in_place_need_no_pairing():
    reference = _two_stage(np.random.default_rng(2))
    assert proposal_order(reference, dict(reference), 1e-2) is None


def test_the_first_stage_s_boxes_pair_proposals_where_the_export_has_them():
    """Mask R-CNN exports its proposals: a second stage that differs must not unpair them."""
    reference = _two_stage(np.random.default_rng(3))
    reference["proposal_boxes_normalized"] = reference["proposal_boxes"] / 640
    candidate = _permuted(reference, np.array([1, 0, 2, 3, 4, 5]))
    candidate["proposal_boxes_normalized"] = candidate["proposal_boxes"] / 640
    candidate["raw_detection_boxes"] = candidate["raw_detection_boxes"] + 0.2  # the second stage moved every box
    verdict = {d.key: d.ok for d in compare_outputs(reference, candidate)}
    assert verdict["proposal_boxes"] and verdict["box_classifier_features"] and not verdict["raw_detection_boxes"]
