"""A two-stage model that crops with CropAndResize: its later stages judged on the candidate's own boxes.

The model is a 128² Mask R-CNN ResNet50 without ``use_matmul_crop_and_resize`` (as the
zoo's Mask R-CNN and 800×1333 Faster R-CNN configs crop).  A candidate here is the
SavedModel's own graph run on proposals moved by ~1e-5 (as any converted backbone
moves them): held to the SavedModel's own run it differs by whole border rows, held to
the run on its own proposals it agrees; a second stage that crops other boxes than it
reports still fails.  The ONNX file of the same model verifies.  Each test here builds or
converts a two-stage model, so the module runs with --exhaustive; the bookkeeping (proposal
order, index mapping) has fast tests in ``tests/test_crop_feed_order.py``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from od_export.verify import compare, crop_feed, samples

pytestmark = [pytest.mark.integration, pytest.mark.exhaustive]
CONFIG = Path(__file__).parent / "fixtures" / "two_stage" / "mask_rcnn_native_crop.config"
LABELS = Path(__file__).resolve().parent.parent / "pipeline_samples" / "label_map.pbtxt"
SECOND_STAGE = ("box_classifier_features", "class_predictions_with_background", "refined_box_encodings")


def _run(workspace: Path) -> Path:
    from od_export import DemoCheckpointOptions, create_demo_checkpoint

    source = workspace / "mask_rcnn_native_crop" / "config"
    source.mkdir(parents=True, exist_ok=True)
    shutil.copy(CONFIG, source / "pipeline.config")
    shutil.copy(LABELS, source / "label_map.pbtxt")
    return create_demo_checkpoint(DemoCheckpointOptions(source / "pipeline.config",
                                                        workspace / "mask_rcnn_native_crop" / "run")).output_dir


@pytest.fixture(scope="module")
def mask_rcnn_run(workspace):
    from tests.conftest import built_once

    return built_once(workspace, "mask_rcnn_native_crop/run", lambda: _run(workspace))


@pytest.fixture(scope="module")
def reference(workspace, mask_rcnn_run):
    from od_export import ExportOptions, export
    from od_export.layout import Unit
    from od_export.verify.reference import run_reference
    from tests.conftest import built_once

    out = workspace / "mask_rcnn_native_crop" / "saved_model_only"
    built_once(workspace, "mask_rcnn_native_crop/saved_model_only", lambda: export(
        ExportOptions(mask_rcnn_run / "pipeline.config", mask_rcnn_run, out, freeze=False)).output_dir)
    return run_reference(Unit("image_tensor", out, out / "saved_model"), "serving_default",
                         [samples.sample_image(), samples.sample_image(170, 75, seed=1)])


def _moved(feed, reference, index: int, shift: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The SavedModel's graph on its proposals moved by ~1e-5: what a faithful conversion gives."""
    image = reference.feed(reference.images[index])
    proposals = np.asarray(reference.outputs[index]["proposal_boxes_normalized"], np.float32)
    rng = np.random.default_rng(index)
    moved = np.clip(proposals + rng.uniform(-2e-5, 2e-5, proposals.shape).astype(np.float32), 0.0, 1.0)
    outputs = feed.outputs(image, {0: moved if shift is None else moved + shift})
    return {**outputs, "proposal_boxes_normalized": moved}


def _failing(reference_outputs, candidate) -> set[str]:
    return {d.key for d in compare.compare_outputs(reference_outputs, candidate) if not d.ok}


def test_the_crops_are_found_and_fed_from_the_outputs_they_take(reference):
    assert crop_feed.has_native_crop(reference.function)
    reference.judged_on(0, reference.outputs[0], 1e-2, 0.0)
    assert reference.crops.sources == ["proposal_boxes_normalized", "detection_boxes"]
    fed = reference.crops.outputs(reference.feed(reference.images[0]),
                                  {0: reference.outputs[0]["proposal_boxes_normalized"]})
    assert not _failing(reference.outputs[0], fed)  # its own proposals give its own outputs


def test_a_second_stage_on_moved_proposals_agrees_when_judged_on_them(reference):
    reference.judged_on(0, reference.outputs[0], 1e-2, 0.0)
    feed = reference.crops
    plain, judged = set(), set()
    for index in range(len(reference.images)):
        candidate = _moved(feed, reference, index)
        plain |= _failing(reference.outputs[index], candidate)
        judged |= _failing(reference.judged_on(index, candidate, 1e-2, 0.0), candidate)
    assert plain & set(SECOND_STAGE), "the moved proposals should flip a border row of the native crop"
    assert not judged


def test_a_second_stage_that_crops_other_boxes_fails(reference):
    reference.judged_on(0, reference.outputs[0], 1e-2, 0.0)
    shift = np.float32([0.05, 0.05, 0.05, 0.05])
    candidate = _moved(reference.crops, reference, 0, shift)  # reports its proposals, crops them moved
    failing = _failing(reference.judged_on(0, candidate, 1e-2, 0.0), candidate)
    assert failing & set(SECOND_STAGE)


def test_the_onnx_file_of_a_native_crop_mask_rcnn_verifies(workspace, mask_rcnn_run):
    from od_export import ExportOptions, export

    result = export(ExportOptions(mask_rcnn_run / "pipeline.config", mask_rcnn_run,
                                  workspace / "mask_rcnn_native_crop" / "onnx", targets=("onnx",), freeze=False,
                                  validate=True))
    onnx = next(c for c in result.validation["checks"] if c["artifact"] == "onnx")
    assert onnx["ok"], onnx
    assert onnx["outputs"]["box_classifier_features"]["max_abs_diff"] < 1e-2
    assert onnx["outputs"]["mask_predictions"]["max_abs_diff"] < 1e-2


@pytest.fixture(scope="module")
def mask_rcnn_tensorrt(workspace, mask_rcnn_run):
    from od_export import ExportOptions, export
    from tests.conftest import built_once

    out = workspace / "mask_rcnn_native_crop" / "tensorrt"
    return built_once(workspace, "mask_rcnn_native_crop/tensorrt", lambda: export(
        ExportOptions(mask_rcnn_run / "pipeline.config", mask_rcnn_run, out, targets=("tensorrt",), freeze=False,
                      validate=True)))


def test_mask_rcnn_gets_the_mask_head_after_the_final_nms_and_verifies(mask_rcnn_tensorrt):
    import json

    import onnx

    check = next(c for c in mask_rcnn_tensorrt.validation["checks"] if c["artifact"] == "tensorrt")
    assert check["ok"], check
    assert check["outputs"]["detection_masks"]["max_abs_diff"] < 1e-3
    assert check["outputs"]["unmatched_detections"]["max_abs_diff"] == 0
    model = onnx.load(str(mask_rcnn_tensorrt.output_dir / "tensorrt" / "model.onnx"))
    plugins = [n.op_type for n in model.graph.node if n.op_type in ("EfficientNMS_TRT", "CropAndResize")]
    assert plugins == ["EfficientNMS_TRT", "CropAndResize", "EfficientNMS_TRT", "CropAndResize"]
    masks = next(o for o in model.graph.output if o.name == "detection_masks")
    assert [d.dim_value for d in masks.type.tensor_type.shape.dim] == [1, 20, 15, 15]
    spec = json.loads((mask_rcnn_tensorrt.output_dir / "tensorrt" / "io_spec.json").read_text())
    assert "detection_masks" in spec["outputs"] and "probabilities" in spec["masks"]


def test_a_tampered_mask_head_fails_its_check(mask_rcnn_tensorrt, tmp_path, capsys):
    import json

    import onnx
    from onnx import numpy_helper

    from od_export.cli import main

    copy = tmp_path / "tampered"
    shutil.copytree(mask_rcnn_tensorrt.output_dir, copy, ignore=shutil.ignore_patterns("manifest.json"))
    path = copy / "tensorrt" / "model.onnx"
    model = onnx.load(str(path))
    weights = [t for t in model.graph.initializer if t.name.startswith("mask_stage/") and len(t.dims) == 4]
    last = weights[-1]  # a convolution of the third stage: it computes the masks only
    last.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(last) * 1.5, last.name))
    onnx.save(model, str(path))
    assert main(["validate", str(copy), "--json"]) == 1
    check = next(c for c in json.loads(capsys.readouterr().out)["checks"] if c["artifact"] == "tensorrt")
    assert not check["outputs"]["detection_masks"]["ok"], check
    assert check["outputs"]["detection_boxes"]["ok"]  # the boxes do not pass through the mask head


def test_a_native_crop_faster_rcnn_tensorrt_file_is_judged_on_its_own_proposals(workspace, tmp_path):
    """Faster R-CNN's export has no proposal output: the SavedModel's are read at its crop, the file's in its graph."""
    from od_export import DemoCheckpointOptions, ExportOptions, create_demo_checkpoint, export

    source = tmp_path / "config"
    source.mkdir()
    text = (LABELS.parent / "faster_rcnn_resnet50.config").read_text()
    (source / "pipeline.config").write_text(text.replace("use_matmul_crop_and_resize: true",
                                                         "use_matmul_crop_and_resize: false"))
    shutil.copy(LABELS, source / "label_map.pbtxt")
    run = create_demo_checkpoint(DemoCheckpointOptions(source / "pipeline.config", tmp_path / "run")).output_dir
    result = export(ExportOptions(run / "pipeline.config", run, tmp_path / "export", targets=("tensorrt",),
                                  freeze=False, validate=True))
    check = next(c for c in result.validation["checks"] if c["artifact"] == "tensorrt")
    assert check["ok"], check
    assert check["outputs"]["raw_detection_scores"]["max_abs_diff"] < 1e-3
