"""The benchmark's pictures: mAP against latency, precision-recall curves, and a self-contained HTML page."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from od_export.benchmark.data import EvalImage
from od_export.benchmark.report import BenchmarkResult, format_table

#: Detections drawn in the image grid score at least this much.
DRAW_THRESHOLD = 0.3


def _pyplot():  # noqa: ANN202 - matplotlib's module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def map_latency_plot(result: BenchmarkResult, path: Path) -> Path:
    """One point per artifact: median latency per image (x) against COCO mAP (y)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=110)
    for number, row in enumerate(r for r in result.rows if r.coco is not None):
        axes.scatter(row.run.median_ms, row.coco.map, s=40)
        axes.annotate(row.label, (row.run.median_ms, row.coco.map), textcoords="offset points",
                      xytext=(5, 4 if number % 2 == 0 else -11), fontsize=8)  # alternate, so neighbours stay legible
    axes.set_xlabel("median latency per image (ms, this machine)")
    axes.set_ylabel("COCO mAP@[.5:.95]")
    axes.set_title(f"mAP against latency ({result.images} images)")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def pr_curves_plot(result: BenchmarkResult, path: Path) -> Path:
    """Precision against recall at IoU 0.5 (averaged over classes), one curve per artifact."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=110)
    for row in (r for r in result.rows if r.coco is not None and r.coco.recall):
        axes.plot(row.coco.recall, row.coco.precision, label=f"{row.label} (AP@.5 {row.coco.map50:.3f})", linewidth=1.2)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_title("precision-recall at IoU 0.5, mean over classes")
    axes.legend(fontsize=7, loc="lower left")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def groundtruth_outputs(image: EvalImage, rows: int = 100) -> dict[str, np.ndarray]:
    """The ground truth in the SavedModel's conventions (score 1), padded to ``rows``, for drawing."""
    count = len(image.boxes)
    boxes = np.zeros((1, max(rows, count), 4), np.float32)
    scores = np.zeros((1, max(rows, count)), np.float32)
    classes = np.zeros((1, max(rows, count)), np.float32)
    boxes[0, :count], scores[0, :count], classes[0, :count] = image.boxes, 1.0, image.classes
    return {"detection_boxes": boxes, "detection_scores": scores, "detection_classes": classes,
            "num_detections": np.array([count], np.float32)}


def detection_grid(result: BenchmarkResult, images: list[EvalImage], names: dict[int, str], count: int,
                   directory: Path) -> list[Path]:
    """For the first ``count`` images, the ground truth and each artifact's detections, marked against it."""
    from od_export.verify.drawing import save_side_by_side

    chosen = images[:count]
    truth = [groundtruth_outputs(image) for image in chosen]
    columns = [("ground truth", truth, [])]
    columns += [(row.label, row.run.detections[:count], truth) for row in result.rows if not row.run.error]
    return save_side_by_side(directory, "benchmark", [i.pixels for i in chosen], [str(i.image_id) for i in chosen],
                             columns, names, DRAW_THRESHOLD, suffix=".jpg")


def _embedded(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    kind = "jpeg" if path.suffix == ".jpg" else "png"
    return f'<img alt="{html.escape(alt)}" src="data:image/{kind};base64,{data}" style="max-width:100%">'


def write_html(result: BenchmarkResult, plots: list[Path], grid: list[Path], path: Path) -> Path:
    """``benchmark.html``: the table, the plots and the image grid, every picture inlined."""
    parts = ["<!doctype html><meta charset='utf-8'><title>od-export benchmark</title>",
             "<style>body{font-family:sans-serif;margin:2em}pre{background:#f6f6f6;padding:1em}</style>",
             f"<h1>Benchmark of {html.escape(result.export_dir)}</h1>",
             f"<pre>{html.escape(format_table(result))}</pre>", "<h2>mAP against latency, precision-recall</h2>"]
    parts += [_embedded(p, p.stem) for p in plots]
    parts.append(f"<h2>Detections (score above {DRAW_THRESHOLD:g}) beside the ground truth</h2>"
                 "<p>Solid: a detection that matches a ground-truth box of its class; <em>extra</em>: one that does "
                 "not; dashed grey: a ground-truth box the artifact missed.</p>")
    parts += [_embedded(p, p.stem) for p in grid]
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
