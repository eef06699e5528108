"""Remote storage through tf.io.gfile, tested offline on TensorFlow's in-memory ``ram://`` file system.

``ram://`` behaves like an object store where it matters here: "directories" are
name prefixes, and od-export publishes file by file.  Exports are read from and
written to it; an interrupted publication leaves no completion marker; a second
export replaces the first only once it is complete.
"""
from __future__ import annotations

import json
import uuid

import pytest

from od_export import compat
from od_export.cli import main
from od_export.errors import OutputError
from od_export import BuiltModels, export
from od_export.manifest import read_manifest, verify_inventory
from od_export import ExportOptions
from od_export.storage import remote
from od_export.storage.location import RemotePath, location
from od_export.storage.markers import INCOMPLETE_MARKER, MANIFEST_NAME

pytestmark = pytest.mark.integration


def upload_run(local_run) -> RemotePath:
    """Copy a demo training run into a fresh ram:// bucket."""
    gfile = compat.import_tensorflow().io.gfile
    bucket = RemotePath(f"ram://bucket-{uuid.uuid4().hex[:8]}/run")
    gfile.makedirs(str(bucket))
    for path in local_run.iterdir():
        gfile.copy(str(path), str(bucket / path.name))
    return bucket


def test_location_keeps_urls_remote():
    assert isinstance(location("gs://bucket/run/ckpt-5"), RemotePath)
    assert str(location("gs://bucket/run/").parent) == "gs://bucket"
    assert str(location("file:///tmp/x")) == "/tmp/x"


def test_unsupported_scheme_is_one_line_before_any_work(tmp_path, capsys):
    code = main(["export", "--pipeline-config", "nosuch://b/pipeline.config", "--checkpoint-dir", str(tmp_path),
                 "--output-dir", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot open nosuch:// paths" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def ram_export(demo_checkpoint):
    run = upload_run(demo_checkpoint("ssd_mobilenet_v2"))
    target = run.parent / "exported"
    result = export(ExportOptions(str(run / "pipeline.config"), str(run), str(target)))
    return run, target, result


def test_export_from_and_to_ram(ram_export, capsys):
    run, target, result = ram_export
    assert result.output_dir == target and str(result.checkpoint) == str(run / "ckpt-1")
    manifest = read_manifest(target)
    assert manifest and verify_inventory(target, manifest) == []
    assert not (target / INCOMPLETE_MARKER).exists()
    assert manifest["source"]["checkpoint"]["prefix"] == str(run / "ckpt-1")
    assert main(["validate", str(target), "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["manifest"] == "verified" and report["compared"] == 1
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".od-export")] == []


class Interrupt(BaseException):
    """Stands for the process dying half-way (what kill -9 does to a real object store upload)."""


def test_interrupted_publication_leaves_no_marker_then_a_complete_export_replaces_it(ram_export, monkeypatch, capsys):
    run, target, _ = ram_export
    earlier = read_manifest(target)
    moved = []
    real_move = remote._move

    def dying_move(source, destination):
        if len(moved) == 3:
            raise Interrupt()
        moved.append(destination)
        real_move(source, destination)

    # Killed while uploading to the staging prefix: the earlier export is untouched.
    real_upload = remote._upload
    monkeypatch.setattr(remote, "_upload", lambda local, dest: (real_upload(local, dest), (_ for _ in ()).throw(Interrupt())))
    options = ExportOptions(str(run / "pipeline.config"), str(run), str(target), overwrite=True, freeze=False)
    built = BuiltModels()  # the three exports build the model once, as a batch does
    with pytest.raises(Interrupt):
        export(options, built)
    assert read_manifest(target) == earlier and verify_inventory(target, earlier) == []
    monkeypatch.setattr(remote, "_upload", real_upload)

    # Killed while moving files into the target: no manifest, marked incomplete, refused by readers.
    monkeypatch.setattr(remote, "_move", dying_move)
    with pytest.raises(Interrupt):
        export(options, built)
    assert (target / INCOMPLETE_MARKER).exists() and not (target / MANIFEST_NAME).exists()
    for command in (["validate", str(target)], ["inspect", str(target)]):
        assert main([*command, "-q"]) == 2
        assert "unfinished od-export export" in capsys.readouterr().err

    # The next complete export replaces it.
    monkeypatch.setattr(remote, "_move", real_move)
    export(options, built)
    manifest = read_manifest(target)
    assert manifest and verify_inventory(target, manifest) == [] and not (target / INCOMPLETE_MARKER).exists()
    assert sorted(p.name for p in target.iterdir()) == ["checkpoint", "manifest.json", "pipeline.config", "saved_model"]


def test_remote_output_that_exists_needs_overwrite(ram_export):
    run, target, _ = ram_export
    with pytest.raises(OutputError, match="already exists"):
        export(ExportOptions(str(run / "pipeline.config"), str(run), str(target)))
