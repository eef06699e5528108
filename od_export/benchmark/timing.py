"""Run one artifact over the evaluation images: load time, warm-up, latency per image, detections.

Only the runtime call is timed (``ArtifactRunner.infer``); preparing its input and
turning its outputs into the SavedModel's conventions are not, since users hold
their images in the artifact's format already.  Each runtime keeps its default
thread settings.  Images are resized once per fixed input size, for every artifact
of that size.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from od_export.benchmark.data import EvalImage
from od_export.targets.base import ArtifactRunner

#: Runs on the first image before timing: the first calls allocate, compile and tune.
WARMUP_RUNS = 3


@dataclass
class ArtifactRun:
    """What running one artifact over the images gave."""

    name: str
    runtime: str
    size_bytes: int
    load_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    detections: list[dict[str, np.ndarray]] = field(default_factory=list)
    error: str | None = None
    #: Seconds spent in this artifact's own work (load, warm-up, inference), for the overhead figure.
    own_seconds: float = 0.0

    @property
    def median_ms(self) -> float:
        return float(np.median(self.latencies_ms)) if self.latencies_ms else float("nan")

    @property
    def p90_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 90)) if self.latencies_ms else float("nan")


def size_of(paths: list[Any]) -> int:
    """Bytes of the files (a directory counts every file under it)."""
    total = 0
    for path in paths:
        if path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            total += path.stat().st_size
    return total


class ResizedImages:
    """Each image's pixels at the size an artifact takes, computed once per size."""

    def __init__(self, images: list[EvalImage]) -> None:
        self.images = images
        self._cache: dict[tuple[int, int] | None, list[np.ndarray]] = {None: [image.pixels for image in images]}

    def at(self, size: tuple[int, int] | None) -> list[np.ndarray]:
        if size not in self._cache:
            from od_export.verify.samples import resize_image

            self._cache[size] = [resize_image(image.pixels, *size) for image in self.images]
        return self._cache[size]


def run_artifact(runner: ArtifactRunner, resized: ResizedImages, warmup: int = WARMUP_RUNS) -> ArtifactRun:
    """Load ``runner``'s artifact and run it on every image; a failure is recorded, not raised."""
    run = ArtifactRun(runner.name, runner.runtime, size_of(runner.files))
    try:
        started = time.perf_counter()
        runner.load()
        run.load_seconds = time.perf_counter() - started
        pixels = resized.at(runner.input_size)
        encoded = [image.encoded for image in resized.images]
        first = runner.feed(pixels[0], encoded[0])
        for _ in range(warmup):
            runner.infer(first)
        run.own_seconds = time.perf_counter() - started
        for image, data in zip(pixels, encoded):
            feed = runner.feed(image, data)
            begin = time.perf_counter()
            raw = runner.infer(feed)
            elapsed = time.perf_counter() - begin
            run.latencies_ms.append(1000.0 * elapsed)
            run.own_seconds += elapsed
            run.detections.append(runner.detections(raw))
    except Exception as exc:  # a runtime's load and run errors have no common base: one line in the report
        run.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    finally:
        runner.close()
    return run
