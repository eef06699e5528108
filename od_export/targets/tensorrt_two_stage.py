"""The TensorRT file of a two-stage model (Faster R-CNN), in the form NVIDIA's ``create_onnx.py`` gives it.

The graph is the model cut at its two non-maximum suppressions and its crop, each
replaced by the TensorRT plugin NVIDIA's OD API sample uses:

1. **first stage** (traced from the model): preprocessing, the backbone, the RPN, its
   box decoding and objectness softmax: every anchor's proposal box (normalised) and
   foreground score, and the features the second stage crops (NCHW);
2. ``EfficientNMS_TRT`` keeps ``first_stage_max_proposals`` proposals (the config's
   first-stage thresholds); they are clipped to the image window, as TensorFlow's NMS
   clips them;
3. ``CropAndResize`` (TensorRT's plugin, TensorFlow's ``crop_and_resize`` semantics)
   crops ``initial_crop_size`` squares from the features;
4. **second stage** (traced): max-pool, box classifier, box predictor, per-class box
   decoding against the proposals, score conversion;
5. ``EfficientNMS_TRT`` with the config's second-stage post-processing, then the clip
   to the image window and the change to its frame, as for single-stage models.

Where the config crops with ``use_matmul_crop_and_resize``, the model's crop samples a
box that ends at the image edge at the last feature row and column, while
TensorFlow's (and the plugin's) float32 rounding puts that sample just outside, where
it reads 0.  The crop's box ends are therefore kept 2^-20 inside the image (a shift of
under 1e-5 feature cells), so the plugin samples what the model samples.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from od_export.errors import InputError
from od_export.targets.base import ExportContext
from od_export.targets.tensorrt_graph import finish_detections, nms_node

CROP_OP = "CropAndResize"
#: The largest normalised box end the crop is given (see the module docstring).
CROP_EDGE = np.float32(1 - 2 ** -20)
FIRST_OUTPUTS = ("proposal_candidates", "objectness", "features_to_crop")
SECOND_OUTPUTS = ("second_stage_boxes", "second_stage_scores")


def check_two_stage(config: Any) -> None:
    """What the two-stage file cannot take, as one line before any work."""
    faster_rcnn = config.model.faster_rcnn
    if "fpn" in faster_rcnn.feature_extractor.type:
        raise InputError(f"the tensorrt target crops one feature map with TensorRT's CropAndResize plugin, as NVIDIA's "
                         f"sample does; {faster_rcnn.feature_extractor.type} crops several FPN levels (a multi-level "
                         "crop), so it is not written; this model's targets are saved_model, frozen_graph, onnx and "
                         "openvino")
    if faster_rcnn.number_of_stages == 3 or _predicts_masks(faster_rcnn):
        raise InputError("the tensorrt target writes Faster R-CNN's two stages; Mask R-CNN's mask head is not written "
                         "yet; this model's targets are saved_model, frozen_graph, onnx and openvino")


def _predicts_masks(faster_rcnn: Any) -> bool:
    predictor = faster_rcnn.second_stage_box_predictor
    return predictor.WhichOneof("box_predictor_oneof") == "mask_rcnn_box_predictor" and \
        predictor.mask_rcnn_box_predictor.predict_instance_masks


def stage_functions(model: Any, config: Any, batch: int, height: int, width: int, layout: str) -> tuple[Any, Any]:
    """The first and second stage as concrete functions at static shapes."""
    from od_export import compat
    from object_detection.core import box_predictor

    tf = compat.import_tensorflow()
    faster_rcnn = config.model.faster_rcnn
    proposals, crop = int(faster_rcnn.first_stage_max_proposals), int(faster_rcnn.initial_crop_size)
    scale = tf.constant([height, width, height, width], tf.float32)

    def first(input_tensor: Any) -> dict[str, Any]:
        images = tf.transpose(input_tensor, [0, 2, 3, 1]) if layout == "NCHW" else input_tensor
        preprocessed, _ = model.preprocess(images)
        predicted = model._predict_first_stage(preprocessed)
        anchors = tf.tile(predicted["anchors"][None], [batch, 1, 1])
        boxes = model._batch_decode_boxes(predicted["rpn_box_encodings"][:, :, None], anchors)[:, :, 0]
        objectness = tf.nn.softmax(predicted["rpn_objectness_predictions_with_background"])[:, :, 1:2]
        features = predicted["rpn_features_to_crop"]
        features = features[0] if isinstance(features, (list, tuple)) else features
        return dict(zip(FIRST_OUTPUTS, (boxes / scale, objectness, tf.transpose(features, [0, 3, 1, 2]))))

    def second(crops: Any, proposal_boxes: Any) -> dict[str, Any]:
        regions = tf.reshape(tf.transpose(crops, [0, 1, 3, 4, 2]), [batch * proposals, crop, crop, crops.shape[2]])
        features = model._extract_box_classifier_features(model._maxpool_layer(regions))
        predicted = model._mask_rcnn_box_predictor([features], prediction_stage=2)
        encodings = tf.squeeze(predicted[box_predictor.BOX_ENCODINGS], 1)
        logits = tf.squeeze(predicted[box_predictor.CLASS_PREDICTIONS_WITH_BACKGROUND], 1)
        encodings = tf.reshape(encodings, [batch, proposals, encodings.shape[1], 4])
        boxes = model._batch_decode_boxes(encodings, proposal_boxes * scale) / scale[None, None]
        scores = model._second_stage_score_conversion_fn(tf.reshape(logits, [batch, proposals, -1]))[:, :, 1:]
        return dict(zip(SECOND_OUTPUTS, (boxes, scores)))

    shape = [batch] + ([3, height, width] if layout == "NCHW" else [height, width, 3])
    first_fn = tf.function(first, input_signature=[tf.TensorSpec(shape, tf.float32, name="input_tensor")],
                           autograph=False).get_concrete_function()
    depth = int(first_fn.structured_outputs["features_to_crop"].shape[1])
    second_fn = tf.function(second, input_signature=[
        tf.TensorSpec([batch, proposals, depth, crop, crop], tf.float32, name="crops"),
        tf.TensorSpec([batch, proposals, 4], tf.float32, name="proposal_boxes")], autograph=False).get_concrete_function()
    return first_fn, second_fn


def two_stage_graph(context: ExportContext, first: Any, second: Any, window: np.ndarray) -> Any:
    """The two converted stages joined by the plugins (see the module docstring)."""
    import onnx_graphsurgeon as gs

    config = context.config.model.faster_rcnn
    graph, later = gs.import_onnx(first), gs.import_onnx(second)
    tensors = graph.tensors()
    boxes, scores, features = (tensors[name] for name in FIRST_OUTPUTS)
    batch, proposals = boxes.shape[0], int(config.first_stage_max_proposals)
    first_nms = nms_node(graph, "first_stage_", boxes, scores, proposals, config.first_stage_nms_score_threshold,
                         config.first_stage_nms_iou_threshold, background_class=-1)
    kept = _clip(graph, "proposals", first_nms[1], window, (batch, proposals, 4))
    rois = kept
    if config.use_matmul_crop_and_resize:
        rois = gs.Variable("crop_boxes", np.float32, (batch, proposals, 4))
        graph.layer(op="Min", inputs=[kept, gs.Constant("crop_edge", np.full(4, CROP_EDGE, np.float32))], outputs=[rois])
    rois4 = gs.Variable("crop_boxes_4d", np.float32, (batch, proposals, 4, 1))
    graph.layer(op="Unsqueeze", inputs=[rois, gs.Constant("crop_axes", np.array([3], np.int64))], outputs=[rois4])
    crop = int(config.initial_crop_size)
    crops = gs.Variable("crops", np.float32, (batch, proposals, features.shape[1], crop, crop))
    graph.layer(op=CROP_OP, name="crop_and_resize", inputs=[features, rois4], outputs=[crops],
                attrs={"crop_width": crop, "crop_height": crop})
    _attach(graph, later, {"crops": crops, "proposal_boxes": kept})
    later_tensors = graph.tensors()
    boxes2, scores2 = (later_tensors[f"second_stage/{name}"] for name in SECOND_OUTPUTS)
    settings = config.second_stage_post_processing.batch_non_max_suppression
    # Faster R-CNN's second-stage NMS always gives boxes in the window's frame (change_coordinate_frame=True)
    return finish_detections(graph, boxes2, scores2, settings, window, first.producer_name, first.producer_version,
                             change_frame=True)


def _clip(graph: Any, name: str, boxes: Any, window: np.ndarray, shape: tuple) -> Any:
    import onnx_graphsurgeon as gs

    low, high = np.tile(window[:2], 2).astype(np.float32), np.tile(window[2:], 2).astype(np.float32)
    lifted = gs.Variable(f"{name}_above_window_start", np.float32, shape)
    graph.layer(op="Max", inputs=[boxes, gs.Constant(f"{name}_window_start", low)], outputs=[lifted])
    clipped = gs.Variable(name, np.float32, shape)
    graph.layer(op="Min", inputs=[lifted, gs.Constant(f"{name}_window_end", high)], outputs=[clipped])
    return clipped


def _attach(graph: Any, later: Any, feeds: dict[str, Any]) -> None:
    """``later``'s nodes into ``graph`` under ``second_stage/``, its inputs replaced by ``feeds``' tensors."""
    inputs = {tensor.name: feeds[tensor.name] for tensor in later.inputs}
    for tensor in later.tensors().values():
        if tensor.name not in inputs:
            tensor.name = f"second_stage/{tensor.name}"
    for node in later.nodes:
        node.name = f"second_stage/{node.name}"
        node.inputs = [inputs.get(t.name, t) for t in node.inputs]
        graph.nodes.append(node)
