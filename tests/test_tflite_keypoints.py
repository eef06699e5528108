"""A TFLite file carries one keypoint task: more is one line before any work."""
from __future__ import annotations

import pytest

from od_export.errors import InputError
from od_export.source.pipeline_config import parse_pipeline_config
from od_export.targets.tflite_keypoints import check_keypoint_tasks


def test_two_keypoint_tasks_are_refused_and_one_is_taken():
    one = 'model { center_net { keypoint_estimation_task { task_name: "pose" keypoint_class_name: "person" } } }'
    check_keypoint_tasks(parse_pipeline_config(one, "one.config"))
    two = one.replace("} } }", '} keypoint_estimation_task { task_name: "paws" keypoint_class_name: "dog" } } }')
    with pytest.raises(InputError, match="has 2 keypoint tasks; its TFLite file can carry one"):
        check_keypoint_tasks(parse_pipeline_config(two, "two.config"))
