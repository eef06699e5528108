"""Every checkpoint layout a training run or the model zoo leaves behind."""
from pathlib import Path

import pytest

from od_export.source.checkpoints import resolve_checkpoint
from od_export.errors import CheckpointError


def make_checkpoints(directory: Path, *numbers: int, state: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (directory / f"ckpt-{n}.index").write_bytes(b"")
        (directory / f"ckpt-{n}.data-00000-of-00001").write_bytes(b"")
    if state is not None:
        (directory / "checkpoint").write_text(
            f'model_checkpoint_path: "{state}"\nall_model_checkpoint_paths: "{state}"\n'
        )
    return directory


def test_state_file_picks_latest(tmp_path):
    run = make_checkpoints(tmp_path / "run", 1, 2, 10, state="ckpt-2")
    resolved = resolve_checkpoint(run)
    assert resolved.prefix == run / "ckpt-2"
    assert resolved.note == ""
    assert resolved.available == ("ckpt-1", "ckpt-2", "ckpt-10")


def test_missing_state_file_uses_highest_number_and_says_so(tmp_path):
    run = make_checkpoints(tmp_path / "run", 2, 10, 9)
    resolved = resolve_checkpoint(run)
    assert resolved.prefix == run / "ckpt-10"  # numeric, not lexical, order
    assert "no `checkpoint` state file" in resolved.note and "ckpt-10" in resolved.note


def test_zoo_layout_descends_into_checkpoint_folder(tmp_path):
    model = tmp_path / "ssd_zoo"
    make_checkpoints(model / "checkpoint", 0, state="ckpt-0")
    (model / "pipeline.config").write_text("")
    assert resolve_checkpoint(model).prefix == model / "checkpoint" / "ckpt-0"


def test_explicit_prefix_and_names(tmp_path):
    run = make_checkpoints(tmp_path / "run", 1, 2, 3, state="ckpt-3")
    assert resolve_checkpoint(run / "ckpt-1").prefix == run / "ckpt-1"
    assert resolve_checkpoint(run / "ckpt-1.index").prefix == run / "ckpt-1"
    assert resolve_checkpoint(run, "ckpt-2").prefix == run / "ckpt-2"
    assert resolve_checkpoint(run, "2").prefix == run / "ckpt-2"
    assert resolve_checkpoint(tmp_path, str(run / "ckpt-1")).prefix == run / "ckpt-1"


def test_state_file_naming_missing_checkpoint_lists_present_ones(tmp_path):
    run = make_checkpoints(tmp_path / "run", 4, 5, state="ckpt-9")
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint(run)
    message = info.value.message
    assert "ckpt-9" in message and "ckpt-4, ckpt-5" in message and "'checkpoint' ckpt-5" in message


def test_state_file_with_absolute_path_from_another_machine(tmp_path):
    run = make_checkpoints(tmp_path / "run", 7, state="/home/someone/train/ckpt-7")
    resolved = resolve_checkpoint(run)
    assert resolved.prefix == run / "ckpt-7"
    assert "elsewhere" in resolved.note


@pytest.mark.parametrize(
    "setup, choice, fragment",
    [
        (lambda p: p / "nope", "latest", "does not exist"),
        (lambda p: make_checkpoints(p / "empty"), "latest", "no checkpoint"),
        (lambda p: make_checkpoints(p / "run", 1), "ckpt-8", "checkpoints present: ckpt-1"),
    ],
)
def test_errors(tmp_path, setup, choice, fragment):
    with pytest.raises(CheckpointError, match=fragment) as info:
        resolve_checkpoint(setup(tmp_path), choice)
    assert info.value.exit_code == 2


def test_a_file_that_is_not_a_checkpoint(tmp_path):
    stray = tmp_path / "notes.txt"
    stray.write_text("x")
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        resolve_checkpoint(stray)
