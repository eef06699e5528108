"""A two-stage model's later stages judged on the candidate's own boxes, where the model crops with CropAndResize.

TensorFlow's ``CropAndResize`` kernel zeroes the last sample row or column of a box
that ends at the feature map's border when float32 rounding puts that sample just
outside the map; which one flips when a box coordinate moves by one float32 step.
Every converted backbone moves the first stage's proposals by ~1e-5, so the crops of
the proposals that end at the image border (proposals are clipped to it) differ in a
whole row between the SavedModel and any faithful conversion: measured on the zoo's
Mask R-CNN at 256², 11.3 on a scale of 13.7, before any second-stage layer.  The same
holds for Mask R-CNN's third stage, which crops the final detection boxes.

So for such a model the SavedModel's graph is run again with the ``boxes`` input of
each crop fed from the candidate's own outputs (``proposal_boxes_normalized`` for the
second stage; the matched ``detection_boxes`` for the mask head), and every output
after the crop is compared with that run.  The first stage is still compared with the
SavedModel's own run (its proposals paired as :mod:`od_export.verify.proposals` says), and
so is everything the crop does not feed.  A second stage that computes differently
(a changed weight, a wrong crop) still differs, on the very same boxes.

Models that crop with the OD API's gather-based crop (``use_matmul_crop_and_resize``)
have no such op and are compared as they are.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from od_export import compat
from od_export.verify import compare, proposals

#: The outputs a crop's boxes may be fed from, in the order the model crops them.
BOX_SOURCES = ("proposal_boxes_normalized", "detection_boxes")
#: Per-proposal outputs the first stage computes: upstream of every crop, compared as they are.
FIRST_STAGE_KEYS = ("proposal_boxes", "proposal_boxes_normalized")
#: How far a crop's boxes may be from the output they are taken for (normalised units).
SOURCE_ATOL = 1e-4


def has_native_crop(function: Any) -> bool:
    """True when a SavedModel signature's graph (or a function it calls) crops with ``CropAndResize``."""
    graph_def = function.graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    return any(node.op == "CropAndResize" for node in nodes)


@dataclass
class CropFeed:
    """The signature, frozen, as a function of its input and of every crop's boxes."""

    run_graph: Any
    keys: list[str]
    crop_boxes: list[str]
    #: Per crop, the output its boxes equal in the SavedModel's own run (None: not one of ours).
    sources: list[str | None]

    def outputs(self, feed: np.ndarray, boxes: dict[int, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The outputs on ``feed`` with crop ``i``'s boxes replaced by ``boxes[i]`` (flattened to [-1, 4])."""
        values = self.run_graph(feed, boxes or {})
        return dict(zip(self.keys, values[:len(self.keys)]))

    def own_boxes(self, feed: np.ndarray) -> list[np.ndarray]:
        return list(self.run_graph(feed, {})[len(self.keys):])


def build(function: Any) -> CropFeed | None:
    """The crop-feeding form of a signature; None where it has no ``CropAndResize`` at its top level."""
    tf = compat.import_tensorflow()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(function)
    graph_def = frozen.graph.as_graph_def()
    crops = [node for node in graph_def.node if node.op == "CropAndResize"]
    if not crops:
        return None
    keys = sorted(function.structured_outputs)  # tf.nest's order: frozen.outputs follow it
    output_names = [t.name for t in frozen.outputs]
    box_names = [_tensor_name(node.input[1]) for node in crops]
    input_name = frozen.inputs[0].name

    def imported():
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(imported, [])
    graph = wrapped.graph
    fetches = [graph.get_tensor_by_name(n) for n in output_names + box_names]
    prunes: dict[tuple[int, ...], Any] = {}

    def run_graph(feed: np.ndarray, boxes: dict[int, np.ndarray]) -> list[np.ndarray]:
        fed = tuple(sorted(boxes))
        if fed not in prunes:
            feeds = [graph.get_tensor_by_name(input_name)] + [graph.get_tensor_by_name(box_names[i]) for i in fed]
            prunes[fed] = wrapped.prune(feeds=feeds, fetches=fetches)
        args = [tf.constant(feed)] + [tf.constant(np.asarray(boxes[i], np.float32).reshape(-1, 4)) for i in fed]
        return [v.numpy() for v in prunes[fed](*args)]

    return CropFeed(run_graph, keys, box_names, [])


def _tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"


def find_sources(feed: CropFeed, image_feed: np.ndarray, reference: dict[str, np.ndarray]) -> None:
    """Name each crop's box source: the output its boxes equal in the SavedModel's run.

    The frozen graph's own run and the signature's round differently (grappler's
    rewrites), so "equal" is within ``SOURCE_ATOL``; the closest output wins.
    """
    own = feed.own_boxes(image_feed)
    sources = []
    for boxes in own:
        gaps = {key: float(np.abs(np.asarray(reference[key], np.float64).reshape(-1, 4) - boxes).max(initial=0.0))
                for key in BOX_SOURCES if key in reference and np.size(reference[key]) == boxes.size}
        best = min(gaps, key=gaps.get, default=None)
        sources.append(best if best is not None and gaps[best] <= SOURCE_ATOL else None)
    feed.sources = sources


def judged_on(feed: CropFeed, image_feed: np.ndarray, reference: dict[str, np.ndarray],
              candidate: dict[str, np.ndarray], atol: float, score_threshold: float) -> dict[str, np.ndarray]:
    """The reference outputs to hold ``candidate`` to: the second stage run on the candidate's own boxes.

    Per-proposal outputs after the crop are put back into the reference's proposal order
    (the order :func:`od_export.verify.compare.compare_outputs` puts the candidate's in).
    The mask head's boxes are the candidate's detection boxes, each given to the
    reference detection it matches (unmatched ones keep their own box).
    """
    if not feed.sources:
        find_sources(feed, image_feed, reference)
    given, reference = reference, _with_own_proposals(feed, image_feed, reference, candidate)
    boxes: dict[int, np.ndarray] = {}
    for index, source in enumerate(feed.sources):
        wanted = np.asarray(candidate.get(source, ())) if source else None
        if source == "proposal_boxes_normalized" and wanted.shape == np.shape(reference[source]):
            boxes[index] = wanted
    if not boxes:
        return given
    judged = feed.outputs(image_feed, boxes)
    mask_crops = [i for i, source in enumerate(feed.sources) if source == "detection_boxes"]
    if mask_crops and np.shape(candidate.get("detection_boxes")) == np.shape(judged["detection_boxes"]):
        matched = _matched_boxes(judged, candidate, atol, score_threshold)
        judged = feed.outputs(image_feed, {**boxes, **{i: matched for i in mask_crops}})
    rows = proposals.proposal_order(reference, candidate, atol)
    result = dict(judged)
    for key in proposals.PROPOSAL_KEYS:
        if key in judged and key not in FIRST_STAGE_KEYS:
            result[key] = _to_reference_order(np.asarray(judged[key]), rows)
    if rows is not None and "detection_anchor_indices" in judged:
        result["detection_anchor_indices"] = _indices_to_reference_order(judged["detection_anchor_indices"], rows)
    for key in FIRST_STAGE_KEYS:
        result.pop(key, None)
        if key in given:
            result[key] = given[key]
    return result


def _indices_to_reference_order(indices: np.ndarray, rows: list[np.ndarray]) -> np.ndarray:
    """Proposal indices into the candidate's order, as indices into the reference's."""
    mapped = np.array(indices, copy=True)
    for item, order in enumerate(rows):
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        index = np.asarray(indices[item]).astype(np.int64)
        valid = (index >= 0) & (index < len(order))
        mapped[item][valid] = inverse[index[valid]]
    return mapped


def _with_own_proposals(feed: CropFeed, image_feed: np.ndarray, reference: dict[str, np.ndarray],
                        candidate: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A Faster R-CNN export has no proposal output; its first crop's boxes are its proposals.

    Where the candidate has proposals and the reference does not, the SavedModel's own are
    read at its first crop (the second stage's; Mask R-CNN's mask crop comes after it) and
    that crop is fed from the candidate's.  Returned for pairing only: the caller compares
    the outputs the reference has.
    """
    key = "proposal_boxes_normalized"
    if key in reference or key not in candidate or not feed.crop_boxes:
        return reference
    own = feed.own_boxes(image_feed)[0]
    shape = np.shape(candidate[key])
    if own.size != int(np.prod(shape)):
        return reference
    feed.sources = [key, *feed.sources[1:]]
    return {**reference, key: own.reshape(shape)}


def _matched_boxes(judged: dict[str, np.ndarray], candidate: dict[str, np.ndarray], atol: float,
                   score_threshold: float) -> np.ndarray:
    """``judged``'s detection boxes, each matched one replaced by its candidate partner's."""
    boxes = np.array(judged["detection_boxes"], np.float32)
    for item in range(boxes.shape[0]):
        for ref_row, cand_row in compare.match_detections(judged, candidate, item, score_threshold, atol).pairs:
            boxes[item, ref_row] = candidate["detection_boxes"][item][cand_row]
    return boxes


def _to_reference_order(value: np.ndarray, rows: list[np.ndarray] | None) -> np.ndarray:
    """A per-proposal output computed in the candidate's proposal order, put into the reference's.

    ``rows[item][r]`` is the candidate row paired with reference row ``r``; the value
    computed for that candidate row belongs to reference row ``r``.
    """
    return proposals.in_reference_order("raw_detection_boxes", value, rows)
