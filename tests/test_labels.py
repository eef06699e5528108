"""The run's class names: found, checked against the config, and carried by every artifact."""
from __future__ import annotations

import json

import pytest

from od_export.errors import InputError
from od_export.source.labels import Labels, attach_labels, find_label_map, label_spec, parse_label_map, read_labels

LABEL_MAP = 'item { id: 1 name: "circle" }\nitem { id: 3 name: "tri" display_name: "Triangle" }\n'


def test_labels_txt_has_one_line_per_class_and_marks_gaps(tmp_path):
    (tmp_path / "label_map.pbtxt").write_text(LABEL_MAP)
    labels = read_labels(None, tmp_path / "label_map.pbtxt", 4)
    assert labels.as_dict() == {1: "circle", 3: "Triangle"}
    assert labels.lines(4) == ["circle", "???", "Triangle", "???"]
    (tmp_path / "tflite").mkdir()
    (tmp_path / "tflite" / "io_spec.json").write_text('{"format": "tflite"}')
    [written] = attach_labels(tmp_path / "tflite", labels, 4, 1)
    assert written.read_text() == "circle\n???\nTriangle\n???\n"
    spec = json.loads((tmp_path / "tflite" / "io_spec.json").read_text())
    assert spec["format"] == "tflite" and spec["labels"] == label_spec(labels, 1)
    assert spec["labels"]["class_offset"] == 1 and spec["labels"]["names"] == {"1": "circle", "3": "Triangle"}


def test_the_config_s_label_map_is_found_beside_it(tmp_path, caplog):
    config = tmp_path / "pipeline.config"
    config.write_text('train_input_reader { label_map_path: "/data/run7/label_map.pbtxt" }\n')
    assert find_label_map(config)[0] is None
    assert read_labels(config, None, 3) is None and "no label map found" in caplog.text  # a warning, not an error
    (tmp_path / "label_map.pbtxt").write_text(LABEL_MAP)
    assert read_labels(config, None, 3).source == str(tmp_path / "label_map.pbtxt")
    config.write_text('eval_input_reader { label_map_path: "data/label_map.pbtxt" }\n')  # relative to the run
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "label_map.pbtxt").write_text('item { id: 2 name: "square" }\n')
    assert read_labels(config, None, 3).as_dict() == {2: "square"}


@pytest.mark.parametrize("text, classes, fragment", [
    (LABEL_MAP, 2, "has id 3, but the model's classes are 1 to 2"),
    ('item { id: 0 name: "cat" }\n' + LABEL_MAP, 3, "keeps id 0 for the background"),
    ("item { }\n", 3, "keeps id 0 for the background"),  # no id is id 0, as the OD API reads it
    ('item { id: 1 }\n', 3, "has no item with an id and a name"),
    ('item { id: -1 name: "x" }\n', 3, "label map ids are 0 or more"),
    ('item { id: 1 nme: "x" }\n', 3, 'line 1 column 14: Message type .* has no field named "nme"'),
])
def test_a_label_map_that_does_not_fit_the_model_is_bad_input(tmp_path, text, classes, fragment):
    path = tmp_path / "label_map.pbtxt"
    path.write_text(text)
    with pytest.raises(InputError, match=fragment) as raised:
        read_labels(None, path, classes)
    assert raised.value.exit_code == 2


def test_parse_label_map_prefers_the_display_name():
    assert parse_label_map(LABEL_MAP) == {1: "circle", 3: "Triangle"}


def test_label_maps_are_read_as_the_od_api_reads_them():
    """Single quotes (as a public tutorial layout writes them), escapes, a background item at id 0,
    the binary form: everything the OD API's text-format parser accepts."""
    text = ("item { id: 0 name: 'background' }\nitem { id: 1 name: 'Buoi' }\n"
            'item { id: 2 name: "cir\\"cle" }\nitem { id: 3 name: "two\\nlines" }\nitem { id: 4 name: \'d\' }\n')
    names = {1: "Buoi", 2: 'cir"cle', 3: "two\nlines", 4: "d"}
    assert parse_label_map(text) == names
    from od_export import compat
    from google.protobuf import text_format

    proto = compat.import_od_proto("string_int_label_map_pb2").StringIntLabelMap()
    text_format.Merge(text, proto)
    assert parse_label_map(proto.SerializeToString()) == names
    # labels.txt has one line per class: a name with a line break must not shift the ones after it
    lines = Labels(tuple(names.items()), "x").lines(4)
    assert len(lines) == 4 and lines[3] == "d" and "\n" not in lines[2]


def test_a_missing_given_label_map_is_bad_input(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_labels(None, tmp_path / "nope.pbtxt", 3)


def test_export_refuses_a_label_map_that_does_not_fit_in_one_line_before_tensorflow(tmp_path):
    import subprocess
    import sys

    from tests.conftest import sample_config
    from tests.test_cli import FAST_FAILURE, QUIET_ENV, fake_run

    run = fake_run(tmp_path / "run")
    (tmp_path / "big.pbtxt").write_text('item { id: 9 name: "kangaroo" }\n')
    result = subprocess.run(
        [sys.executable, "-c", FAST_FAILURE, "export", "--pipeline-config", str(sample_config("ssd_mobilenet_v2")),
         "--checkpoint-dir", str(run), "--output-dir", str(tmp_path / "out"), "--label-map", str(tmp_path / "big.pbtxt")],
        capture_output=True, text=True, env=QUIET_ENV, timeout=60)
    code, _, imported_tf = result.stdout.split()
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert code == "2" and imported_tf == "False" and len(errors) == 1, result.stderr
    assert "has id 9, but the model's classes are 1 to 3" in errors[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.integration
def test_every_artifact_carries_the_run_s_class_names(target_export, deploy_export):
    """Demo runs keep the samples' label map beside their config, as a training run does."""
    import onnx

    from od_export import InspectOptions, inspect_path

    names = ["circle", "square", "triangle"]
    converted = target_export("ssd_mobilenet_v2").output_dir
    deployed = deploy_export("ssd_mobilenet_v2").output_dir
    assert (converted / "saved_model" / "assets" / "labels.txt").read_text().splitlines() == names
    for directory, offset in [(converted / "frozen_graph", 0), (converted / "onnx", 0), (converted / "tensorrt", 0),
                              (deployed / "tflite", 1), (deployed / "openvino", 0)]:
        assert (directory / "labels.txt").read_text().splitlines() == names, directory
        spec = json.loads((directory / "io_spec.json").read_text())["labels"]
        assert spec["class_offset"] == offset and list(spec["names"].values()) == names, directory
    for name in ("onnx", "tensorrt"):
        metadata = {p.key: p.value for p in onnx.load(str(converted / name / "model.onnx")).metadata_props}
        assert json.loads(metadata["labels"]) == {"1": "circle", "2": "square", "3": "triangle"}
    [unit] = inspect_path(InspectOptions(converted))["units"]
    assert unit["labels"] == names and json.loads(unit["onnx"]["metadata"]["labels"])["2"] == "square"
    [unit] = inspect_path(InspectOptions(deployed))["units"]
    assert unit["openvino"]["labels"]["3"] == "triangle" and unit["tflite"]["labels"]["class_offset"] == 1


def test_an_export_s_own_labels_txt_names_later_conversions(tmp_path, caplog):
    config = tmp_path / "pipeline.config"
    config.write_text('eval_input_reader { label_map_path: "/gone/label_map.pbtxt" }\n')
    written = tmp_path / "labels.txt"
    written.write_text("circle\n???\ntriangle\n")
    labels = read_labels(config, None, 3, exported=written)
    assert labels.as_dict() == {1: "circle", 3: "triangle"} and "no label map found" not in caplog.text
