#!/usr/bin/env python
"""The zoo conformance matrix: every published TF2 config × every target, verified or refused.

For each model block in ``tests/fixtures/zoo_tf2`` (``scripts/zoo_configs.py`` writes
them): write a pipeline config (at the published input size, or shrunk with
``--size``), give it demo weights (``od-export demo-checkpoint``), ask
``od-export export``'s checks about each target alone (a refusal is one line, raised
before TensorFlow is imported), then export every target that is not refused in one
``od-export export --keep-going --json`` and read each artifact's verdict and figures.
Keypoint configs get the COCO person keypoint label map a user writes for them.

Results are merged into ``docs/zoo_matrix.json`` (one entry per config, with the size
it was measured at), and the README's target table is regenerated from it:

    .venv/bin/python scripts/zoo_matrix.py --size 256                 # every config, shrunk
    .venv/bin/python scripts/zoo_matrix.py --configs ssd_mobilenet_v2_320x320_coco17_tpu-8
    .venv/bin/python scripts/zoo_matrix.py --table-only               # README from the JSON
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ZOO = REPO / "tests" / "fixtures" / "zoo_tf2"
RESULTS = REPO / "docs" / "zoo_matrix.json"
README = REPO / "README.md"
TARGETS = ("saved_model", "frozen_graph", "onnx", "tensorrt", "tflite", "openvino")
CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
#: The COCO person keypoints in the order of the OD API's ``mscoco_label_map``, as a pose user's label map holds them.
COCO_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                  "right_knee", "left_ankle", "right_ankle")

sys.path.insert(0, str(REPO / "scripts"))
from zoo_table import render_table, replace_table  # noqa: E402


def zoo_names() -> list[str]:
    return sorted(p.stem for p in ZOO.glob("*.config"))


def _load(name: str):
    from google.protobuf import text_format

    from od_export import compat

    compat.import_object_detection()
    config = compat.import_pipeline_proto().TrainEvalPipelineConfig()
    text_format.Merge((ZOO / f"{name}.config").read_text(encoding="utf-8"), config)
    return config


def measured_model(name: str, size: int | None) -> str:
    """The model block as it is measured at ``size``: two configs that give the same text build the same model."""
    from google.protobuf import text_format

    with tempfile.TemporaryDirectory() as tmp:
        config = _load(name)
        _shrink(config, size, Path(tmp))
        model = getattr(config.model, config.model.WhichOneof("model"))
        if config.model.WhichOneof("model") == "center_net":
            model.ClearField("keypoint_label_map_path")
        return text_format.MessageToString(config.model)


def same_as(name: str, size: int | None, results: dict) -> str | None:
    """A config already measured at this size whose model block, so measured, is this one's."""
    mine = measured_model(name, size)
    for other, entry in sorted(results["configs"].items()):
        if other == name or "same_as" in entry:
            continue
        if size is not None and entry.get("measured_size") != [size, size]:
            continue
        if size is None and entry.get("measured_size") != entry.get("published_size"):
            continue
        if measured_model(other, size) == mine:
            return other
    return None


def write_config(name: str, size: int | None, directory: Path) -> tuple[Path, list[int], list[int]]:
    """The model block as a pipeline config (shrunk to ``size`` if given): its path, published and measured size."""
    from google.protobuf import text_format

    config = _load(name)
    published, measured = _shrink(config, size, directory)
    path = directory / "pipeline.config"
    path.write_text(text_format.MessageToString(config), encoding="utf-8")
    return path, published, measured


def _shrink(config, size: int | None, directory: Path) -> tuple[list[int], list[int]]:
    """Set the resizer to ``size`` (where given) and write a keypoint model's label map: published, measured size."""
    model = getattr(config.model, config.model.WhichOneof("model"))
    resizer = model.image_resizer
    kind = resizer.WhichOneof("image_resizer_oneof")
    block = getattr(resizer, kind)
    published = ([block.height, block.width] if kind == "fixed_shape_resizer"
                 else [block.max_dimension, block.max_dimension])
    if size is not None:
        if kind == "fixed_shape_resizer":
            block.height = block.width = size
        else:
            block.min_dimension = block.max_dimension = size
    if config.model.WhichOneof("model") == "center_net" and model.keypoint_estimation_task:
        labels = directory / "keypoint_label_map.pbtxt"
        labels.write_text(_keypoint_label_map(model), encoding="utf-8")
        model.keypoint_label_map_path = str(labels)
    return published, [size, size] if size is not None else published


def _keypoint_label_map(model) -> str:
    classes = dict.fromkeys(task.keypoint_class_name for task in model.keypoint_estimation_task)
    items = []
    for index, name in enumerate(classes, start=1):
        points = "".join(f'  keypoints {{ id: {k} label: "{label}" }}\n' for k, label in enumerate(COCO_KEYPOINTS))
        items.append(f'item {{\n  id: {index}\n  name: "{name}"\n  display_name: "person"\n{points}}}\n')
    return "".join(items)


def refusals(config: Path, run: Path, output: Path) -> dict[str, dict]:
    """Each target asked of export's checks alone: the one-line refusal and how long it took, or nothing."""
    from od_export.errors import OdExportError
    from od_export.exporter import check_request
    from od_export.options import ExportOptions

    import logging

    refused = {}
    logging.getLogger("od_export").setLevel(logging.ERROR)  # the probes' warnings are the export's to give
    for target in TARGETS[2:]:
        started = time.perf_counter()
        try:
            check_request(ExportOptions(pipeline_config=config, checkpoint_dir=run, output_dir=output,
                                        targets=(target,)))
        except OdExportError as exc:
            refused[target] = {"verdict": "refused", "reason": str(exc),
                               "seconds": round(time.perf_counter() - started, 2)}
    return refused


def od_export(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "od_export", *args], capture_output=True, text=True,
                          env=CHILD_ENV, timeout=timeout, cwd=REPO)


def cells_from(result: dict, targets: list[str]) -> dict[str, dict]:
    """Each target's verdict from an export's ``--json`` document: largest check difference, agreement, failures."""
    cells: dict[str, dict] = {}
    unit = result["input_types"][0] if result.get("input_types") else {"checks": {}, "agreement": {}, "artifacts": {}}
    for target in targets:
        def mine(name: str) -> bool:
            return name == target or name.startswith(target + ":")
        checks = {k: v for k, v in unit["checks"].items() if mine(k)}
        failed = [f for f in result.get("failed", []) if mine(str(f.get("artifact", "")))]
        written = any(mine(k) for k in unit["artifacts"]) or target == "saved_model"
        cell = {"verdict": "failed" if failed or not written else "verified"}
        if checks:
            cell["max_abs_diff"] = {artifact: max((d["max_abs_diff"] for d in diffs.values()), default=0.0)
                                    for artifact, diffs in checks.items()}
        agreement = {k: v for k, v in unit["agreement"].items() if mine(k)}
        if agreement:
            cell["agreement"] = agreement
        if failed:
            cell["reason"] = "; ".join(str(f.get("reason", "")) for f in failed)
        cells[target] = cell
    return cells


def run_config(name: str, size: int | None, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="zoo-") as tmp:
        work = Path(tmp)
        config, published, measured = write_config(name, size, work)
        started = time.perf_counter()
        demo = od_export("demo-checkpoint", "--pipeline-config", str(config), "--output-dir", str(work / "run"),
                         timeout=timeout)
        entry = {"published_size": published, "measured_size": measured, "machine": _machine(),
                 "date": time.strftime("%Y-%m-%d")}
        if demo.returncode != 0:
            return {**entry, "error": f"demo-checkpoint {_exit(demo)}"}
        cells = refusals(work / "run" / "pipeline.config", work / "run", work / "export")
        targets = [t for t in TARGETS if t not in cells]
        args = [a for t in targets[2:] for a in ("--target", t)]
        exported = od_export("export", "--pipeline-config", str(work / "run" / "pipeline.config"),
                             "--checkpoint-dir", str(work / "run"), "--output-dir", str(work / "export"),
                             *args, "--keep-going", "--json", "-q", timeout=timeout)
        try:
            result = json.loads(exported.stdout)
        except json.JSONDecodeError:
            return {**entry, "cells": cells, "error": f"export {_exit(exported)}"}
        if "error" in result:  # the export refused or failed as a whole: its one line, not a verdict per target
            message = result["error"]["message"]
            return {**entry, "cells": cells, "error": f"export exit {exported.returncode}: {message}"}
        cells.update(cells_from(result, targets))
        entry.update(cells=cells, seconds=round(time.perf_counter() - started, 1),
                     timings_s=result.get("timings_s", {}))
        return json.loads(json.dumps(entry).replace(str(work), "RUN"))


def refresh_refusals(results: dict) -> None:
    """Each recorded refusal's line as export's checks give it now; a target they no longer refuse is "not run"."""
    for name, entry in sorted(results["configs"].items()):
        refused = [t for t, cell in entry.get("cells", {}).items() if cell["verdict"] == "refused"]
        if not refused:
            continue
        size = entry["measured_size"][0] if entry["measured_size"] != entry["published_size"] else None
        with tempfile.TemporaryDirectory(prefix="zoo-") as tmp:
            run = Path(tmp) / "run"
            run.mkdir()
            config, _, _ = write_config(name, size, run)
            (run / "ckpt-1.index").touch()  # export's checks read the config; the run only has to name one
            now = refusals(config, run, Path(tmp) / "export")
        for target in refused:
            if target in now:
                entry["cells"][target] = now[target]
            else:
                del entry["cells"][target]
                print(f"{name}: {target} is no longer refused; rerun the config", flush=True)


def _published(name: str) -> list[int]:
    with tempfile.TemporaryDirectory() as tmp:
        return _shrink(_load(name), None, Path(tmp))[0]


def _exit(process: subprocess.CompletedProcess) -> str:
    if process.returncode == -9:
        return "killed by the kernel (SIGKILL: out of memory on this machine)"
    return f"exit {process.returncode}: {_last_line(process.stderr)}"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _machine() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else platform.machine()
    return f"{os.cpu_count()} cores, {isa}"


def load_results() -> dict:
    return json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {"configs": {}}


def save_results(results: dict) -> None:
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="*", default=None, help="names in tests/fixtures/zoo_tf2 (default all)")
    parser.add_argument("--size", type=int, default=None, help="square input size (default: the published one)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per od-export call")
    parser.add_argument("--skip-measured", action="store_true", help="leave configs already in the results alone")
    parser.add_argument("--table-only", action="store_true", help="only regenerate the README table")
    parser.add_argument("--refresh-refusals", action="store_true",
                        help="ask export's checks again for every recorded refusal (no export) and record their lines")
    args = parser.parse_args(argv)
    results = load_results()
    if args.refresh_refusals:
        refresh_refusals(results)
        save_results(results)
    for name in ([] if args.table_only else args.configs or zoo_names()):
        if args.skip_measured and name in results["configs"]:
            continue
        twin = same_as(name, args.size, results)
        if twin:  # the same model at this size: its measurement, said to be that config's
            entry = {**results["configs"][twin], "same_as": twin, "published_size": _published(name)}
        else:
            entry = run_config(name, args.size, args.timeout)
        results["configs"][name] = entry
        save_results(results)
        write_table(results)
        print(name, json.dumps({t: c["verdict"] for t, c in entry.get("cells", {}).items()}),
              entry.get("error", ""), f"{entry.get('seconds', '?')} s", flush=True)
    write_table(results)
    return 0


def write_table(results: dict) -> None:
    README.write_text(replace_table(README.read_text(encoding="utf-8"), render_table(results)), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
