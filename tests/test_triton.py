"""--target triton: a model repository entry whose config.pbtxt Triton's own schema reads and whose I/O is the model's."""
from __future__ import annotations

import json
import shutil

import pytest

from od_export.cli import main
from od_export.targets.triton import config_mismatch, model_config

IO = {"inputs": {"input_tensor": {"dtype": "uint8", "shape": [None, None, None, 3]}},
      "outputs": {"detection_boxes": {"dtype": "float32", "shape": [None, 20, 4]},
                  "detection_classes": {"dtype": "float32", "shape": [None, 20]},
                  "num_detections": {"dtype": "float32", "shape": [None]}}}


def parsed(text: str):
    from google.protobuf import text_format

    from od_export import compat_extras

    return text_format.Parse(text, compat_extras.import_triton_model_config().ModelConfig())


def test_an_open_batch_is_batched_dynamically_and_a_batch_of_one_is_not():
    config = parsed(model_config("detector", "onnx", IO, 8, labels=True))
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 8 and config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [-1, -1, 3] and config.input[0].data_type == 2  # TYPE_UINT8
    assert [o.label_filename for o in config.output] == ["", "labels.txt", ""]
    assert list(config.output[2].dims) == [1] and list(config.output[2].reshape.shape) == []  # Triton wants a dim
    assert config.instance_group[0].kind == 2 and config_mismatch(config, IO) == ""  # KIND_CPU
    single = {part: {k: {**v, "shape": [1, *v["shape"][1:]]} for k, v in IO[part].items()} for part in IO}
    config = parsed(model_config("detector", "savedmodel", single, 8, labels=False))
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [1, -1, -1, 3] and config.platform == "tensorflow_savedmodel"
    assert config_mismatch(config, IO) == "input_tensor is TYPE_UINT8 [1, -1, -1, 3], the model's TYPE_UINT8 [-1, -1, -1, 3]"


@pytest.fixture(scope="module")
def triton_exports(exported, tmp_path_factory):
    """The shared default export, copied twice and converted: Triton's ONNX backend, then its TensorFlow one."""
    source = exported("ssd_mobilenet_v2", ("image_tensor",)).output_dir
    made = {}
    for backend in ("onnx", "savedmodel"):
        copy = tmp_path_factory.mktemp(f"triton_{backend}") / "export"
        shutil.copytree(source, copy, symlinks=True)
        assert main(["convert", str(copy), "--target", "triton", "--triton-backend", backend, "-q"]) == 0
        made[backend] = copy
    return made


@pytest.mark.integration
def test_the_repository_is_what_triton_reads_and_verified(triton_exports):
    onnx_entry = triton_exports["onnx"] / "triton" / "detector"
    config = parsed((onnx_entry / "config.pbtxt").read_text())
    assert (onnx_entry / "1" / "model.onnx").is_file() and config.max_batch_size == 0  # image_tensor's batch of 1
    assert list(config.input[0].dims) == [1, -1, -1, 3]
    assert (onnx_entry / "labels.txt").read_text().splitlines() == ["circle", "square", "triangle"]
    assert {o.name: o.label_filename for o in config.output}["detection_classes"] == "labels.txt"
    saved = triton_exports["savedmodel"] / "triton" / "detector"
    assert parsed((saved / "config.pbtxt").read_text()).platform == "tensorflow_savedmodel"
    assert (saved / "1" / "model.savedmodel" / "saved_model.pb").is_file()
    for export in triton_exports.values():
        manifest = json.loads((export / "manifest.json").read_text())
        [check] = [c for c in manifest["validation"]["checks"] if c["artifact"] == "triton"]
        assert check["ok"] and check["outputs"]["detection_boxes"]["ok"]


@pytest.mark.integration
def test_a_config_that_does_not_describe_its_model_fails_validation(triton_exports, tmp_path, capsys):
    copy = tmp_path / "tampered"
    shutil.copytree(triton_exports["onnx"], copy, symlinks=True)
    config = copy / "triton" / "detector" / "config.pbtxt"
    config.write_text(config.read_text().replace("TYPE_UINT8", "TYPE_FP32", 1))
    assert main(["validate", str(copy), "--json"]) == 1
    [check] = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["artifact"] == "triton"]
    assert check["ok"] is False and "input_tensor is TYPE_FP32 [1, -1, -1, 3], the model's TYPE_UINT8" in check["error"]
