from pathlib import Path

import pytest

from od_export.errors import InputError
from od_export.options import ExportOptions, parse_side_inputs
from od_export.targets import check_export_options


def options(**changes) -> ExportOptions:
    base = dict(pipeline_config=Path("p.config"), checkpoint_dir=Path("ck"), output_dir=Path("out"))
    base.update(changes)
    return ExportOptions(**base)


def test_defaults_are_exporter_main_v2s():
    opts = options()
    assert opts.input_types == ("image_tensor",)
    assert opts.signature_key == "serving_default"
    assert opts.freeze and opts.frozen_format == "pb" and opts.checkpoint == "latest"
    opts.check()


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"input_types": ("jpeg",)}, "unknown input type 'jpeg'; choose from: image_tensor"),
        ({"input_types": ()}, "no input type"),
        ({"input_types": ("image_tensor", "image_tensor")}, "given twice"),
        ({"signature_key": "detect"}, "unknown signature key 'detect'; this export has: serving_default \\(one SavedModel"),
        ({"signature_key": "tf_example", "single_saved_model": True, "input_types": ("image_tensor", "encoded_image_string_tensor")},
         "unknown signature key 'tf_example'; this export has: serving_default, image_tensor, encoded_image_string_tensor$"),
        ({"frozen_format": "onnx"}, "unknown frozen format"),
    ],
)
def test_bad_values_name_the_choices(changes, fragment):
    with pytest.raises(InputError, match=fragment) as info:
        options(**changes).check()
    assert info.value.exit_code == 2
    assert "\n" not in info.value.message


def test_single_saved_model_signature_keys_select_an_input_type():
    single = options(input_types=("image_tensor", "tf_example"), single_saved_model=True, signature_key="tf_example")
    single.check()
    assert single.signature_keys == ("serving_default", "image_tensor", "tf_example")
    assert single.selected_input_type == "tf_example"
    assert options(input_types=("tf_example", "image_tensor"), single_saved_model=True).selected_input_type == "tf_example"
    with pytest.raises(InputError, match="OpenVINO converts the SavedModel's serving_default, which is tf_example"):
        check_export_options(options(input_types=("tf_example", "image_tensor"), single_saved_model=True,
                                     signature_key="image_tensor", targets=("openvino",)))


def test_side_inputs_only_with_image_tensor():
    side = parse_side_inputs("1,-1,4", "tf.float32", "boxes")
    with pytest.raises(InputError, match="image_tensor only"):
        options(input_types=("float_image_tensor",), side_inputs=side).check()


def test_parse_side_inputs_like_exporter_main_v2():
    side = parse_side_inputs("1,-1,4/1,None", "tf.float32,int32", "boxes,classes")
    assert [(s.name, s.dtype, s.shape) for s in side] == [
        ("boxes", "float32", (1, None, 4)),
        ("classes", "int32", (1, None)),
    ]


@pytest.mark.parametrize(
    "shapes, types, names, fragment",
    [
        ("1,2", "float32,int32", "a", "as many shapes"),
        ("1,x", "float32", "a", "malformed shape"),
        ("1,2", "tf.complex", "a", "unknown type"),
        ("__import__('os')", "float32", "a", "malformed shape"),
    ],
)
def test_parse_side_inputs_rejects_bad_values(shapes, types, names, fragment):
    with pytest.raises(InputError, match=fragment):
        parse_side_inputs(shapes, types, names)
