"""The TensorRT file of a two-stage model (Faster R-CNN, Mask R-CNN) in the form NVIDIA's ``create_onnx.py`` gives.

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
6. Mask R-CNN only: ``CropAndResize`` again on the final boxes, then the **mask stage**
   (traced: the box classifier, the mask head, each detection's class mask, sigmoid),
   the ``detection_masks`` output.

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


def predicts_masks(faster_rcnn: Any) -> bool:
    """True for a Mask R-CNN: its box predictor predicts instance masks (the third stage)."""
    predictor = faster_rcnn.second_stage_box_predictor
    return predictor.WhichOneof("box_predictor_oneof") == "mask_rcnn_box_predictor" and \
        predictor.mask_rcnn_box_predictor.predict_instance_masks


def stage_functions(model: Any, config: Any, batch: int, height: int, width: int,
                    layout: str) -> tuple[Any, Any, Any]:
    """The first, second and (for Mask R-CNN, else None) mask stage as concrete functions at static shapes."""
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

    def classifier_features(crops: Any) -> Any:
        count = crops.shape[0] * crops.shape[1]
        regions = tf.reshape(tf.transpose(crops, [0, 1, 3, 4, 2]), [count, crop, crop, crops.shape[2]])
        return model._extract_box_classifier_features(model._maxpool_layer(regions))

    def second(crops: Any, proposal_boxes: Any) -> dict[str, Any]:
        features = classifier_features(crops)
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
    if not predicts_masks(faster_rcnn):
        return first_fn, second_fn, None
    return first_fn, second_fn, _mask_function(model, faster_rcnn, classifier_features, batch, depth, crop)


def _mask_function(model: Any, faster_rcnn: Any, classifier_features: Any, batch: int, depth: int, crop: int) -> Any:
    """Mask R-CNN's third stage as a concrete function: crops [batch, detections, depth, crop, crop] and the
    plugin's classes (counting from 1) → ``detection_masks``."""
    from od_export import compat
    from object_detection.core import box_predictor

    tf = compat.import_tensorflow()
    detections = int(faster_rcnn.second_stage_post_processing.batch_non_max_suppression.max_total_detections)

    def third(crops: Any, classes: Any) -> dict[str, Any]:
        """As ``_predict_third_stage``: the box classifier on the detections' crops, the mask head, the mask of
        each detection's class, as probabilities."""
        predicted = model._mask_rcnn_box_predictor([classifier_features(crops)], prediction_stage=3)
        masks = tf.squeeze(predicted[box_predictor.MASK_PREDICTIONS], 1)  # [batch * detections, classes, h, w]
        index = tf.reshape(tf.maximum(classes - 1, 0), [-1])
        picked = tf.gather(masks, index, axis=1, batch_dims=1) if masks.shape[1] > 1 else masks[:, 0]
        return {"detection_masks": tf.reshape(tf.sigmoid(picked), [batch, detections, *masks.shape[2:]])}

    return tf.function(third, input_signature=[
        tf.TensorSpec([batch, detections, depth, crop, crop], tf.float32, name="crops"),
        tf.TensorSpec([batch, detections], tf.int32, name="classes")], autograph=False).get_concrete_function()


def two_stage_graph(context: ExportContext, first: Any, second: Any, window: np.ndarray, third: Any = None) -> Any:
    """The converted stages joined by the plugins (see the module docstring)."""
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
    crops = _crop(graph, "", features, rois, int(config.initial_crop_size))
    _attach(graph, later, {"crops": crops, "proposal_boxes": kept}, "second_stage/")
    later_tensors = graph.tensors()
    boxes2, scores2 = (later_tensors[f"second_stage/{name}"] for name in SECOND_OUTPUTS)
    settings = config.second_stage_post_processing.batch_non_max_suppression

    def mask_stage(graph: Any, outputs: list[Any]) -> list[Any]:
        """Mask R-CNN's third stage: the final boxes cropped by the plugin again, then the mask head."""
        boxes = outputs[1]
        if config.use_matmul_crop_and_resize:
            edge = gs.Variable("mask_crop_boxes", np.float32, boxes.shape)
            graph.layer(op="Min", inputs=[boxes, gs.Constant("mask_crop_edge", np.full(4, CROP_EDGE, np.float32))],
                        outputs=[edge])
            boxes = edge
        mask_crops = _crop(graph, "mask_", features, boxes, int(config.initial_crop_size))
        _attach(graph, gs.import_onnx(third), {"crops": mask_crops, "classes": outputs[3]}, "mask_stage/")
        masks = graph.tensors()["mask_stage/detection_masks"]
        masks.name = "detection_masks"
        return [masks]

    # Faster R-CNN's second-stage NMS always gives boxes in the window's frame (change_coordinate_frame=True)
    return finish_detections(graph, boxes2, scores2, settings, window, first.producer_name, first.producer_version,
                             change_frame=True, extend=mask_stage if third is not None else None)


def _crop(graph: Any, prefix: str, features: Any, boxes: Any, size: int) -> Any:
    """TensorRT's ``CropAndResize`` plugin: ``size``² crops [batch, boxes, channels, size, size] of the features."""
    import onnx_graphsurgeon as gs

    batch, count = boxes.shape[:2]
    boxes4 = gs.Variable(f"{prefix}crop_boxes_4d", np.float32, (batch, count, 4, 1))
    graph.layer(op="Unsqueeze", inputs=[boxes, gs.Constant(f"{prefix}crop_axes", np.array([3], np.int64))],
                outputs=[boxes4])
    crops = gs.Variable(f"{prefix}crops", np.float32, (batch, count, features.shape[1], size, size))
    graph.layer(op=CROP_OP, name=f"{prefix}crop_and_resize", inputs=[features, boxes4], outputs=[crops],
                attrs={"crop_width": size, "crop_height": size})
    return crops


def _clip(graph: Any, name: str, boxes: Any, window: np.ndarray, shape: tuple) -> Any:
    import onnx_graphsurgeon as gs

    low, high = np.tile(window[:2], 2).astype(np.float32), np.tile(window[2:], 2).astype(np.float32)
    lifted = gs.Variable(f"{name}_above_window_start", np.float32, shape)
    graph.layer(op="Max", inputs=[boxes, gs.Constant(f"{name}_window_start", low)], outputs=[lifted])
    clipped = gs.Variable(name, np.float32, shape)
    graph.layer(op="Min", inputs=[lifted, gs.Constant(f"{name}_window_end", high)], outputs=[clipped])
    return clipped


def _attach(graph: Any, later: Any, feeds: dict[str, Any], prefix: str) -> None:
    """``later``'s nodes into ``graph`` under ``prefix``, its inputs replaced by ``feeds``' tensors."""
    inputs = {tensor.name: feeds[tensor.name] for tensor in later.inputs}
    for tensor in later.tensors().values():
        if tensor.name not in inputs:
            tensor.name = f"{prefix}{tensor.name}"
    for node in later.nodes:
        node.name = f"{prefix}{node.name}"
        node.inputs = [inputs.get(t.name, t) for t in node.inputs]
        graph.nodes.append(node)
