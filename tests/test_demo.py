"""`od-export demo-checkpoint` gives finite, varied detections at the samples' model-zoo sizes too.

The samples are shrunk so that the suite is quick; people trying the tool point it at
full-size zoo configs.  EfficientDet-D0 at 512² (whose untreated random heads gave
raw boxes of ±inf and one detection at score 1.0) runs in every suite; the other four
run with ``--exhaustive``.  CenterNet keeps its sample depth multiplier (0.35): at 1.0
its MobileNetV2 backbone downloads ImageNet weights, and this machine is offline.
"""
from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from od_export import compat
from od_export.verify import samples
from od_export import DemoCheckpointOptions, create_demo_checkpoint
from od_export.source.model import build_model, create_variables
from od_export.source.pipeline_config import load_pipeline_config
from tests.conftest import ARCHITECTURES, sample_config

pytestmark = pytest.mark.integration
NMS_100 = "post_processing { batch_non_max_suppression { max_detections_per_class: 100 max_total_detections: 100 } }"
#: Overrides that turn each shrunk sample back into its model-zoo configuration's size.
ZOO_SIZE = {
    "ssd_mobilenet_v2": "model { ssd { num_classes: 90 image_resizer { fixed_shape_resizer { height: 300 width: 300 } } "
                        f"feature_extractor {{ depth_multiplier: 1.0 }} {NMS_100} }} }}",
    "ssd_mobilenet_v2_fpnlite": "model { ssd { num_classes: 90 image_resizer { fixed_shape_resizer { height: 320 width: 320 } } "
                                "feature_extractor { depth_multiplier: 1.0 fpn { additional_layer_depth: 128 } } "
                                "box_predictor { weight_shared_convolutional_box_predictor { depth: 128 num_layers_before_predictor: 4 } } "
                                f"{NMS_100} }} }}",
    "efficientdet_d0": "model { ssd { num_classes: 90 "
                       "box_coder { faster_rcnn_box_coder { y_scale: 1.0 x_scale: 1.0 height_scale: 1.0 width_scale: 1.0 } } "
                       "image_resizer { keep_aspect_ratio_resizer { min_dimension: 512 max_dimension: 512 pad_to_max_dimension: true } } "
                       "feature_extractor { bifpn { num_iterations: 3 num_filters: 64 } } "
                       f"box_predictor {{ weight_shared_convolutional_box_predictor {{ depth: 64 }} }} {NMS_100} }} }}",
    "centernet_mobilenet_v2_fpn": "model { center_net { num_classes: 90 image_resizer { keep_aspect_ratio_resizer { "
                                  "min_dimension: 512 max_dimension: 512 pad_to_max_dimension: true } } "
                                  "object_center_params { max_box_predictions: 100 } } }",
    "faster_rcnn_resnet50": "model { faster_rcnn { num_classes: 90 image_resizer { fixed_shape_resizer { height: 640 width: 640 } } "
                            "first_stage_max_proposals: 300 second_stage_post_processing { batch_non_max_suppression { "
                            "max_detections_per_class: 100 max_total_detections: 100 } } } }",
}


def detections(run, config) -> list[dict[str, np.ndarray]]:
    """Postprocessed outputs of the inference model on two differently sized images."""
    tf = compat.import_tensorflow()
    model = build_model(config)
    create_variables(model, config)
    tf.train.Checkpoint(model=model).restore(str(run.checkpoint_prefix)).expect_partial()
    results = []
    for image in (samples.sample_image(), samples.sample_image(480, 640, seed=7)):
        images, shapes = model.preprocess(tf.constant(image[np.newaxis].astype(np.float32)))
        outputs = model.postprocess(model.predict(images, shapes), shapes)
        results.append({key: np.asarray(value) for key, value in outputs.items()})
    return results


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_demo_checkpoint_at_model_zoo_size_gives_finite_varied_detections(name, tmp_path, request):
    if name != "efficientdet_d0" and not request.config.getoption("--exhaustive"):
        pytest.skip("full-size models take 15-25 s each; run with --exhaustive")
    config = load_pipeline_config(sample_config(name), (ZOO_SIZE[name],))
    (tmp_path / "zoo.config").write_text(text_format.MessageToString(config))
    run = create_demo_checkpoint(DemoCheckpointOptions(tmp_path / "zoo.config", tmp_path / "run"))
    for outputs in detections(run, config):
        for key, value in outputs.items():
            assert np.all(np.isfinite(value)), key
        if "raw_detection_boxes" in outputs:  # a box is at most a couple of image sizes away
            assert -3 < outputs["raw_detection_boxes"].min() and outputs["raw_detection_boxes"].max() < 4
        scores = outputs["detection_scores"][0]
        assert scores.std() > 0.02 and np.unique(np.round(scores, 3)).size >= 10, scores[:10]
        assert (scores > 0.3).sum() >= 1 and (scores > 0.999).sum() < 10, scores[:10]
