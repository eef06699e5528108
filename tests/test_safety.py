"""od-export deletes only what it wrote, and every read is bounded.

One test per case of the safety issue: each was reproduced on the code before the fix
(data deleted, a hang, gigabytes of memory, a traceback) and passes only with it.  The
commands run through the real CLI entry point; most are refused before TensorFlow is
imported, so the suite takes seconds.  The property test at the end generates directory
trees and command lines and asserts that no file od-export did not write is ever lost.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from od_export.cli import main
from od_export.errors import InputError, OdExportError, OutputError
from tests.conftest import sample_config
from tests.helpers import od_export_directory

QUIET_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
#: ``od-export`` in a child process.
OD_EXPORT = [sys.executable, "-c", "import sys; from od_export.cli import main; sys.exit(main(sys.argv[1:]))"]


@pytest.fixture(scope="module")
def tiny_graph(tmp_path_factory) -> Path:
    """A frozen graph of one placeholder and one output: ``convert`` wraps it in a SavedModel in about a second."""
    from od_export import compat

    tf = compat.import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        value = tf.compat.v1.placeholder(tf.float32, [1, 4], name="input")
        tf.identity(tf.nn.relu(value) * 2.0, name="scores")
    directory = tmp_path_factory.mktemp("graph")
    tf.io.write_graph(graph.as_graph_def(), str(directory), "frozen_inference_graph.pb", as_text=False)
    return directory / "frozen_inference_graph.pb"


def fake_run(directory: Path, config: str = "ssd_mobilenet_v2") -> Path:
    """A training run as od-export's checks see it: config, label map, checkpoint files (not loadable)."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(sample_config(config), directory / "pipeline.config")
    shutil.copy(sample_config(config).parent / "label_map.pbtxt", directory / "label_map.pbtxt")
    (directory / "ckpt-1.index").write_bytes(b"")
    (directory / "ckpt-1.data-00000-of-00001").write_bytes(b"")
    (directory / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    return directory


def user_files(root: Path, names: tuple[str, ...] = ("notes.txt", "site/index.html")) -> dict[Path, str]:
    """Files a user keeps in ``root``; returns path → content, for :func:`assert_kept`."""
    kept = {}
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"the user's {name}")
        kept[path] = path.read_text()
    return kept


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (links not followed) → sha256, for "nothing changed" checks."""
    found = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory) / name
            if not path.is_symlink():
                found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def assert_kept(files: dict[Path, str]) -> None:
    for path, text in files.items():
        assert path.is_file() and path.read_text() == text, f"{path} was lost"


def cli(capsys, *argv: str) -> tuple[int, list[str]]:
    """``od-export ARGV`` in this process: its exit code and its error lines."""
    capsys.readouterr()
    code = main([*argv, "-q"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, errors


def export_args(run: Path, out: str, *extra: str) -> list[str]:
    return ["export", "--pipeline-config", str(run / "pipeline.config"), "--checkpoint-dir", str(run),
            "--output-dir", out, *extra]


# ---------------------------------------------------------------- 1. an empty output path
def test_empty_output_path_is_refused_and_the_current_directory_kept(tmp_path, capsys, monkeypatch):
    run = fake_run(tmp_path / "run")
    project = tmp_path / "proj"
    kept = user_files(project)
    monkeypatch.chdir(project)
    code, errors = cli(capsys, *export_args(run, "", "--overwrite"))
    assert code == 2 and len(errors) == 1 and "a path is empty" in errors[0]
    assert_kept(kept)


def test_empty_output_in_a_batch_is_refused_and_the_batch_directory_kept(tmp_path, capsys, monkeypatch):
    run = fake_run(tmp_path / "run")
    batch = tmp_path / "jobs" / "batch.yaml"
    kept = user_files(batch.parent)
    batch.write_text(f"jobs:\n  - pipeline_config: {run}/pipeline.config\n    checkpoint_dir: {run}\n"
                     '    output_dir: "${OUT}"\n    overwrite: true\n')
    monkeypatch.setenv("OUT", "")
    for check in (["--check"], []):
        code, errors = cli(capsys, "batch", str(batch), *check)
        assert code == 2 and "output_dir: is empty" in errors[-1]
    assert_kept(kept)


# ---------------------------------------------------------------- 2. --overwrite replaces only an export
def test_overwrite_refuses_a_directory_od_export_did_not_write(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    website = tmp_path / "website"
    kept = user_files(website)
    code, errors = cli(capsys, *export_args(run, str(website), "--overwrite"))
    assert code == 2 and len(errors) == 1 and "is not an od-export export" in errors[0]
    assert "would delete" in errors[0] and "--overwrite replaces only what od-export wrote" in errors[0]
    assert_kept(kept)


def test_overwrite_refuses_an_export_holding_a_file_it_does_not_account_for(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    export = od_export_directory(tmp_path / "exp", {"saved_model/saved_model.pb": "x"})
    kept = user_files(export, ("my_notes.txt",))
    code, errors = cli(capsys, *export_args(run, str(export), "--overwrite"))
    assert code == 2 and "does not account for" in errors[0] and "my_notes.txt" in errors[0]
    assert_kept(kept)


def test_the_same_rule_holds_for_convert_freeze_and_demo_checkpoint(tmp_path, capsys):
    victim = tmp_path / "victim"
    kept = user_files(victim)
    graph = tmp_path / "g" / "frozen_inference_graph.pb"
    graph.parent.mkdir()
    graph.write_bytes(b"")
    meta = tmp_path / "tf1" / "model.ckpt-1.meta"
    meta.parent.mkdir()
    for suffix in (".meta", ".index", ".data-00000-of-00001"):
        meta.with_name("model.ckpt-1" + suffix).write_bytes(b"")
    commands = [
        ["convert", str(graph), "--target", "saved_model", "--output-dir", str(victim), "--overwrite"],
        ["freeze", "--meta-graph", str(meta), "--output-dir", str(victim), "--overwrite"],
        ["demo-checkpoint", "--pipeline-config", str(sample_config("ssd_mobilenet_v2")), "--output-dir", str(victim),
         "--overwrite"],
    ]
    for command in commands:
        code, errors = cli(capsys, *command)
        assert code == 2 and "is not an od-export export" in errors[-1], (command, errors)
    assert_kept(kept)


def test_overwrite_replaces_what_od_export_wrote(tmp_path, capsys, tiny_graph):
    out = tmp_path / "sm"
    for _ in range(2):  # written, then replaced: the second run's manifest is ours and accounts for everything
        code, errors = cli(capsys, "convert", str(tiny_graph), "--target", "saved_model", "--output-dir", str(out),
                           "--overwrite")
        assert code == 0, errors
    assert (out / "saved_model.pb").is_file() and (out / "manifest.json").is_file()


# ---------------------------------------------------------------- 3. "ours" means ours in a batch
def test_a_batch_never_replaces_a_directory_with_someone_elses_manifest(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    webapp = tmp_path / "webapp"
    kept = user_files(webapp, ("manifest.json", "index.html"))
    (webapp / "manifest.json").write_text('{"name": "My App", "start_url": "/", "format": 1}')
    kept[webapp / "manifest.json"] = (webapp / "manifest.json").read_text()
    batch = tmp_path / "batch.yaml"
    batch.write_text(f"jobs:\n  - pipeline_config: {run}/pipeline.config\n    checkpoint_dir: {run}\n"
                     f"    output_dir: {webapp}\n")
    code, errors = cli(capsys, "batch", str(batch), "--check")
    assert code == 2 and "already exists" in errors[-1]
    code, _ = cli(capsys, "batch", str(batch))
    assert code == 1
    assert_kept(kept)


# ---------------------------------------------------------------- 4. exporter_main_v2's spelling
def test_exporter_main_v2_spelling_keeps_unrelated_files(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    existing = tmp_path / "existing_dir"
    kept = user_files(existing)
    code, errors = cli(capsys, "export", "--pipeline_config_path", str(run / "pipeline.config"),
                       "--trained_checkpoint_dir", str(run), "--output_directory", str(existing))
    assert code == 2 and "is not an od-export export" in errors[-1]
    assert_kept(kept)


# ---------------------------------------------------------------- 5. inputs are never inside the output
def test_no_input_may_be_inside_equal_to_or_around_the_output(tmp_path, capsys):
    graph_dir = od_export_directory(tmp_path / "fg", {})  # even a directory od-export wrote
    graph = graph_dir / "frozen_inference_graph.pb"
    graph.write_bytes(b"")
    code, errors = cli(capsys, "convert", str(graph), "--target", "saved_model", "--output-dir", str(graph_dir),
                       "--overwrite")
    assert code == 2 and "contains the frozen graph" in errors[-1] and graph.is_file()

    config_dir = od_export_directory(tmp_path / "configs", {"pipeline.config": sample_config("ssd_mobilenet_v2").read_text()})
    code, errors = cli(capsys, "demo-checkpoint", "--pipeline-config", str(config_dir / "pipeline.config"),
                       "--output-dir", str(config_dir), "--overwrite")
    assert code == 2 and "the pipeline config" in errors[-1] and (config_dir / "pipeline.config").is_file()

    run = fake_run(tmp_path / "run")
    out = od_export_directory(tmp_path / "out", {"label_map.pbtxt": (run / "label_map.pbtxt").read_text()})
    code, errors = cli(capsys, *export_args(run, str(out), "--overwrite", "--label-map", str(out / "label_map.pbtxt")))
    assert code == 2 and "contains the label map" in errors[-1]

    images = out / "calibration"
    images.mkdir()
    code, errors = cli(capsys, *export_args(run, str(out), "--overwrite", "--calibration-images", str(images)))
    assert code == 2 and "calibration images" in errors[-1]


def test_the_checkpoint_directory_is_protected_as_named_and_as_resolved(tmp_path, capsys):
    real = fake_run(tmp_path / "elsewhere" / "train")
    named = tmp_path / "copy"
    named.mkdir()
    shutil.copy(real / "pipeline.config", named)
    (named / "ckpt-9.index").write_bytes(b"")
    (named / "checkpoint").write_text(f'model_checkpoint_path: "{real}/ckpt-1"\n')  # the state file points away
    ours = od_export_directory(tmp_path / "resolved_is_ours", {})
    (ours / "ckpt-1.index").write_bytes(b"")
    (named / "checkpoint").write_text(f'model_checkpoint_path: "{ours}/ckpt-1"\n')
    before = tree_digest(ours)
    code, errors = cli(capsys, *export_args(named, str(ours), "--overwrite"))
    assert code == 2 and "checkpoint directory" in errors[-1] and tree_digest(ours) == before


def test_the_batch_file_is_an_input(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    out = tmp_path / "out"
    batch = out / "batch.yaml"
    out.mkdir()
    batch.write_text(f"jobs:\n  - pipeline_config: {run}/pipeline.config\n    checkpoint_dir: {run}\n    output_dir: .\n")
    code, errors = cli(capsys, "batch", str(batch), "--check")
    assert code == 2 and "contains the batch file" in errors[-1] and batch.is_file()


# ---------------------------------------------------------------- 6. convert keeps what it was not asked about
def test_carry_over_keeps_earlier_tflite_precisions(tmp_path):
    """The file logic of ``convert --target tflite --tflite-precision int8_full --overwrite`` on an export
    with fp32 and int8 (tests/test_tflite.py runs it end to end on a real export)."""
    import json

    from od_export.targets import get_target

    previous, written = tmp_path / "old", tmp_path / "new"
    previous.mkdir(), written.mkdir()
    shared = {"format": "tflite", "architecture": "ssd", "input_size": [64, 64], "normalization": {"mean": [0]}}
    (previous / "io_spec.json").write_text(json.dumps({**shared, "files": {
        "fp32": {"file": "model_fp32.tflite"}, "int8": {"file": "model_int8.tflite"}}}))
    for name in ("model_fp32.tflite", "model_int8.tflite"):
        (previous / name).write_bytes(name.encode())
    (written / "io_spec.json").write_text(json.dumps({**shared, "files": {"int8": {"file": "model_int8.tflite", "new": 1}}}))
    (written / "model_int8.tflite").write_bytes(b"new int8")
    assert get_target("tflite").carry_over(previous, written) == ["fp32"]
    spec = json.loads((written / "io_spec.json").read_text())
    assert set(spec["files"]) == {"fp32", "int8"} and spec["files"]["int8"]["new"] == 1
    assert (written / "model_fp32.tflite").read_bytes() == b"model_fp32.tflite"
    assert (written / "model_int8.tflite").read_bytes() == b"new int8"  # what was asked for is replaced


# ---------------------------------------------------------------- 7. lock files never follow links
@pytest.mark.parametrize("plant", ["symlink", "hardlink"])
def test_a_planted_lock_file_never_damages_its_target(tmp_path, capsys, plant):
    run = fake_run(tmp_path / "run")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    lock = tmp_path / ".od-export-lock-out"
    (lock.symlink_to if plant == "symlink" else lock.hardlink_to)(victim)
    code, errors = cli(capsys, *export_args(run, str(tmp_path / "out")))
    assert code == 2 and "is not an od-export lock file" in errors[-1]
    assert victim.read_text() == "precious" and not (tmp_path / "out").exists()


def test_remote_locks_live_in_a_private_directory(tmp_path, monkeypatch):
    import tempfile

    from od_export.storage.lock import lock_path_for

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = lock_path_for("gs://bucket/run", None)
    assert path.parent.stat().st_mode & 0o777 == 0o700 and path.parent.stat().st_uid == os.geteuid()
    shutil.rmtree(path.parent)
    os.symlink(tmp_path / "elsewhere", path.parent)
    with pytest.raises(OutputError, match="not a private directory"):
        lock_path_for("gs://bucket/run", None)


# ---------------------------------------------------------------- bounded reads and bad input
_MEASURED = ("import re, sys, time\nfrom od_export.cli import main\nstarted = time.perf_counter()\n"
             "try:\n    code = main(sys.argv[1:])\nfinally:\n"
             "    peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
             "    print(time.perf_counter() - started, peak)\n"
             "sys.exit(code)\n")  # VmHWM: this process's peak since exec (ru_maxrss carries the parent's over)


def _timed(argv: list[str], timeout: float = 60) -> tuple[int, float, float, list[str]]:
    """``od-export ARGV`` in a child: exit code, its seconds and peak memory (MB), error lines."""
    result = subprocess.run([sys.executable, "-c", _MEASURED, *argv], capture_output=True, text=True, env=QUIET_ENV,
                            timeout=timeout)
    seconds, peak_kb = result.stdout.split()[-2:]
    return result.returncode, float(seconds), int(peak_kb) / 1024, [l for l in result.stderr.splitlines() if l.strip()]


def test_a_yaml_alias_bomb_is_refused_in_a_second(tmp_path):
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines + ["jobs: [*a8]"]) + "\n")
    assert bomb.stat().st_size < 600
    code, seconds, peak, errors = _timed(["batch", str(bomb), "--check"])
    assert code == 2 and len(errors) == 1 and "aliases expand to more than" in errors[0]
    assert seconds < 2 and peak < 300, (seconds, peak)


@pytest.mark.parametrize("content, fragment", [
    (b"jobs:\n  - \xff\xfe\n", "is not UTF-8 text"),
    (b"jobs: " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply"),
    (b"jobs: &a [*a]\n", "cannot be recursive"),
])
def test_malformed_batch_files_are_bad_input(tmp_path, capsys, content, fragment):
    batch = tmp_path / "batch.yaml"
    batch.write_bytes(content)
    code, errors = cli(capsys, "batch", str(batch), "--check")
    assert code == 2 and len(errors) == 1 and fragment in errors[0]


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_devices_and_fifos_are_refused_as_inputs(tmp_path, capsys, fifo, special):
    source = str(fifo) if special == "fifo" else special
    run = fake_run(tmp_path / "run")
    cases = [
        export_args(run, str(tmp_path / "o1"))[:2] + [source] + export_args(run, str(tmp_path / "o1"))[3:],
        ["batch", source, "--check"],
        export_args(run, str(tmp_path / "o2"), "--label-map", source),
    ]
    for argv in cases:
        started = time.perf_counter()
        code, errors = cli(capsys, *argv)
        assert code == 2 and len(errors) == 1 and "not a regular file" in errors[0], (argv, errors)
        assert time.perf_counter() - started < 5
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


@pytest.mark.timeout(60)
def test_hashing_refuses_a_device_checkpoint_shard(tmp_path):
    from od_export.manifest import checkpoint_files, sha256_of

    run = fake_run(tmp_path / "run")
    shard = run / "ckpt-1.data-00000-of-00001"
    shard.unlink()
    shard.symlink_to("/dev/zero")
    with pytest.raises(InputError, match="is a character device, not a regular file"):
        sha256_of(checkpoint_files(run / "ckpt-1"))
    from od_export import ExportOptions
    from od_export.exporter import check_request

    with pytest.raises(OdExportError, match="checkpoint file .* is a character device"):
        check_request(ExportOptions(run / "pipeline.config", run, tmp_path / "out"))


def test_a_packed_labels_file_that_expands_past_the_cap_is_refused(tmp_path):
    from od_export.targets.tflite_metadata import MAX_PACKED_LABELS_BYTES, _packed_labels

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as packed:
        packed.writestr("labels.txt", b"\n" * (MAX_PACKED_LABELS_BYTES + 1))
    assert len(buffer.getvalue()) < 200_000  # small on disk, large once inflated
    with pytest.raises(ValueError, match="claims"):
        _packed_labels(zipfile.ZipFile(buffer))


def test_an_implausible_saved_model_pb_is_refused_before_parsing(tmp_path):
    export = tmp_path / "export"
    (export / "saved_model" / "variables").mkdir(parents=True)
    with open(export / "saved_model" / "saved_model.pb", "wb") as handle:
        handle.truncate(3 * 2**30)  # sparse: 3 GiB of nothing
    for command in ("inspect", "validate"):
        code, seconds, peak, errors = _timed([command, str(export)])
        assert code == 2 and "over protobuf's 2 GiB limit" in errors[-1], errors
        assert seconds < 2 and peak < 300, (seconds, peak)  # before TensorFlow is imported


@pytest.mark.parametrize("name", [".", "..", "a/b", ""])
def test_triton_model_names_are_directory_names(tmp_path, capsys, name):
    run = fake_run(tmp_path / "run")
    code, errors = cli(capsys, *export_args(run, str(tmp_path / "out"), "--target", "triton", "--triton-model-name", name))
    assert code == 2 and "Triton model name" in errors[-1]


def test_output_paths_the_file_system_refuses_are_bad_input(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for out in (str(tmp_path / ("x" * 300)), str(loop / "out")):
        code, errors = cli(capsys, *export_args(run, out))
        assert code == 2 and len(errors) == 1 and "output" in errors[0], errors


def test_batch_check_refuses_what_the_run_refuses(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    batch = tmp_path / "batch.yaml"
    for output, fragment in ((f"{tmp_path}/a\\0b", "NUL byte"), (f"{run}/exported", "inside the checkpoint directory")):
        batch.write_text(f'jobs:\n  - pipeline_config: {run}/pipeline.config\n    checkpoint_dir: {run}\n'
                         f'    output_dir: "{output}"\n')
        code, errors = cli(capsys, "batch", str(batch), "--check")
        assert code == 2 and fragment in errors[-1], errors


def test_sigterm_before_staging_leaves_no_lock_file(tmp_path):
    run = fake_run(tmp_path / "run")
    out = tmp_path / "out"
    process = subprocess.Popen([*OD_EXPORT, *export_args(run, str(out))],
                               env=QUIET_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lock = tmp_path / ".od-export-lock-out"
    deadline = time.monotonic() + 30
    while not lock.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert lock.exists(), process.stderr.read()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_checkpoint_named_latest_is_refused_in_a_multi_checkpoint_job(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    (run / "latest.index").write_bytes(b"")
    code, errors = cli(capsys, *export_args(run, str(tmp_path / "out"), "--checkpoint", "all"))
    assert code == 2 and "a checkpoint named 'latest'" in errors[-1]
    assert not list(tmp_path.glob("**/.latest.*.tmp"))


def test_convert_never_follows_a_symlink_out_of_the_export(tmp_path, capsys):
    outside = tmp_path / "outside"
    user_files(outside)
    export = od_export_directory(tmp_path / "exp", {"saved_model/saved_model.pb": "x",
                                                     "pipeline.config": sample_config("ssd_mobilenet_v2").read_text()})
    (export / "data").symlink_to(outside)
    code, errors = cli(capsys, "convert", str(export), "--target", "onnx")
    assert code == 2 and "is a symbolic link" in errors[-1]
    assert not any(p.name.startswith(".od-export") for p in tmp_path.iterdir())


# ---------------------------------------------------------------- the property: nothing od-export did not write is lost
SLOTS = ("a", "a/b", "c", "c/d", "e")


@st.composite
def scenario(draw) -> dict:
    """Where the user's files, exports, a web app, a symlink and the inputs lie; which command runs on what."""
    return {
        "user": draw(st.lists(st.sampled_from(SLOTS), unique=True, max_size=3)),
        "export": draw(st.sampled_from((None,) + SLOTS)),
        "export_has_user_file": draw(st.booleans()),
        "webapp": draw(st.sampled_from((None,) + SLOTS)),
        "link": draw(st.sampled_from((None,) + SLOTS)),
        "run": draw(st.sampled_from(SLOTS)),
        "graph": draw(st.sampled_from(SLOTS)),
        "command": draw(st.sampled_from(("export", "convert", "batch", "batch --check", "exporter_main_v2"))),
        "output": draw(st.sampled_from(("", ".", "link", "run", "graph", "new") + SLOTS)),
        "overwrite": draw(st.booleans()),
    }


def _build(root: Path, plan: dict, tiny_graph: Path) -> tuple[Path, Path, Path | None]:
    for slot in SLOTS:
        (root / slot).mkdir(parents=True, exist_ok=True)
    for slot in plan["user"]:
        user_files(root / slot, (f"user-{slot.replace('/', '-')}.txt",))
    if plan["export"]:
        export = od_export_directory(root / plan["export"] / "exp", {"model/file.bin": "weights"})
        if plan["export_has_user_file"]:
            user_files(export, ("added-by-user.txt",))
    if plan["webapp"]:
        user_files(root / plan["webapp"] / "web", ("manifest.json", "index.html"))
    link = None
    if plan["link"]:
        link = root / "link"
        link.symlink_to(root / plan["link"])
    run = fake_run(root / plan["run"] / "run")
    graph = root / plan["graph"] / "graph" / "frozen_inference_graph.pb"
    graph.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_graph, graph)
    return run, graph, link


def _output(root: Path, plan: dict, run: Path, graph: Path, link: Path | None) -> str:
    choice = plan["output"]
    return {"": "", ".": str(root), "link": str(link or root / "e"), "run": str(run), "graph": str(graph.parent),
            "new": str(root / "c" / "new")}.get(choice, str(root / choice / ("exp" if plan["export"] == choice else "")))


def _command(plan: dict, run: Path, graph: Path, output: str, root: Path) -> list[str]:
    overwrite = ["--overwrite"] if plan["overwrite"] else []
    if plan["command"] == "export":
        return export_args(run, output, *overwrite)
    if plan["command"] == "exporter_main_v2":
        return ["export", "--pipeline_config_path", str(run / "pipeline.config"), "--trained_checkpoint_dir", str(run),
                "--output_directory", output]
    if plan["command"] == "convert":
        return ["convert", str(graph), "--target", "saved_model", "--output-dir", output, *overwrite]
    batch = root / "batch.yaml"
    batch.write_text(f'jobs:\n  - pipeline_config: "{run}/pipeline.config"\n    checkpoint_dir: "{run}"\n'
                     f'    output_dir: "{output}"\n    overwrite: {str(bool(overwrite)).lower()}\n')
    return ["batch", str(batch)] + (["--check"] if plan["command"].endswith("--check") else [])


@pytest.mark.integration
def test_no_file_od_export_did_not_write_is_ever_lost(request, tmp_path_factory, tiny_graph, capsys, monkeypatch):
    """Generated trees of user files, exports (some holding a user's file), a web app with its own
    manifest.json, a symlink and the inputs in random places; export, convert and batch (with and without
    overwrite, exporter_main_v2's spelling included) on a random output.  Every file that was there and
    that od-export did not write still exists with its content, whatever the command's outcome."""
    from tests.test_fuzz import fuzz_settings

    base = tmp_path_factory.mktemp("safety_property")

    @fuzz_settings(request, 12)
    @given(scenario())
    def check(plan: dict) -> None:
        root = base / hashlib.sha256(repr(sorted(plan.items())).encode()).hexdigest()[:10]
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        run, graph, link = _build(root, plan, tiny_graph)
        output = _output(root, plan, run, graph, link)
        protected = {path: digest for path, digest in tree_digest(root).items()
                     if not (plan["export"] and path.startswith(f"{plan['export']}/exp/")
                             and "added-by-user" not in path)}  # the files od-export wrote may be replaced
        monkeypatch.chdir(root / "e")
        code, errors = cli(capsys, *_command(plan, run, graph, output, root))
        assert code in (0, 1, 2) and all("Traceback" not in line for line in errors), errors
        after = tree_digest(root)
        lost = {path for path, digest in protected.items() if after.get(path) != digest}
        assert not lost, (plan, code, errors, sorted(lost))

    check()
