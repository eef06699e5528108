"""Batch files → export options: keys, values, paths, checkpoints, shards (no TensorFlow)."""
from __future__ import annotations

from pathlib import Path

import pytest

from od_export.cli import main
from od_export.options import ConversionOptions, ExportOptions
from od_export.pipelines.jobs import CheckpointSelection, JOB_KEYS, expand, load_batch, shard
from tests.conftest import sample_config


def write_run(directory: Path, numbers: list[int]) -> Path:
    """A fake training run: checkpoint index/data files (never read here) and a pipeline.config."""
    directory.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (directory / f"ckpt-{n}.index").write_bytes(b"")
        (directory / f"ckpt-{n}.data-00000-of-00001").write_bytes(b"")
    (directory / "pipeline.config").write_text(sample_config("ssd_mobilenet_v2").read_text())
    return directory


def batch_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jobs.yaml"
    path.write_text(text)
    return path


JOB = "  - pipeline_config: run/pipeline.config\n    checkpoint_dir: run\n    output_dir: out/{name}\n"


def test_every_export_option_and_target_setting_is_a_job_key_and_a_flag():
    from dataclasses import fields

    from od_export.cli.main import _subparser, build_parser
    from od_export.targets import SETTINGS

    names = {f.name for f in fields(ExportOptions) if f.name != "conversion"}
    names |= {f.name for f in fields(ConversionOptions) if f.name != "settings"} | set(SETTINGS)
    assert names <= set(JOB_KEYS)
    flags = {a.dest for a in _subparser(build_parser(), "export")._actions}
    assert set(SETTINGS) <= flags and {"opset", "tflite_precisions", "openvino_precision"} <= set(SETTINGS)


def test_job_parses_into_the_options_the_cli_builds(tmp_path, monkeypatch):
    write_run(tmp_path / "run", [1])
    monkeypatch.setenv("OUT_ROOT", str(tmp_path / "exports"))
    path = batch_file(tmp_path, "defaults:\n  targets: onnx\n  opset: 15\njobs:\n"
                      "  - pipeline_config: run/pipeline.config\n    checkpoint_dir: run\n"
                      "    output_dir: ${OUT_ROOT}/a\n    input_types: [image_tensor, float_image_tensor]\n"
                      "    input_shape: [320, 320]\n    freeze: false\n")
    [job] = load_batch(path)
    assert job.options == ExportOptions(
        str(tmp_path / "run" / "pipeline.config"), str(tmp_path / "run"), str(tmp_path / "exports" / "a"),
        input_types=("image_tensor", "float_image_tensor"), freeze=False, targets=("onnx",),
        conversion=ConversionOptions.of(opset=15, input_shape=(320, 320)))


@pytest.mark.parametrize("text, expected", [
    ("jobs: [\n", "not valid YAML at line 2"),
    ("jobs: []\n", "non-empty list of `jobs`"),
    ("job:\n" + JOB.format(name="a"), "unknown key 'job'; did you mean 'jobs'?"),
    ("jobs:\n" + JOB.format(name="a") + "    input_type: image_tensor\n", "job 1 (job1): unknown key 'input_type'; did you mean 'input_types'?"),
    ("jobs:\n" + JOB.format(name="a") + "    opset: true\n", "job 1 (job1): opset: must be a whole number, not True"),
    ("jobs:\n" + JOB.format(name="a") + "    freeze: 'no'\n", "freeze: must be true or false"),
    ("jobs:\n" + JOB.format(name="a") + "    input_types: [pixels]\n", "unknown input type 'pixels'"),
    ("jobs:\n  - name: x\n    pipeline_config: run/pipeline.config\n    output_dir: o\n", "job 1 (x): checkpoint_dir: missing"),
    ("jobs:\n" + JOB.format(name="a") + "    output_dir: ${NOT_SET_ANYWHERE}\n", "output_dir: environment variable NOT_SET_ANYWHERE is not set"),
    ("jobs:\n" + JOB.format(name="a") + "    checkpoints: some\n", "checkpoints: must be all, latest"),
    ("jobs:\n" + JOB.format(name="a") + "    checkpoints: all\n    checkpoint: ckpt-1\n", "give either checkpoint (one) or checkpoints"),
    ("jobs:\n" + JOB.format(name="a") + JOB.format(name="a"), "job 2 (job2): output_dir: "),
    ("jobs:\n" + JOB.format(name="a") + "    benchmark: {max_drop: 0.1}\n",
     "benchmark: unknown key 'max_drop'; known keys: max_images, min_map, max_map_drop, data"),
    ("jobs:\n" + JOB.format(name="a") + "    benchmark: {max_map_drop: 5}\n",
     "benchmark: benchmark max_map_drop is a COCO mAP figure between 0 and 1, not 5"),
    ("jobs:\n" + JOB.format(name="a") + "    benchmark: fast\n", "benchmark: must be true or a mapping"),
])
def test_bad_batch_files_name_file_job_and_key_and_exit_2(tmp_path, capsys, text, expected):
    write_run(tmp_path / "run", [1])
    path = batch_file(tmp_path, text)
    assert main(["batch", str(path), "--check"]) == 2
    err = capsys.readouterr().err
    assert expected in err and str(path) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_benchmark_key_parses_into_the_request_the_cli_builds(tmp_path):
    from od_export.options import BenchmarkRequest

    write_run(tmp_path / "run", [1])
    path = batch_file(tmp_path, "jobs:\n" + JOB.format(name="a") + "    benchmark: {max_images: 40, max_map_drop: 0.02, "
                      "data: eval.record}\n" + JOB.format(name="b") + "    benchmark: true\n")
    first, second = load_batch(path)
    assert first.options.benchmark == BenchmarkRequest(40, None, 0.02, (str(tmp_path / "eval.record"),))
    assert second.options.benchmark == BenchmarkRequest()


def test_a_missing_source_is_refused_before_anything_runs(tmp_path, capsys):
    path = batch_file(tmp_path, "jobs:\n" + JOB.format(name="a"))
    assert main(["batch", str(path)]) == 2
    assert "job 1 (job1): pipeline_config: " in capsys.readouterr().err


def test_checkpoint_selections_expand_into_one_output_each(tmp_path):
    write_run(tmp_path / "run", [1, 5, 10, 12])
    cases = {"all": ["ckpt-1", "ckpt-5", "ckpt-10", "ckpt-12"], "latest": ["ckpt-12"], "[5, ckpt-10]": ["ckpt-5", "ckpt-10"],
             "{every: 5}": ["ckpt-5", "ckpt-10"]}
    for selection, expected in cases.items():
        path = batch_file(tmp_path, "jobs:\n" + JOB.format(name="a") + f"    checkpoints: {selection}\n")
        tasks = expand(load_batch(path))
        assert [t.checkpoint for t in tasks] == expected
        assert [t.options.output_dir for t in tasks] == [str(tmp_path / "out" / "a" / n) for n in expected]
        assert all(t.options.checkpoint == t.checkpoint for t in tasks)
        assert tasks[0].latest_link == tmp_path / "out" / "a" / "latest"


def test_a_named_checkpoint_that_the_run_lacks_is_refused(tmp_path):
    write_run(tmp_path / "run", [1, 2])
    path = batch_file(tmp_path, "jobs:\n" + JOB.format(name="a") + "    checkpoints: [ckpt-7]\n")
    with pytest.raises(Exception, match=r"ckpt-7 not in .* \(it has ckpt-1, ckpt-2\)"):
        expand(load_batch(path))


@pytest.mark.parametrize("tasks", [1, 5, 7, 23])
@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_shards_cover_every_task_exactly_once_and_are_balanced(tasks, count):
    items = list(range(tasks))
    slices = [shard(items, index, count) for index in range(1, count + 1)]
    assert sorted(x for part in slices for x in part) == items
    assert max(map(len, slices)) - min(map(len, slices)) <= 1


def test_every_n_keeps_multiples():
    assert CheckpointSelection("every", every=2).select(("ckpt-1", "ckpt-2", "ckpt-4")) == ("ckpt-2", "ckpt-4")


def test_check_lists_the_planned_exports(tmp_path, capsys):
    write_run(tmp_path / "run", [1, 2])
    path = batch_file(tmp_path, "jobs:\n" + JOB.format(name="a") + "    checkpoints: all\n")
    assert main(["batch", str(path), "--check", "--shard", "2/2"]) == 0
    out = capsys.readouterr().out
    assert "ckpt-2" in out and "planned" in out and "ckpt-1  " not in out
    assert out.strip().endswith("(checked, nothing run)") and "worker" not in out
    assert not (tmp_path / "out").exists()


def test_the_readme_example_batch_file_checks(tmp_path, capsys):
    """pipeline_samples/batch.yaml as the README runs it: next to the runs that demo.sh and demo-checkpoint make."""
    from tests.conftest import SAMPLES

    (tmp_path / "pipeline_samples").mkdir()
    example = tmp_path / "pipeline_samples" / "batch.yaml"
    example.write_text((SAMPLES / "batch.yaml").read_text())
    write_run(tmp_path / "demo_output" / "training_run", [1])
    write_run(tmp_path / "demo_output" / "centernet_run", [1])
    assert main(["batch", str(example), "--check", "--json"]) == 0
    jobs = __import__("json").loads(capsys.readouterr().out)["jobs"]
    assert [(j["job"], j["checkpoint"], j["status"]) for j in jobs] == [("ssd", "ckpt-1", "planned"),
                                                                          ("centernet", "ckpt-1", "planned")]


def test_a_side_input_with_an_unknown_dtype_is_refused_before_anything_runs(tmp_path, capsys):
    write_run(tmp_path / "run", [1])
    path = batch_file(tmp_path, "jobs:\n" + JOB.format(name="a")
                      + "    side_inputs: [{name: boxes, dtype: complex, shape: [1, null, 4]}]\n")
    assert main(["batch", str(path), "--check"]) == 2
    assert "side_inputs: side input 'boxes' has unknown dtype 'complex'" in capsys.readouterr().err


def test_min_agreement_is_a_mapping_per_precision(tmp_path, capsys):
    write_run(tmp_path / "run", [1])
    good = batch_file(tmp_path, "jobs:\n" + JOB.format(name="a") + "    min_agreement: {int8: 0.3, fp16: 0.95}\n")
    assert main(["batch", str(good), "--check"]) == 0
    bare = batch_file(tmp_path, "jobs:\n" + JOB.format(name="a") + "    min_agreement: 0.3\n")
    assert main(["batch", str(bare), "--check"]) == 2
    assert "must map each precision to a fraction, like {int8: 0.3}" in capsys.readouterr().err
