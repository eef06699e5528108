"""Shared fixtures: demo checkpoints and exports are built once per session.

Integration tests run the real TensorFlow and OD API on the small models in
``pipeline_samples/``; checkpoints come from ``od-export demo-checkpoint`` (seeded,
with batch-norm statistics recalibrated so that detections are not degenerate).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from od_export.options import INPUT_TYPES

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "pipeline_samples"
#: Every TF2 sample config is tested (some matrices only with --exhaustive); adding one to pipeline_samples/ adds it here.  The TF1
#: (slim) sample goes through the OD API's TF1 exporter and has its own tests (test_tf1_od_api.py).
ARCHITECTURES = tuple(sorted(p.stem for p in SAMPLES.glob("*.config") if not p.stem.endswith("_tf1")))
ALL_INPUT_TYPES = INPUT_TYPES


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fuzz-examples", type=int, default=0,
                     help="examples per fuzzing property (default: a small seeded run)")
    parser.addoption("--exhaustive", action="store_true",
                     help="also run the slow matrices (demo checkpoints of every sample at its model-zoo size)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``exhaustive`` (more of a matrix the default run already samples) need --exhaustive."""
    if config.getoption("--exhaustive"):
        return
    skip = pytest.mark.skip(reason="more of a matrix the default run samples; run with --exhaustive")
    for item in items:
        if "exhaustive" in item.keywords:
            item.add_marker(skip)


def sample_config(name: str) -> Path:
    return SAMPLES / f"{name}.config"


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """One directory for the whole run.  Under pytest-xdist each worker's base temp is a
    sibling inside the run's own directory, so the workers share this one: what
    :func:`built_once` builds there (demo checkpoints, exports) is built by one worker and
    read back by the other.  Tests only ever write below it under names of their own."""
    base = tmp_path_factory.getbasetemp()
    path = (base if worker_id == "master" else base.parent) / "od_export_shared"
    path.mkdir(exist_ok=True)
    return path


def built_once(workspace: Path, name: str, build):
    """``build()``, run by the first worker of the run that asks for ``name``; the others wait
    for it and read its (pickled) result.  A build that raises leaves nothing: the next asker
    tries again and sees the same error."""
    import fcntl
    import pickle

    key = name.replace("/", "__")
    done = workspace / f".{key}.pickle"
    with open(workspace / f".{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return pickle.loads(done.read_bytes())
        result = build()
        staged = done.with_suffix(".partial")
        staged.write_bytes(pickle.dumps(result))
        staged.replace(done)
        return result


@pytest.fixture(scope="session")
def demo_checkpoint(workspace: Path):
    """``demo_checkpoint(name)`` → a training-style run directory, created once per name."""
    from od_export import DemoCheckpointOptions, create_demo_checkpoint

    cache: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in cache:
            cache[name] = built_once(workspace, f"runs/{name}", lambda: create_demo_checkpoint(
                DemoCheckpointOptions(sample_config(name), workspace / "runs" / name)).output_dir)
        return cache[name]

    return make


@pytest.fixture(scope="session")
def training_run(workspace: Path):
    """``training_run(name, numbers)`` → a run directory with ckpt-N for each number, each with its own weights."""
    import shutil

    from od_export import DemoCheckpointOptions, create_demo_checkpoint

    cache: dict[tuple[str, tuple[int, ...]], Path] = {}

    def build(name: str, numbers: tuple[int, ...]) -> Path:
        run = workspace / "training_runs" / f"{name}-{'-'.join(map(str, numbers))}"
        run.mkdir(parents=True, exist_ok=True)
        for number in numbers:  # seeded by number: every checkpoint has different weights
            demo = create_demo_checkpoint(DemoCheckpointOptions(
                sample_config(name), workspace / "training_runs" / f".{name}-{number}", seed=number,
                checkpoint_number=number, overwrite=True))
            for path in demo.output_dir.iterdir():
                if path.name.startswith(f"ckpt-{number}.") or path.name in ("pipeline.config", "checkpoint"):
                    shutil.copy(path, run / path.name)
            shutil.rmtree(demo.output_dir)
        return run

    def make(name: str, numbers: tuple[int, ...] = (1, 2, 3)) -> Path:
        key = (name, numbers)
        if key not in cache:
            cache[key] = built_once(workspace, f"training_runs/{name}-{'-'.join(map(str, numbers))}",
                                    lambda: build(name, numbers))
        return cache[key]

    return make


#: The converter targets each sample architecture supports (the others are refused in one line).
CONVERTER_TARGETS = {
    "ssd_mobilenet_v2": ("onnx", "tensorrt"),
    "ssd_mobilenet_v2_fpnlite": ("onnx", "tensorrt"),
    "efficientdet_d0": ("onnx", "tensorrt"),
    "centernet_mobilenet_v2_fpn": ("onnx", "tensorrt"),
    "faster_rcnn_resnet50": ("onnx", "tensorrt"),
}
#: The edge targets each sample gets in ``deploy_export`` (TFLite in every precision).  Faster R-CNN has no
#: TFLite path; its OpenVINO IR verifies since per-proposal outputs are paired (the zoo matrix checks it).
DEPLOY_TARGETS = {
    "ssd_mobilenet_v2": ("tflite", "openvino"),
    "ssd_mobilenet_v2_fpnlite": ("openvino",),  # its TFLite file takes the same SSD path as ssd_mobilenet_v2
    "efficientdet_d0": ("openvino",),
    "centernet_mobilenet_v2_fpn": ("tflite", "openvino"),
}
#: The samples carry random (if calibrated) weights: their scores crowd together, so any
#: rounding reshuffles which detections make the list.  Their int8 files find 0.15-0.65 of
#: the SavedModel's detections (scripts/bench_deploy.py; a trained model keeps far more), so
#: the tests ask only that reduced-precision files find some of them; the tampered-file
#: tests show that a broken file finds none.
SAMPLE_MIN_AGREEMENT = 0.05
#: That threshold for every reduced precision, as options and as command-line arguments.
SAMPLE_THRESHOLDS = tuple((precision, SAMPLE_MIN_AGREEMENT) for precision in ("bf16", "fp16", "int8"))
SAMPLE_THRESHOLD_ARGS = tuple(arg for precision, value in SAMPLE_THRESHOLDS
                              for arg in ("--min-agreement", f"{precision}={value}"))


@pytest.fixture(scope="session")
def target_export(workspace: Path, demo_checkpoint):
    """``target_export(name)`` → an image_tensor export with every converter target the model supports."""
    from od_export import ExportOptions, export

    cache: dict[str, object] = {}

    def make(name: str):
        if name not in cache:
            run = demo_checkpoint(name)
            cache[name] = built_once(workspace, f"target_exports/{name}", lambda: export(ExportOptions(
                run / "pipeline.config", run, workspace / "target_exports" / name, targets=CONVERTER_TARGETS[name],
                validate=True)))
        return cache[name]

    return make


@pytest.fixture(scope="session")
def deploy_export(workspace: Path, demo_checkpoint):
    """``deploy_export(name)`` → an image_tensor export (no frozen graph) with the TFLite and OpenVINO targets."""
    from od_export import ExportOptions, export
    from od_export.options import ConversionOptions

    cache: dict[str, object] = {}

    def make(name: str):
        if name not in cache:
            run = demo_checkpoint(name)
            conversion = ConversionOptions.of(tflite_precisions=("fp32", "fp16", "int8"), min_agreement=SAMPLE_THRESHOLDS)
            cache[name] = built_once(workspace, f"deploy_exports/{name}", lambda: export(ExportOptions(
                run / "pipeline.config", run, workspace / "deploy_exports" / name, targets=DEPLOY_TARGETS[name],
                freeze=False, validate=True, conversion=conversion)))
        return cache[name]

    return make


TRAINED = REPO / "tests" / "fixtures" / "trained_ssd"
needs_trained = pytest.mark.skipif(not (TRAINED / "checkpoint").is_file(),
                                   reason="no trained fixture (scripts/train_demo.py makes it)")


@pytest.fixture(scope="session")
def trained_export(workspace: Path) -> Path:
    """The trained run exported with every converter target, TFLite in every precision (not verified:
    the benchmark runs each).  The benchmark tests add their ``benchmark/`` folder to it."""
    from od_export import ExportOptions, export
    from od_export.options import ConversionOptions
    from od_export.targets.tflite import TFLITE_PRECISIONS

    out = workspace / "trained_export"
    built_once(workspace, "trained_export", lambda: export(ExportOptions(
        TRAINED / "pipeline.config", TRAINED, out, targets=("onnx", "tensorrt", "tflite", "openvino"),
        conversion=ConversionOptions.of(tflite_precisions=TFLITE_PRECISIONS))))
    return out


@pytest.fixture(scope="session")
def exported(workspace: Path, demo_checkpoint):
    """``exported(name, input_types)`` → ExportResult, exported once per (name, types)."""
    from od_export import export
    from od_export import ExportOptions

    cache: dict[tuple[str, tuple[str, ...]], object] = {}

    def make(name: str, input_types: tuple[str, ...]):
        key = (name, input_types)
        if key not in cache:
            run = demo_checkpoint(name)
            folder = f"exports/{name}-{'-'.join(input_types)}"
            cache[key] = built_once(workspace, folder, lambda: export(ExportOptions(
                run / "pipeline.config", run, workspace / folder, input_types=input_types)))
        return cache[key]

    return make

