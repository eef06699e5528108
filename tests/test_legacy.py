"""exporter_main_v2's spellings: absl flags, re-exports into the same --output_directory, --checkpoint all."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from od_export.cli import main
from od_export.cli.legacy import absl_to_argparse
from od_export.cli.main import _subparser, build_parser


@pytest.mark.parametrize("argv, expected", [
    (["--alsologtostderr", "--logtostderr=true", "--noalsologtostderr"], []),
    (["--v", "1", "--verbosity=2", "--log_dir=/tmp"], []),
    (["--use_side_inputs=False", "--nouse_side_inputs"], []),
    (["--use_side_inputs=true", "--overwrite=1"], ["--use_side_inputs", "--overwrite"]),
    (["--output_directory", "x", "--input_type=image_tensor"], ["--output_directory", "x", "--input_type=image_tensor"]),
    (["--use_side_inputs=maybe", "--nosuch"], ["--use_side_inputs=maybe", "--nosuch"]),  # left for argparse to refuse
])
def test_absl_spellings_become_argparse_ones(argv, expected):
    assert absl_to_argparse(argv, _subparser(build_parser(), "export")) == expected


@pytest.mark.integration
def test_exporter_main_v2_spellings_replace_an_export_as_that_tool_does(demo_checkpoint, exported, tmp_path, capsys):
    run = demo_checkpoint("ssd_mobilenet_v2")
    old_style = ["export", "--pipeline_config_path", str(run / "pipeline.config"), "--trained_checkpoint_dir", str(run),
                 "--input_type", "image_tensor", "--alsologtostderr", "--use_side_inputs=False"]
    shutil.copytree(exported("ssd_mobilenet_v2", ("image_tensor",)).output_dir, tmp_path / "out", symlinks=True)
    first = (tmp_path / "out" / "manifest.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(old_style + ["--output_directory", str(tmp_path / "out")]) == 0
    assert "replacing it (atomically), as exporter_main_v2 writes over it" in capsys.readouterr().err
    assert (tmp_path / "out" / "manifest.json").stat().st_mtime_ns != first
    new_style = ["export", "--pipeline-config", str(run / "pipeline.config"), "--checkpoint-dir", str(run)]
    assert main(new_style + ["--output-dir", str(tmp_path / "out")]) == 2  # the new spelling keeps the safe default


@pytest.mark.integration
def test_checkpoint_all_exports_every_checkpoint_with_a_latest_link(training_run, tmp_path, capsys):
    run = training_run("ssd_mobilenet_v2")
    code = main(["export", "--pipeline-config", str(run / "pipeline.config"), "--checkpoint-dir", str(run),
                 "--output-dir", str(tmp_path / "all"), "--checkpoint", "all", "--no-freeze", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0 and [j["checkpoint"] for j in document["jobs"]] == ["ckpt-1", "ckpt-2", "ckpt-3"]
    assert {j["status"] for j in document["jobs"]} == {"exported"}
    assert os.readlink(tmp_path / "all" / "latest") == "ckpt-3"
    assert (tmp_path / "all" / "ckpt-2" / "saved_model" / "saved_model.pb").is_file()
