"""All-or-nothing output: failures leave nothing, earlier exports survive."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from od_export.atomic import STAGING_PREFIX, staged_directory
from od_export.errors import OutputError


def leftovers(parent):
    return [p.name for p in parent.iterdir() if p.name.startswith(STAGING_PREFIX)]


def test_success_moves_into_place(tmp_path):
    with staged_directory(tmp_path / "out", overwrite=False) as staging:
        (staging / "file").write_text("new")
    assert (tmp_path / "out" / "file").read_text() == "new"
    assert leftovers(tmp_path) == []


def test_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with staged_directory(tmp_path / "out", overwrite=False) as staging:
            (staging / "half").write_text("x")
            raise RuntimeError("boom")
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


def test_failure_keeps_earlier_export_intact(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_directory(out, overwrite=True) as staging:
            (staging / "new").write_text("new")
            raise RuntimeError("boom")
    assert sorted(p.name for p in out.iterdir()) == ["old"]
    assert leftovers(tmp_path) == []


def test_overwrite_replaces_whole_directory(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("old")
    with staged_directory(out, overwrite=True) as staging:
        (staging / "new").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new"]


def test_existing_output_without_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        with staged_directory(tmp_path / "out", overwrite=False):
            pass


def test_output_is_readable_by_others(tmp_path):
    with staged_directory(tmp_path / "out", overwrite=False):
        pass
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask


def test_sigterm_mid_write_leaves_nothing(tmp_path):
    script = textwrap.dedent(
        f"""
        import time, pathlib
        from od_export.atomic import staged_directory
        with staged_directory(pathlib.Path({str(tmp_path / 'out')!r}), overwrite=False) as staging:
            (staging / "half").write_text("x")
            print("ready", flush=True)
            time.sleep(30)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 143
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []
