"""The command line: bad input is one line, exit 2, nothing written; --help imports no TF."""
from __future__ import annotations

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
        ("unknown_signature_key", "unknown signature key 'detect'; an export has: serving_default"),
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
    assert {p.name for p in out.iterdir()} == {"checkpoint", "ckpt-1.index", "ckpt-1.data-00000-of-00001", "pipeline.config"}
    assert main(["demo-checkpoint", "--pipeline-config", str(sample_config("ssd_mobilenet_v2")), "--output-dir", str(out), "-q"]) == 2
