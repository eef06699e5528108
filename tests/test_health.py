"""Pure checks that stop a doomed export early: protobuf's 2 GiB limit, non-finite values, config ranges."""
from __future__ import annotations

import numpy as np
import pytest

from od_export.errors import ConfigError, InputError, NonFiniteOutputs
from od_export.health import (
    GRAPH_OVERHEAD_BYTES,
    PROTOBUF_LIMIT_BYTES,
    check_finite_outputs,
    check_frozen_graph_fits,
    non_finite_names,
    variable_bytes,
)
from od_export.source.pipeline_config import load_pipeline_config
from tests.conftest import sample_config


def test_frozen_graph_limit_is_checked_from_variable_sizes():
    # Faster R-CNN ResNet-101-sized weights fit; 600M float32 parameters (2.2 GiB) do not.
    check_frozen_graph_fits(variable_bytes([((3, 3, 1024, 1024), 4)] * 50))
    too_big = variable_bytes([((600_000_000,), 4)])
    with pytest.raises(InputError, match=r"about 2\.3 GiB, over protobuf's 2 GiB limit.*deploy the SavedModel"):
        check_frozen_graph_fits(too_big)
    check_frozen_graph_fits(PROTOBUF_LIMIT_BYTES - GRAPH_OVERHEAD_BYTES)
    with pytest.raises(InputError):
        check_frozen_graph_fits(PROTOBUF_LIMIT_BYTES - GRAPH_OVERHEAD_BYTES + 1)


def test_non_finite_values_are_named():
    named = [("a", np.ones(3)), ("b", np.array([1.0, np.nan])), ("c", np.array([np.inf])), ("d", np.arange(3))]
    assert non_finite_names(named) == ["b", "c"]
    with pytest.raises(NonFiniteOutputs, match="NaN or infinite values on a sample image in raw_detection_boxes"):
        check_finite_outputs({"raw_detection_boxes": np.array([-np.inf]), "num_detections": np.array([3.0])}, "model")


@pytest.mark.parametrize("override, field", [
    ("model { ssd { num_classes: 0 } }", "num_classes is 0"),
    ("model { ssd { num_classes: 5000000 } }", "num_classes is 5000000"),
    ("model { ssd { image_resizer { fixed_shape_resizer { height: 100000 } } } }", "height is 100000"),
    ("model { ssd { feature_extractor { depth_multiplier: nan } } }", "depth_multiplier is nan"),
    ("model { ssd { anchor_generator { ssd_anchor_generator { num_layers: 1000000 } } } }", "num_layers is 1000000"),
    # found by the fuzzer: a negative aspect ratio gives NaN anchors, hence NaN boxes
    ("model { ssd { anchor_generator { ssd_anchor_generator { aspect_ratios: -1 } } } }", "aspect_ratios is -1.0"),
    ("model { ssd { box_coder { faster_rcnn_box_coder { y_scale: 0 } } } }", "y_scale is 0.0"),
])
def test_numbers_no_model_uses_are_refused_before_building(override, field):
    with pytest.raises(ConfigError, match=f"model.ssd.*{field}, outside the range"):
        load_pipeline_config(sample_config("ssd_mobilenet_v2"), (override,))
