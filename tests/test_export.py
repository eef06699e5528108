"""checkpoint → SavedModel + frozen graph, on real models from pipeline_samples/."""
from __future__ import annotations

import json
import shutil

import pytest

from od_export.verify import samples
from od_export.storage.owners import STAGING_PREFIX
from od_export.cli import main
from od_export.verify.compare import compare_outputs
from od_export.targets.frozen_graph import IO_SPEC_NAME
from tests.conftest import ALL_INPUT_TYPES, ARCHITECTURES
from tests.helpers import (
    assert_non_degenerate,
    exporter_concrete_function,
    run_concrete,
    sample_input,
    saved_model_signature,
)

pytestmark = pytest.mark.integration
PARITY_TYPES = ("image_tensor", "float_image_tensor")


def expected_files(directory):
    return {
        "checkpoint/checkpoint",
        "checkpoint/ckpt-0.index",
        "checkpoint/ckpt-0.data-00000-of-00001",
        "saved_model/saved_model.pb",
        "saved_model/variables/variables.index",
        "saved_model/variables/variables.data-00000-of-00001",
        "pipeline.config",
        "frozen_graph/frozen_inference_graph.pb",
        f"frozen_graph/{IO_SPEC_NAME}",
    }


def files_under(directory):
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}


def test_four_input_types_write_one_directory_each(exported):
    result = exported("ssd_mobilenet_v2", ALL_INPUT_TYPES)
    root = result.output_dir
    assert sorted(p.name for p in root.iterdir()) == sorted(ALL_INPUT_TYPES + ("manifest.json",))
    for artifact in result.artifacts:
        assert artifact.directory == root / artifact.input_type
        assert expected_files(artifact.directory) <= files_under(artifact.directory)
        assert all(d.ok for d in artifact.check)
    assert not [p for p in root.parent.iterdir() if p.name.startswith(STAGING_PREFIX)]


#: Architectures whose parity runs by default: one SSD and CenterNet, two heads and two post-processings.
#: The others trace through the same code; test_tensorrt (EfficientDet) and test_onnx (Faster R-CNN)
#: still export and verify them by default, and --exhaustive adds them here.
SAMPLED = ("ssd_mobilenet_v2", "centernet_mobilenet_v2_fpn")


def sampled(architecture: str, *values):
    """A parametrize entry: as is for a sampled architecture, else marked exhaustive."""
    if architecture in SAMPLED:
        return values if len(values) > 1 else values[0]
    return pytest.param(*values, marks=pytest.mark.exhaustive)


def export_types(architecture: str) -> tuple[str, ...]:
    """The input types of the shared export a parity test reads: SSD's four-type export has both parity types."""
    return ALL_INPUT_TYPES if architecture == "ssd_mobilenet_v2" else PARITY_TYPES


@pytest.mark.parametrize("architecture, input_type", [
    (architecture, input_type) if architecture == "ssd_mobilenet_v2"
    else sampled(architecture, architecture, input_type) if input_type == "image_tensor"
    else pytest.param(architecture, input_type, marks=pytest.mark.exhaustive)  # the same graph past the cast
    for input_type in PARITY_TYPES for architecture in ARCHITECTURES])
def test_saved_model_matches_exporter(exported, demo_checkpoint, architecture, input_type):
    """Signature and detections equal exporter_lib_v2's for the same checkpoint."""
    result = exported(architecture, export_types(architecture))
    artifact = next(a for a in result.artifacts if a.input_type == input_type)
    reference = exporter_concrete_function(demo_checkpoint(architecture), input_type)
    from od_export.source.tracing import signature_description

    assert saved_model_signature(artifact.directory / "saved_model") == signature_description(reference)
    value = sample_input(input_type)
    expected = run_concrete(reference, value)
    actual = samples.run_saved_model(artifact.directory / "saved_model", {"input_tensor": value})
    assert_non_degenerate(expected)
    bad = [d for d in compare_outputs(expected, actual, atol=1e-4) if not d.ok]
    assert not bad, bad


def frozen_outputs(artifact, value):
    spec = json.loads((artifact.directory / "frozen_graph" / IO_SPEC_NAME).read_text())
    graph_def = samples.load_graph_def(artifact.directory / "frozen_graph" / "frozen_inference_graph.pb")
    fetches = {key: f"{key}:0" for key in spec["outputs"]}  # addressed by signature key
    return spec, graph_def, samples.run_frozen_graph(graph_def, {"input_tensor:0": value}, fetches)


@pytest.mark.parametrize("input_type", ALL_INPUT_TYPES)
def test_frozen_graph_matches_saved_model_for_every_input_type(exported, input_type):
    result = exported("ssd_mobilenet_v2", ALL_INPUT_TYPES)
    artifact = next(a for a in result.artifacts if a.input_type == input_type)
    value = sample_input(input_type)
    reference = samples.run_saved_model(artifact.directory / "saved_model", {"input_tensor": value})
    spec, graph_def, frozen = frozen_outputs(artifact, value)
    assert_non_degenerate(reference)
    assert not [d for d in compare_outputs(reference, frozen) if not d.ok]
    placeholders = [n.name for n in graph_def.node if n.op.startswith("Placeholder")]
    assert placeholders == ["input_tensor"]
    assert spec["inputs"]["input_tensor"]["dtype"] == artifact.signature["inputs"]["input_tensor"]["dtype"]
    # Identity_N aliases are kept and follow the alphabetical order of the keys.
    for index, key in enumerate(sorted(spec["outputs"])):
        assert spec["outputs"][key]["alias"] == ("Identity:0" if index == 0 else f"Identity_{index}:0")


@pytest.mark.parametrize("architecture", [sampled(a, a) for a in ARCHITECTURES])
def test_frozen_graph_matches_saved_model_for_every_architecture(exported, architecture):
    result = exported(architecture, export_types(architecture))
    for artifact in result.artifacts:
        value = sample_input(artifact.input_type)
        reference = samples.run_saved_model(artifact.directory / "saved_model", {"input_tensor": value})
        _, graph_def, frozen = frozen_outputs(artifact, value)
        assert set(frozen) == set(reference)
        assert not [d for d in compare_outputs(reference, frozen) if not d.ok]
        assert [n.name for n in graph_def.node if n.op.startswith("Placeholder")] == ["input_tensor"]


def test_exporter_flag_spellings_json_and_missing_state_file(demo_checkpoint, workspace, capsys):
    run = workspace / "no_state_file"
    shutil.copytree(demo_checkpoint("ssd_mobilenet_v2"), run)
    (run / "checkpoint").unlink()
    out = workspace / "drop_in"
    code = main([
        "export", "--input_type", "image_tensor", "--pipeline_config_path", str(run / "pipeline.config"),
        "--trained_checkpoint_dir", str(run), "--output_directory", str(out), "--frozen-format", "both", "--json",
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document = json.loads(captured.out)
    assert document["checkpoint"] == str(run / "ckpt-1")
    assert any("no `checkpoint` state file" in note for note in document["notes"])
    assert "no `checkpoint` state file" in captured.err
    [artifact] = document["input_types"]
    assert artifact["directory"] == str(out)
    assert {p.split("/")[-1] for p in artifact["frozen_graph"]} == {
        "frozen_inference_graph.pb", "frozen_inference_graph.pbtxt", IO_SPEC_NAME, "labels.txt",
    }
    assert expected_files(out) <= files_under(out)


def test_zoo_layout_and_overwrite_keeps_nothing_stale(demo_checkpoint, workspace, capsys):
    zoo = workspace / "zoo_model"
    (zoo / "checkpoint").mkdir(parents=True)
    for path in demo_checkpoint("ssd_mobilenet_v2").iterdir():
        target = zoo / "pipeline.config" if path.name == "pipeline.config" else zoo / "checkpoint" / path.name
        shutil.copy(path, target)
    out = workspace / "zoo_export"
    (out / "stale").mkdir(parents=True)
    args = ["export", "--pipeline-config", str(zoo / "pipeline.config"), "--checkpoint-dir", str(zoo),
            "--output-dir", str(out), "--no-freeze", "-q"]
    assert main(args) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint", "manifest.json", "pipeline.config", "saved_model"]


def test_pipeline_config_written_is_the_merged_one(demo_checkpoint, workspace):
    from od_export import export
    from od_export import ExportOptions
    from od_export.source.pipeline_config import load_pipeline_config

    run = demo_checkpoint("ssd_mobilenet_v2")
    override = "model { ssd { post_processing { batch_non_max_suppression { max_total_detections: 7 max_detections_per_class: 7 } } } }"
    result = export(ExportOptions(run / "pipeline.config", run, workspace / "override", config_overrides=(override,), freeze=False))
    written = load_pipeline_config(result.output_dir / "pipeline.config")
    assert written.model.ssd.post_processing.batch_non_max_suppression.max_total_detections == 7
    assert result.artifacts[0].signature["outputs"]["detection_boxes"]["shape"] == [1, 7, 4]
