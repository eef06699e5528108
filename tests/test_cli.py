"""The command line: bad input is one line, exit 2, nothing written; --help imports no TF."""
from __future__ import annotations

import json

import os
import subprocess
import sys

import pytest

from od_export.cli import main
from tests.conftest import sample_config

QUIET_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_help_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "from od_export.cli import main\n"
        "try:\n    main(['export', '--help'])\nexcept SystemExit as exc:\n    print('exit', exc.code)\n"
        "print('tensorflow' in sys.modules, 'object_detection' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "--pipeline-config" in result.stdout and "--input_type" in result.stdout
    assert result.stdout.strip().splitlines()[-2:] == ["exit 0", "False False"]


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["export", "--pipeline-config", "x"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "required" in err


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "od_export", *args], capture_output=True, text=True, env=QUIET_ENV, timeout=600
    )


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("od-export: error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.integration
@pytest.mark.parametrize(
    "case, fragment",
    [
        ("missing_config", "does not exist; pass the pipeline.config"),
        ("malformed_config", "line 3 column 5"),
        ("wrong_checkpoint_path", "checkpoint directory"),
        ("unknown_input_type", "unknown input type 'jpeg'; choose from: image_tensor"),
        ("unknown_signature_key", "unknown signature key 'detect'; this export has: serving_default"),
        ("existing_output", "already exists; pass --overwrite"),
        ("checkpoint_state_names_missing", "checkpoints present: ckpt-1"),
        ("mismatched_num_classes", "(1, 1, 192, 12)"),
    ],
)
def test_bad_input(case, fragment, demo_checkpoint, tmp_path):
    run = demo_checkpoint("ssd_mobilenet_v2")
    config, checkpoint_dir, out = str(sample_config("ssd_mobilenet_v2")), str(run), tmp_path / "out"
    extra: list[str] = []
    if case == "missing_config":
        config = str(tmp_path / "missing.config")
    elif case == "malformed_config":
        bad = tmp_path / "bad.config"
        bad.write_text("model {\n  ssd {\n    num_clases: 3\n  }\n}\n")
        config = str(bad)
    elif case == "wrong_checkpoint_path":
        checkpoint_dir = str(tmp_path / "no_such_run")
    elif case == "unknown_input_type":
        extra = ["--input-type", "jpeg"]
    elif case == "unknown_signature_key":
        extra = ["--signature-key", "detect"]
    elif case == "existing_output":
        out.mkdir()
        (out / "keep").write_text("earlier export")
    elif case == "checkpoint_state_names_missing":
        moved = tmp_path / "run"
        moved.mkdir()
        for path in run.iterdir():
            (moved / path.name).write_bytes(path.read_bytes())
        (moved / "checkpoint").write_text('model_checkpoint_path: "ckpt-9"\n')
        checkpoint_dir = str(moved)
    elif case == "mismatched_num_classes":
        extra = ["--config-override", "model { ssd { num_classes: 5 } }"]
    result = run_cli("export", "--pipeline-config", config, "--checkpoint-dir", checkpoint_dir, "--output-dir", str(out), *extra)
    assert_one_line_error(result, fragment)
    if case == "existing_output":
        assert [p.name for p in out.iterdir()] == ["keep"]
    else:
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".od-export")) == []


@pytest.mark.integration
def test_mismatch_names_variable_and_both_shapes(demo_checkpoint, tmp_path, capsys):
    run = demo_checkpoint("ssd_mobilenet_v2")
    code = main([
        "export", "--pipeline-config", str(run / "pipeline.config"), "--checkpoint-dir", str(run),
        "--output-dir", str(tmp_path / "out"), "--config-override", "model { ssd { num_classes: 5 } }", "-q",
    ])
    err = capsys.readouterr().err
    assert code == 2
    assert "_class_predictor_layers/0/kernel: checkpoint (1, 1, 192, 12) vs model (1, 1, 192, 18)" in err
    assert "num_classes" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.integration
def test_demo_checkpoint_subcommand(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["demo-checkpoint", "--pipeline-config", str(sample_config("ssd_mobilenet_v2")), "--output-dir", str(out), "-q"]) == 0
    assert {p.name for p in out.iterdir()} == {"checkpoint", "ckpt-1.index", "ckpt-1.data-00000-of-00001", "pipeline.config",
                                               "label_map.pbtxt", "manifest.json"}  # the label map beside the config, as a run keeps it
    assert main(["demo-checkpoint", "--pipeline-config", str(sample_config("ssd_mobilenet_v2")), "--output-dir", str(out), "-q"]) == 2
    capsys.readouterr()
    assert main(["demo-checkpoint", "--pipeline-config", str(sample_config("ssd_mobilenet_v2")), "--output-dir",
                 str(out), "--overwrite", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True  # success says so, as failures do


FAST_FAILURE = """
import sys, time
from od_export.cli import main
started = time.perf_counter()
code = main(sys.argv[1:])
print(code, round(time.perf_counter() - started, 3), "tensorflow" in sys.modules)
"""


def fake_run(directory):
    directory.mkdir()
    (directory / "ckpt-1.index").write_bytes(b"")
    (directory / "ckpt-1.data-00000-of-00001").write_bytes(b"")
    return directory


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("missing_config", "does not exist; pass the pipeline.config"),
        ("binary_config", "is a binary file"),
        ("out_of_range_config", "model.ssd.num_classes is 0, outside the range"),
        ("missing_checkpoint", "checkpoint directory"),
        ("unwritable_output", "cannot write output /proc/od-export-test: nothing can be created in /proc ("),
        ("output_inside_checkpoint_dir", "is inside the checkpoint directory"),
        ("output_is_a_file", "exists and is not a directory"),
    ],
)
def test_bad_paths_fail_in_well_under_a_second_without_tensorflow(case, fragment, tmp_path):
    run = fake_run(tmp_path / "run")
    config, checkpoint_dir, out = str(sample_config("ssd_mobilenet_v2")), str(run), str(tmp_path / "out")
    if case == "missing_config":
        config = str(tmp_path / "missing.config")
    elif case == "binary_config":
        (tmp_path / "binary.config").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
        config = str(tmp_path / "binary.config")
    elif case == "out_of_range_config":
        (tmp_path / "zero.config").write_text(sample_config("ssd_mobilenet_v2").read_text().replace("num_classes: 3", "num_classes: 0"))
        config = str(tmp_path / "zero.config")
    elif case == "missing_checkpoint":
        checkpoint_dir = str(tmp_path / "no_run")
    elif case == "unwritable_output":
        out = "/proc/od-export-test"
    elif case == "output_inside_checkpoint_dir":
        out = str(run / "exported")
    elif case == "output_is_a_file":
        (tmp_path / "out").write_text("a file")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = subprocess.run(
        [sys.executable, "-c", FAST_FAILURE, "export", "--pipeline-config", config, "--checkpoint-dir", checkpoint_dir,
         "--output-dir", out, "--overwrite"], capture_output=True, text=True, env=QUIET_ENV, timeout=60)
    code, seconds, imported_tf = result.stdout.split()
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert code == "2" and len(errors) == 1 and fragment in errors[0], result.stderr
    assert imported_tf == "False" and float(seconds) < 1.0, result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
