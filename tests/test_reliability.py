"""Faults a pipeline meets, injected for real: kill -9, concurrent writers, a full disk, diverged weights.

Each export under test runs as its own ``python -m od_export`` process, and faults
come from outside it (SIGKILL from this process, an RLIMIT_FSIZE it inherits, a
second exporter racing it), as they would in a pipeline.
"""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from od_export.cli import main
from od_export.errors import InputError
from od_export.inspect.paths import detect_kind
from od_export.manifest import read_manifest, verify_inventory
from od_export.storage.owners import LOCK_PREFIX, owner_alive, parse_owned_name

pytestmark = pytest.mark.integration
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def export_command(run: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "od_export", "export", "--pipeline-config", str(run / "pipeline.config"),
            "--checkpoint-dir", str(run), "--output-dir", str(out), "-q", *extra]


def temporaries(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if p.name.startswith(".od-export-"))


def assert_intact(out: Path, manifest: dict) -> None:
    assert read_manifest(out) == manifest
    assert verify_inventory(out, manifest) == []


def staged_file(relative: str):
    def found(parent: Path) -> bool:
        return any((p / relative).exists() for p in parent.glob(".od-export-staging-out.*"))
    return found


#: When to kill, as something visible from outside the exporting process (None: after 3 s).
KILL_POINTS = {
    "while importing and building": None,
    "staging directory created": staged_file(""),
    "SavedModel being written": staged_file("saved_model/variables"),
    "frozen graph written": staged_file("frozen_graph/io_spec.json"),
    "manifest written, before publishing": staged_file("manifest.json"),
}
LAST_POINT = ("manifest written, before publishing",)
#: Killed only with --exhaustive: the point right after the staging directory appears lies
#: between two the default run covers (still building; SavedModel half written).
EXHAUSTIVE_POINTS = ("staging directory created",)


@pytest.fixture(scope="module")
def earlier_export(demo_checkpoint, exported, tmp_path_factory):
    """The run's default export (the shared one), copied to a directory of this module's own."""
    run = demo_checkpoint("ssd_mobilenet_v2")
    out = tmp_path_factory.mktemp("kill") / "out"
    shutil.copytree(exported("ssd_mobilenet_v2", ("image_tensor",)).output_dir, out, symlinks=True)
    return run, out, read_manifest(out)


def kill_all_at_their_points(run: Path, targets: dict[str, Path]) -> dict[str, int]:
    """Start one export per kill point (each over its own copy of the earlier export), kill each at its point."""
    processes = {point: subprocess.Popen(export_command(run, out, "--overwrite"), env=ENV, stderr=subprocess.DEVNULL)
                 for point, out in targets.items()}
    started, pending = time.monotonic(), dict(processes)
    while pending and time.monotonic() - started < 300:
        for point, process in list(pending.items()):
            watcher = KILL_POINTS[point]
            reached = time.monotonic() - started > 3 if watcher is None else watcher(targets[point].parent)
            if process.poll() is not None:
                # Only the last point can be overtaken: publishing follows the manifest within
                # microseconds. The export then finished (exit 0) and is checked as a whole.
                assert point in LAST_POINT and process.returncode == 0, f"{point}: the export ended first"
                del pending[point]
                continue
            if reached:
                process.send_signal(signal.SIGKILL)
                code = process.wait(timeout=30)
                assert code == -signal.SIGKILL or (point in LAST_POINT and code == 0), (point, code)
                del pending[point]
        time.sleep(0.005)
    assert not pending, f"never reached: {sorted(pending)}"
    return {point: process.pid for point, process in processes.items()}


def test_kill_9_at_any_point_leaves_earlier_export_intact(earlier_export, tmp_path, request):
    run, original, manifest = earlier_export
    exhaustive = request.config.getoption("--exhaustive")
    targets = {}
    for index, point in enumerate(p for p in KILL_POINTS if exhaustive or p not in EXHAUSTIVE_POINTS):
        targets[point] = tmp_path / str(index) / "out"
        shutil.copytree(original, targets[point])
    pids = kill_all_at_their_points(run, targets)
    for point, out in targets.items():
        if point.startswith("manifest written"):
            # Publishing follows the manifest within microseconds: the kill may land before the
            # swap (the earlier export stays) or after it (the new one is whole). Never a mix.
            current = read_manifest(out)
            assert current is not None and verify_inventory(out, current) == []
        else:
            assert_intact(out, manifest)
        for leftover in temporaries(out.parent):
            if leftover.name.startswith(LOCK_PREFIX):  # unlocked by the kernel; reused by the next export
                assert leftover.is_file() and leftover.stat().st_size < 100
                continue
            owned = parse_owned_name(leftover.name)
            assert owned is not None and owned.pid == pids[point] and owner_alive(owned) is False
            with pytest.raises(InputError, match="temporary directory of an unfinished"):
                detect_kind(leftover)
    out = targets["frozen graph written"]
    assert any(p.name.startswith(".od-export-staging") for p in temporaries(out.parent))
    from od_export import InspectOptions, inspect_path

    assert [unit["name"] for unit in inspect_path(InspectOptions(out.parent))["units"]] == ["out"]
    # The next export to the same target removes what the killed one left.
    assert main(["export", "--pipeline-config", str(run / "pipeline.config"), "--checkpoint-dir", str(run),
                 "--output-dir", str(out), "--overwrite", "--no-freeze", "-q"]) == 0
    assert temporaries(out.parent) == []
    assert verify_inventory(out, read_manifest(out)) == []


def test_concurrent_writers_publish_exactly_one_whole_export(demo_checkpoint, tmp_path):
    run = demo_checkpoint("ssd_mobilenet_v2")
    out = tmp_path / "out"
    racers = [subprocess.Popen(export_command(run, out, "--no-freeze"), env=ENV, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    results = sorted((p.wait(timeout=300), p.stderr.read()) for p in racers)
    assert [code for code, _ in results] == [0, 1], results
    assert "is being written by od-export process" in results[1][1] and len(results[1][1].strip().splitlines()) == 1
    assert verify_inventory(out, read_manifest(out)) == [] and temporaries(tmp_path) == []


def limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


def test_full_disk_during_write_is_one_line_and_keeps_earlier_export(earlier_export, tmp_path):
    run, original, _ = earlier_export
    out = tmp_path / "out"
    shutil.copytree(original, out)
    manifest = read_manifest(out)
    result = subprocess.run(export_command(run, out, "--overwrite"), env=ENV, capture_output=True, text=True,
                            preexec_fn=limit_file_size, timeout=300)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result.stderr
    assert len(errors) == 1 and errors[0].startswith(f"od-export: error: cannot write the export to {out}: "), errors
    assert_intact(out, manifest)
    assert temporaries(tmp_path) == []


def rewritten_checkpoints(run: Path, destinations: dict[str, Path], changes: dict[str, object]) -> None:
    """Copies of ``run`` whose model variables went through ``changes[name](model)``, one build for all."""
    from od_export import compat
    from od_export.source.model import build_model, create_variables
    from od_export.source.pipeline_config import load_pipeline_config

    tf = compat.import_tensorflow()
    config = load_pipeline_config(run / "pipeline.config")
    model = build_model(config)
    create_variables(model, config)
    for name, change in changes.items():
        tf.train.Checkpoint(model=model).restore(str(run / "ckpt-1")).expect_partial()
        change(model)
        destinations[name].mkdir()
        tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(destinations[name]), 1).save(checkpoint_number=1)
        shutil.copy(run / "pipeline.config", destinations[name] / "pipeline.config")


def variable(model, fragment: str):
    return next(v for v in model.variables if fragment in v.name)


def test_diverged_weights_and_infinite_outputs_are_named(demo_checkpoint, tmp_path, capsys):
    run = demo_checkpoint("ssd_mobilenet_v2")

    def poison(model):
        kernel = variable(model, "BoxPredictor")
        kernel.assign(kernel * float("nan"))

    def explode(model):  # finite weights, but box encodings so large that exp() overflows
        bias = next(v for v in model.variables if "BoxEncodingPredictor" in v.name and "bias" in v.name)
        bias.assign(bias + 1e6)

    diverged, exploding = tmp_path / "diverged", tmp_path / "exploding"
    rewritten_checkpoints(run, {"diverged": diverged, "exploding": exploding}, {"diverged": poison, "exploding": explode})
    args = ["export", "--pipeline-config", str(diverged / "pipeline.config"), "--checkpoint-dir", str(diverged), "-q"]
    assert main([*args, "--output-dir", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "holds NaN or infinite values in 1 variable(s)" in err and "BoxPredictor" in err and "diverged" in err

    args = ["export", "--pipeline-config", str(exploding / "pipeline.config"), "--checkpoint-dir", str(exploding), "-q",
            "--no-freeze"]
    assert main([*args, "--output-dir", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "computes NaN or infinite values on a sample image in" in err and "raw_detection_boxes" in err
    assert "max |diff|" not in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
