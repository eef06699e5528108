"""Property-based fuzzing of everything a user hands od-export: configs, checkpoint directories, arguments.

The property is the README's promise: never a traceback; exit 2 with one line for
bad input, exit 1 with one line for a failure, exit 0 with a complete export, and
nothing written on any failure.  Runs are seeded (``derandomize``) and bounded;
``--fuzz-examples N`` runs N examples per property instead (a longer hunt).
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from od_export.cli import main
from od_export.errors import ConfigError
from od_export.manifest import read_manifest, verify_inventory
from od_export.source.pipeline_config import MAX_CONFIG_BYTES, parse_pipeline_config
from tests.conftest import sample_config

SAMPLE_TEXT = sample_config("ssd_mobilenet_v2").read_text()
SAMPLE_LINES = SAMPLE_TEXT.splitlines()
HOSTILE_NUMBERS = ["-1", "0", "1e30", "-1e30", "nan", "inf", "2147483648", "99999999999999999999", "0.0001", "abc", '"3"']


def fuzz_settings(request: pytest.FixtureRequest, default: int):
    examples = request.config.getoption("--fuzz-examples") or default
    return settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


@st.composite
def mutated_config(draw) -> bytes:
    """The sample config with one hostile edit, as bytes."""
    kind = draw(st.sampled_from(["delete", "duplicate", "swap", "number", "architecture", "truncate", "garbage",
                                 "wrong_type"]))
    lines = list(SAMPLE_LINES)
    index = draw(st.integers(0, len(lines) - 1))
    if kind == "delete":
        del lines[index]
    elif kind == "duplicate":
        lines.insert(index, lines[index])
    elif kind == "swap":
        other = draw(st.integers(0, len(lines) - 1))
        lines[index], lines[other] = lines[other], lines[index]
    elif kind == "number":
        numbered = [i for i, line in enumerate(lines) if any(c.isdigit() for c in line.split("#")[0])]
        index = draw(st.sampled_from(numbered))
        head, _, value = lines[index].rpartition(":")
        if head and value.strip() and value.strip()[0] in "-0123456789":
            lines[index] = f"{head}: {draw(st.sampled_from(HOSTILE_NUMBERS))}"
    elif kind == "architecture":
        lines = [line.replace("ssd {", draw(st.sampled_from(["yolo {", "ssdx {", "faster_rcnn {", "{"])), 1)
                 for line in lines]
    elif kind == "wrong_type":
        lines[index] = lines[index].split(":")[0] + ': { nested: "value" }' if ":" in lines[index] else lines[index] + " 7"
    text = "\n".join(lines).encode()
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=2000))
    return text


def assert_one_line_outcome(code: int, err: str, out: Path, allowed: tuple[int, ...]) -> None:
    lines = [line for line in err.splitlines() if line.strip() and "warning" not in line]
    assert "Traceback" not in err, err
    assert code in allowed, err
    if code == 0:
        manifest = read_manifest(out)
        assert manifest is not None and verify_inventory(out, manifest) == []
    else:
        assert len(lines) == 1 and lines[0].startswith("od-export: error: "), err
        assert "rerun with -v" not in lines[0], f"an unexpected exception reached the CLI: {lines[0]}"
        assert not out.exists()
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(".od-export-")]
    assert leftovers == [], leftovers


def export_and_check(config: Path, checkpoint_dir: Path, out: Path, capsys) -> None:
    """One export of fuzzed input, held to the one-line, nothing-written promise (bad input: exit 2)."""
    code = main(["export", "--pipeline-config", str(config), "--checkpoint-dir", str(checkpoint_dir),
                 "--output-dir", str(out), "--no-freeze", "-q"])
    assert_one_line_outcome(code, capsys.readouterr().err, out, (0, 2))


def test_config_parsing_never_raises_anything_but_config_error(request):
    @fuzz_settings(request, 300)
    @given(mutated_config())
    def check(data: bytes) -> None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return  # read_text refuses it (covered end to end below)
        try:
            parse_pipeline_config(text, "fuzzed.config")
        except ConfigError as exc:
            assert "\n" not in exc.message

    check()


@pytest.mark.integration
def test_mutated_configs_end_to_end(request, demo_checkpoint, tmp_path_factory, capsys):
    run = demo_checkpoint("ssd_mobilenet_v2")
    base = tmp_path_factory.mktemp("fuzz_configs")

    @fuzz_settings(request, 4)
    @given(mutated_config())
    def check(data: bytes) -> None:
        work = base / uuid.uuid4().hex[:8]
        work.mkdir()
        (work / "pipeline.config").write_bytes(data)
        export_and_check(work / "pipeline.config", run, work / "out", capsys)
        shutil.rmtree(work)

    check()


@pytest.mark.integration
def test_huge_config_is_refused_unread(tmp_path, capsys):
    huge = tmp_path / "huge.config"
    with huge.open("wb") as handle:
        handle.truncate(MAX_CONFIG_BYTES + 1)  # sparse: costs no disk
    code = main(["export", "--pipeline-config", str(huge), "--checkpoint-dir", str(tmp_path),
                 "--output-dir", str(tmp_path / "out"), "-q"])
    assert code == 2 and "far larger than any pipeline config" in capsys.readouterr().err


@st.composite
def damaged_run(draw) -> list[tuple[str, object]]:
    """Edits to a copy of a real training run: truncations, garbage state files, symlink loops."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate_index", "truncate_data", "garbage_state", "state_names_other",
                                     "symlink_loop", "empty_data", "remove_index"]))
        edits.append((kind, draw(st.floats(0.0, 0.95))))
    return edits


def apply_edits(run: Path, edits) -> None:
    for kind, fraction in edits:
        index, data = run / "ckpt-1.index", run / "ckpt-1.data-00000-of-00001"
        if kind in ("truncate_index", "truncate_data") and (index if kind == "truncate_index" else data).exists():
            target = index if kind == "truncate_index" else data
            target.write_bytes(target.read_bytes()[: int(target.stat().st_size * fraction)])
        elif kind == "garbage_state":
            (run / "checkpoint").write_bytes(os.urandom(int(64 * fraction) + 1))
        elif kind == "state_names_other":
            (run / "checkpoint").write_text('model_checkpoint_path: "../elsewhere/ckpt-1"\n')
        elif kind == "symlink_loop":
            for name in ("loop-a", "loop-b"):
                if not (run / name).is_symlink():
                    (run / name).symlink_to(run / ("loop-b" if name == "loop-a" else "loop-a"))
            if not (run / "ckpt-2.index").is_symlink():
                (run / "ckpt-2.index").symlink_to(run / "loop-a")
        elif kind == "empty_data" and data.exists():
            data.write_bytes(b"")
        elif kind == "remove_index" and index.exists():
            index.unlink()


@pytest.mark.integration
def test_damaged_checkpoint_directories_end_to_end(request, demo_checkpoint, tmp_path_factory, capsys):
    source = demo_checkpoint("ssd_mobilenet_v2")
    base = tmp_path_factory.mktemp("fuzz_runs")

    @fuzz_settings(request, 3)
    @given(damaged_run())
    def check(edits) -> None:
        run = base / uuid.uuid4().hex[:8]
        shutil.copytree(source, run)
        apply_edits(run, edits)
        out = base / f"{run.name}-out"
        export_and_check(sample_config("ssd_mobilenet_v2"), run, out, capsys)
        shutil.rmtree(run)
        shutil.rmtree(out, ignore_errors=True)

    check()


FLAGS = ["--pipeline-config", "--checkpoint-dir", "--output-dir", "--input-type", "--checkpoint", "--config-override",
         "--signature-key", "--frozen-format", "--side-input-shapes", "--side-input-types", "--side-input-names",
         "--use-side-inputs", "--overwrite", "--no-freeze", "--wait", "--json", "-q", "--bogus"]  # -v asks for tracebacks
VALUES = ["", "x", "-1", "image_tensor", "jpeg", "pb", "ckpt-3", "1,-1,4", "float32", "model { ssd { } }",
          "/proc/x", "/dev/null", "nosuch://b/c", "gs:/", "é ü 検", "\x00", "pipeline_samples/ssd_mobilenet_v2.config"]


def test_random_command_lines(request, tmp_path_factory, capsys):
    @fuzz_settings(request, 150)
    @given(st.lists(st.one_of(st.sampled_from(FLAGS), st.sampled_from(VALUES)), max_size=12),
           st.sampled_from(["export", "inspect", "validate", "demo-checkpoint", "nonsense"]))
    def check(argv: list[str], command: str) -> None:
        workdir = tmp_path_factory.mktemp("argv")
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            try:
                code = main([command, *argv])
            except SystemExit as exc:  # argparse's own usage errors and --help
                code = exc.code
        finally:
            os.chdir(cwd)
        err = capsys.readouterr().err
        assert "Traceback" not in err and code in (0, 1, 2), (argv, err)
        if code:
            assert len([line for line in err.splitlines() if line.startswith("od-export: error:")]) == 1, err
        assert list(workdir.iterdir()) == [], (argv, list(workdir.iterdir()))

    check()
