"""A benchmark's rows, its gates, its table and its JSON document."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from od_export.benchmark.coco import CocoResult
from od_export.benchmark.timing import WARMUP_RUNS, ArtifactRun


@dataclass(frozen=True)
class Gates:
    """Floors an artifact must reach: COCO mAP@[.5:.95], and its drop below its unit's SavedModel."""

    min_map: float | None = None
    max_map_drop: float | None = None

    @property
    def any(self) -> bool:
        return self.min_map is not None or self.max_map_drop is not None


@dataclass
class Row:
    """One artifact: where it sits, its run, its metrics, and how far it is from its SavedModel."""

    unit: str
    run: ArtifactRun
    coco: CocoResult | None = None
    map_drop: float | None = None  # SavedModel mAP − this mAP (0 for the SavedModel itself)

    @property
    def label(self) -> str:
        return self.run.name if self.unit == "." else f"{self.unit}/{self.run.name}"

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"unit": self.unit, "artifact": self.run.name, "runtime": self.run.runtime,
                                 "size_bytes": self.run.size_bytes, "load_seconds": round(self.run.load_seconds, 4)}
        if self.run.error:
            entry["error"] = self.run.error
            return entry
        entry["latency_ms"] = {"median": _round(self.run.median_ms), "p90": _round(self.run.p90_ms)}
        if self.coco is not None:
            entry.update({"map": _round(self.coco.map), "map50": _round(self.coco.map50), "ar100": _round(self.coco.ar100),
                          "map_drop": _round(self.map_drop), "metrics": {k: _round(v) for k, v in self.coco.metrics.items()}})
        return entry


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), digits)


@dataclass
class BenchmarkResult:
    export_dir: str
    data: str
    images: int
    rows: list[Row] = field(default_factory=list)
    gates: Gates = Gates()
    seconds: float = 0.0
    evaluator_seconds: float = 0.0
    data_seconds: float = 0.0
    written: list[str] = field(default_factory=list)

    @property
    def artifact_seconds(self) -> float:
        return sum(row.run.own_seconds for row in self.rows)

    def shortfalls(self) -> list[str]:
        """One phrase per artifact that failed to run or falls short of a gate."""
        found = []
        for row in self.rows:
            if row.run.error:
                found.append(f"{row.label} did not run ({row.run.error})")
            elif row.coco is not None and self.gates.min_map is not None and row.coco.map < self.gates.min_map:
                found.append(f"{row.label} mAP {row.coco.map:.3f} < {self.gates.min_map:g}")
            elif row.map_drop is not None and self.gates.max_map_drop is not None and row.map_drop > self.gates.max_map_drop:
                found.append(f"{row.label} mAP drop {row.map_drop:.3f} > {self.gates.max_map_drop:g}")
        return found

    @property
    def ok(self) -> bool:
        return not self.shortfalls()

    def failure_message(self) -> str:
        return "benchmark: " + "; ".join(self.shortfalls())

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "export_dir": self.export_dir, "data": self.data, "images": self.images,
                "metric": "COCO mAP@[.5:.95] by the OD API's CocoDetectionEvaluator",
                "gates": {"min_map": self.gates.min_map, "max_map_drop": self.gates.max_map_drop},
                "artifacts": [row.to_dict() for row in self.rows], "shortfalls": self.shortfalls(),
                "seconds": round(self.seconds, 2), "artifact_seconds": round(self.artifact_seconds, 2),
                "evaluator_seconds": round(self.evaluator_seconds, 2), "data_seconds": round(self.data_seconds, 2),
                "written": self.written}


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.0f} kB"


def format_table(result: BenchmarkResult) -> str:
    """The table on stdout: one line per artifact."""
    header = ("artifact", "runtime", "size", "load s", "ms med", "ms p90", "mAP", "mAP@.5", "AR@100", "ΔmAP")
    lines = [header]
    for row in result.rows:
        if row.run.error:
            lines.append((row.label, row.run.runtime, _size(row.run.size_bytes), "", "", "", "error", "", "", ""))
            continue
        coco = row.coco
        lines.append((row.label, row.run.runtime, _size(row.run.size_bytes), f"{row.run.load_seconds:.2f}",
                      f"{row.run.median_ms:.1f}", f"{row.run.p90_ms:.1f}",
                      f"{coco.map:.3f}" if coco else "", f"{coco.map50:.3f}" if coco else "",
                      f"{coco.ar100:.3f}" if coco else "", f"{round(-row.map_drop, 3) + 0.0:+.3f}" if row.map_drop is not None else ""))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))).rstrip()
            for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    text.append(f"{result.images} images from {result.data}; latency per image after {WARMUP_RUNS} warm-up runs; "
                f"ΔmAP against the SavedModel; {result.seconds:.1f} s in all")
    for row in result.rows:
        if row.run.error:
            text.append(f"{row.label}: {row.run.error}")
    return "\n".join(text)
