"""Accuracy, latency and size of every artifact of the trained demo run, and what `od-export benchmark` costs.

    .venv/bin/python scripts/bench_benchmark.py [--images 200] [--repeats 3] [--picture docs/benchmark_map_latency.png]

1. Exports ``tests/fixtures/trained_ssd`` (ckpt-5) with every target: frozen graph,
   ONNX, TensorRT file, TFLite fp32/fp16/int8/int8_full, OpenVINO fp32; and a copy
   converted to OpenVINO int8 (NNCF).  int8 files calibrate on the run's training
   records (100 images drawn from ``data/train.record``).
2. The same export made from a copy of the run without ``train.record``: its int8
   files calibrate on synthetic images, to show what the run's own data is worth.
3. ``od-export benchmark`` of each on ``--images`` eval images: the table in the README.
4. Overhead: ``benchmark()`` on 100 images, ``--repeats`` times, in one process with
   TensorFlow and the OD API already imported; each run's wall time against its
   artifacts' own time (load, warm-up, inference) plus the evaluator's.  Medians.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
TRAINED = REPO / "tests" / "fixtures" / "trained_ssd"
#: The benchmark reports agreement and mAP; the exports refuse nothing for agreement here.
ANY_AGREEMENT = (("bf16", 0.0), ("fp16", 0.0), ("int8", 0.0))


def make_exports(run: Path, scratch: Path, tag: str) -> Path:
    """The run exported with every target, plus OpenVINO int8 converted into the same export's copy."""
    import od_export
    from od_export.options import ConversionOptions
    from od_export.targets.tflite import TFLITE_PRECISIONS

    out = scratch / f"export-{tag}"
    conversion = ConversionOptions.of(tflite_precisions=TFLITE_PRECISIONS, min_agreement=ANY_AGREEMENT)
    od_export.export(od_export.ExportOptions(run / "pipeline.config", run, out,
                                             targets=("onnx", "tensorrt", "tflite", "openvino"), conversion=conversion))
    int8 = scratch / f"export-{tag}-ov8"
    shutil.copytree(out, int8, ignore=shutil.ignore_patterns("openvino", "tflite", "onnx", "tensorrt", "frozen_graph"))
    od_export.convert(od_export.ConvertOptions(int8, ("openvino",), conversion=ConversionOptions.of(
        openvino_precision="int8", min_agreement=ANY_AGREEMENT)))
    return out


def rows(export_dir: Path, images: int) -> list[dict]:
    from od_export.benchmark import BenchmarkOptions, DataSource, benchmark

    result = benchmark(BenchmarkOptions(export_dir, DataSource(max_images=images)))
    return result.to_dict()["artifacts"]


def overhead(export_dir: Path, repeats: int) -> dict:
    from od_export.benchmark import BenchmarkOptions, DataSource, benchmark

    ratios, walls, own = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        result = benchmark(BenchmarkOptions(export_dir, DataSource(max_images=100)))
        wall = time.perf_counter() - started
        baseline = result.artifact_seconds + result.evaluator_seconds
        ratios.append(wall / baseline)
        walls.append(wall)
        own.append(baseline)
    return {"images": 100, "repeats": repeats, "wall_s_median": round(statistics.median(walls), 2),
            "artifacts_plus_evaluator_s_median": round(statistics.median(own), 2),
            "ratio_median": round(statistics.median(ratios), 3), "ratios": [round(r, 3) for r in ratios]}


def markdown(table: list[dict], synthetic: dict[str, dict]) -> str:
    lines = ["| artifact | runtime | size | load s | ms/image median | p90 | mAP | mAP@.5 | AR@100 | ΔmAP | "
             "mAP, synthetic calibration |", "|" + "---|" * 11]
    for row in table:
        other = synthetic.get(row["artifact"])
        calibrated = f"{other['map']:.3f}" if other and "int8" in row["artifact"] else ""
        lines.append(f"| {row['artifact']} | {row['runtime']} | {row['size_bytes'] / 1e6:.2f} MB | "
                     f"{row['load_seconds']:.2f} | {row['latency_ms']['median']:.1f} | {row['latency_ms']['p90']:.1f} | "
                     f"{row['map']:.3f} | {row['map50']:.3f} | {row['ar100']:.3f} | {-row['map_drop'] + 0.0:+.3f} | "
                     f"{calibrated} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--picture", type=Path, help="copy the mAP-against-latency plot here")
    args = parser.parse_args()
    from od_export import compat

    compat.import_object_detection()
    with tempfile.TemporaryDirectory(prefix="od-export-bench-") as scratch:
        scratch = Path(scratch)
        run = scratch / "run"
        shutil.copytree(TRAINED, run)
        bare = scratch / "run-without-train-record"
        shutil.copytree(TRAINED, bare, ignore=shutil.ignore_patterns("train.record"))
        exported = make_exports(run, scratch, "records")
        synthetic_export = make_exports(bare, scratch, "synthetic")
        table = rows(exported, args.images) + rows(Path(f"{exported}-ov8"), args.images)[1:]
        if args.picture:
            shutil.copy(exported / "benchmark" / "map_latency.png", args.picture)
        synthetic = {r["artifact"]: r for r in rows(synthetic_export, args.images) +
                     rows(Path(f"{synthetic_export}-ov8"), args.images)[1:]}
        report = {"images": args.images, "artifacts": table, "synthetic_calibration": synthetic,
                  "overhead": overhead(exported, args.repeats)}
    print(json.dumps(report, indent=2))
    print()
    print(markdown(table, synthetic))
    cost = report["overhead"]
    print(f"\nbenchmark on 100 images: {cost['wall_s_median']} s wall against {cost['artifacts_plus_evaluator_s_median']} s "
          f"of inference, loading and evaluation: {cost['ratio_median']}x (median of {cost['repeats']})")


if __name__ == "__main__":
    main()
