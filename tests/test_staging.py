"""All-or-nothing local output: failures leave nothing, earlier exports survive, leftovers are recognised."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from od_export.errors import OutputBusy, OutputError
from od_export.storage import staging as staging_module
from od_export.storage.owners import STAGING_PREFIX, owner_alive, parse_owned_name, retired_name, staging_name
from od_export.storage.output import plan_output, reserve, staged_output
from tests.helpers import od_export_directory


@contextlib.contextmanager
def publishing(target: Path, overwrite: bool = False, wait: bool = False):
    plan = plan_output(target, overwrite)
    with reserve(plan, wait):
        with staged_output(plan) as staging:
            yield staging


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".od-export-"))


def test_success_moves_into_place(tmp_path):
    with publishing(tmp_path / "out") as staging:
        (staging / "file").write_text("new")
    assert (tmp_path / "out" / "file").read_text() == "new"
    assert leftovers(tmp_path) == []


def test_failure_leaves_nothing_not_even_created_parents(tmp_path):
    with pytest.raises(RuntimeError):
        with publishing(tmp_path / "new" / "deeper" / "out") as staging:
            (staging / "half").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_earlier_export_intact(tmp_path):
    out = od_export_directory(tmp_path / "out", {"old": "old"})
    with pytest.raises(RuntimeError):
        with publishing(out, overwrite=True) as staging:
            (staging / "new").write_text("new")
            raise RuntimeError("boom")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "old"]
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_overwrite_replaces_whole_directory(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(staging_module, "_exchange", lambda first, second: False)
    out = od_export_directory(tmp_path / "out", {"old": "old"})
    with publishing(out, overwrite=True) as staging:
        (staging / "new").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new"]
    assert leftovers(tmp_path) == []


def test_existing_output_without_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputError, match="already exists; pass .overwrite."):
        plan_output(tmp_path / "out", overwrite=False)


def test_output_is_readable_by_others(tmp_path):
    with publishing(tmp_path / "out"):
        pass
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask


def test_staging_name_records_owner():
    owned = parse_owned_name(staging_name("my.export-1", "abc_12"))
    assert owned is not None and owned.target == "my.export-1" and owned.pid == os.getpid()
    assert owner_alive(owned) is True


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def fake_leftover(parent: Path, target: str, pid: int, start: int = 0, host: str | None = None, kind: str = STAGING_PREFIX) -> Path:
    from od_export.storage.owners import host_tag

    path = parent / f"{kind}{target}.{pid}.{start}.{host or host_tag()}.zz9"
    (path / "saved_model").mkdir(parents=True)
    (path / "saved_model" / "saved_model.pb").write_bytes(b"half")
    return path


def test_leftovers_of_dead_writers_are_removed_live_and_foreign_ones_kept(tmp_path):
    dead = fake_leftover(tmp_path, "out", dead_pid())
    reused = fake_leftover(tmp_path, "out", os.getpid(), start=1)  # our pid, another start time
    live = fake_leftover(tmp_path, "out", os.getpid(), start=staging_module.parse_owned_name(
        staging_name("x", "y")).start)
    foreign = fake_leftover(tmp_path, "out", 1, host="00000000")
    other_target = fake_leftover(tmp_path, "other", dead_pid())
    with publishing(tmp_path / "out") as staging:
        (staging / "f").write_text("x")
    assert not dead.exists() and not reused.exists()
    assert live.exists() and foreign.exists() and other_target.exists()


def test_export_left_aside_by_a_killed_swap_is_restored(tmp_path):
    retired = fake_leftover(tmp_path, "out", dead_pid(), kind=".od-export-retired-")
    with pytest.raises(OutputError, match="already exists"):
        with publishing(tmp_path / "out"):
            pass
    assert (tmp_path / "out" / "saved_model" / "saved_model.pb").read_bytes() == b"half"
    assert not retired.exists()
    assert parse_owned_name(retired_name("out", "r")).is_retired


def test_output_must_not_touch_the_checkpoint_directory(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for output, relation in ((run, "is the"), (run / "exported", "is inside the"), (tmp_path, "contains the")):
        with pytest.raises(OutputError, match=relation):
            plan_output(output, overwrite=True, sources=[("checkpoint directory", run)])


def test_output_that_is_a_file_or_unwritable(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="exists and is not a directory"):
        plan_output(tmp_path / "file", overwrite=True)
    with pytest.raises(OutputError, match="is not a directory"):
        plan_output(tmp_path / "file" / "out", overwrite=False)
    with pytest.raises(OutputError, match="/proc/x: nothing can be created in /proc"):
        plan_output("/proc/x", overwrite=False)


def test_symlinked_output_replaces_what_it_points_to(tmp_path):
    real = od_export_directory(tmp_path / "exports" / "v1", {"old": "old"})
    link = tmp_path / "current"
    link.symlink_to(real)
    with publishing(link, overwrite=True) as staging:
        (staging / "new").write_text("new")
    assert link.is_symlink() and sorted(p.name for p in real.iterdir()) == ["new"]
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputError, match="which does not exist"):
        plan_output(tmp_path / "dangling", overwrite=True)


def test_names_with_spaces_and_non_ascii(tmp_path):
    target = tmp_path / "my exports" / "détection ü 検出"
    with publishing(target) as staging:
        (staging / "f").write_text("x")
    assert (target / "f").read_text() == "x"
    assert leftovers(target.parent) == []


HOLD_LOCK = """
import sys, time
from od_export.storage.output import plan_output, reserve
with reserve(plan_output(sys.argv[1], False)):
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_second_writer_is_told_busy_or_waits(tmp_path):
    target = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(target), "3"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    with pytest.raises(OutputBusy, match=f"process {holder.pid}"):
        with publishing(target):
            pass
    started = time.monotonic()
    with publishing(target, wait=True) as staging:  # enters once the holder lets go
        assert time.monotonic() - started > 1.0
        (staging / "f").write_text("x")
    assert holder.wait(timeout=20) == 0
    assert (target / "f").exists()


def test_sigterm_mid_write_leaves_nothing(tmp_path):
    script = textwrap.dedent(
        f"""
        import time, pathlib
        from od_export.storage.output import plan_output, reserve, staged_output
        plan = plan_output(pathlib.Path({str(tmp_path / 'out')!r}), False)
        with reserve(plan), staged_output(plan) as staging:
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


FILL_DISK = """
import resource, signal, sys
from od_export.cli import PROG
from od_export.errors import OdExportError
from od_export.storage.output import plan_output, reserve, staged_output
from tests.helpers import od_export_directory
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
plan = plan_output(sys.argv[1], True)
try:
    with reserve(plan), staged_output(plan) as staging:
        (staging / "big").write_bytes(b"x" * 100_000)
except OdExportError as exc:
    print(exc.exit_code, exc.message)
"""


def test_full_disk_is_one_line_naming_the_users_path(tmp_path):
    target = od_export_directory(tmp_path / "out", {"earlier": "intact"})
    result = subprocess.run([sys.executable, "-c", FILL_DISK, str(target)], capture_output=True, text=True, timeout=60)
    code, message = result.stdout.strip().split(" ", 1)
    assert code == "1" and f"cannot write the export to {target}: File too large" in message, result
    assert STAGING_PREFIX not in message
    assert (target / "earlier").read_text() == "intact" and leftovers(tmp_path) == []
