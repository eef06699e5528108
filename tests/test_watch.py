"""od-export watch on a run that a 'trainer' extends while it is watched."""
from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

from od_export import ExportOptions, WatchOptions, watch

pytestmark = pytest.mark.integration


def write_like_a_trainer(source, destination, name: str) -> None:
    """Data shard first, in two halves a second apart, then the index, as a checkpoint save does."""
    data = next(source.glob(f"{name}.data-*"))
    payload = data.read_bytes()
    with open(destination / data.name, "wb") as handle:
        handle.write(payload[: len(payload) // 2])
        handle.flush()
        time.sleep(1.0)
        handle.write(payload[len(payload) // 2:])
    time.sleep(1.0)
    shutil.copy(source / f"{name}.index", destination / f"{name}.index")


def test_watch_exports_a_checkpoint_written_while_it_runs_and_stops_on_timeout(training_run, tmp_path):
    source = training_run("ssd_mobilenet_v2")
    train_dir = tmp_path / "train"
    train_dir.mkdir()
    shutil.copy(source / "pipeline.config", train_dir / "pipeline.config")
    for path in source.glob("ckpt-1.*"):
        shutil.copy(path, train_dir / path.name)
    options = WatchOptions(ExportOptions(train_dir / "pipeline.config", train_dir, tmp_path / "out", freeze=False),
                           timeout=8.0, poll_interval=0.5)
    results = []
    watcher = threading.Thread(target=lambda: results.append(watch(options)))
    start = time.monotonic()
    watcher.start()
    time.sleep(3.0)
    write_like_a_trainer(source, train_dir, "ckpt-2")
    watcher.join(timeout=240)
    assert not watcher.is_alive() and time.monotonic() - start >= 8.0
    [result] = results
    assert [(r.checkpoint, r.status) for r in result.results] == [("ckpt-1", "exported"), ("ckpt-2", "exported")]
    assert os.readlink(tmp_path / "out" / "latest") == "ckpt-2"

    again = watch(WatchOptions(options.export, once=True))  # a restarted watcher exports nothing twice
    assert [(r.checkpoint, r.status) for r in again.results] == [("ckpt-1", "skipped"), ("ckpt-2", "skipped")]


def test_a_malformed_config_is_refused_up_front_and_an_empty_run_says_so(tmp_path, capsys):
    from od_export.cli import main

    train_dir = tmp_path / "train"
    train_dir.mkdir()
    (train_dir / "pipeline.config").write_text("model { ssd { num_classes: 3 ")  # cut off mid-message
    code = main(["watch", str(train_dir), "--output-dir", str(tmp_path / "out"), "--once"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "pipeline.config" in err
    shutil.copy(os.path.join(os.path.dirname(__file__), "..", "pipeline_samples", "ssd_mobilenet_v2.config"),
                train_dir / "pipeline.config")
    assert main(["watch", str(train_dir), "--output-dir", str(tmp_path / "out"), "--once", "-q"]) == 0
    assert capsys.readouterr().out.strip() == f"no checkpoints yet in {train_dir}"
    assert not (tmp_path / "out").exists()
