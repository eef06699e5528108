"""``benchmark/`` in the export, replaced as a whole, and its entry in ``manifest.json``.

The files are written in a staging directory inside the export and swapped in with
renames while the export's lock is held, so a reader sees the previous benchmark or
the new one, never a mix, and an interrupted run leaves the previous one intact.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from od_export.benchmark.data import EvalImage
from od_export.benchmark.report import BenchmarkResult
from od_export.manifest import read_manifest, sha256_of
from od_export.storage.markers import BENCHMARK_DIR, BENCHMARK_FILES, MANIFEST_NAME
from od_export.storage.location import AnyPath, RemotePath
from od_export.storage.lock import lock_path_for, target_lock
from od_export.storage.owners import retired_name, staging_name

BENCHMARK_JSON, BENCHMARK_HTML, *_PLOTS = BENCHMARK_FILES
PLOTS = tuple(_PLOTS)


def _write_files(directory: Path, result: BenchmarkResult, images: list[EvalImage], names: dict[int, str],
                 grid_images: int) -> None:
    from od_export.benchmark import pictures

    directory.mkdir()
    plots = [pictures.map_latency_plot(result, directory / PLOTS[0]), pictures.pr_curves_plot(result, directory / PLOTS[1])]
    with tempfile.TemporaryDirectory() as scratch:
        grid = pictures.detection_grid(result, images, names, grid_images, Path(scratch)) if grid_images else []
        pictures.write_html(result, plots, grid, directory / BENCHMARK_HTML)
    document = result.to_dict()
    document["written"] = [str(Path(BENCHMARK_DIR) / p) for p in (BENCHMARK_JSON, BENCHMARK_HTML, *PLOTS)]
    (directory / BENCHMARK_JSON).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def save_benchmark(export_dir: AnyPath, result: BenchmarkResult, images: list[EvalImage], names: dict[int, str],
                   grid_images: int) -> list[str]:
    """Write ``benchmark/`` into a local export and record it in the manifest; the paths written."""
    if isinstance(export_dir, RemotePath):
        import logging

        logging.getLogger(__name__).warning(f"{export_dir} is remote: the benchmark is printed, not saved in it")
        return []
    root = Path(export_dir)
    staging = root / staging_name(BENCHMARK_DIR, secrets.token_hex(4))
    with target_lock(root, lock_path_for(root, root.parent), wait=True):
        try:
            _write_files(staging, result, images, names, grid_images)
            final = root / BENCHMARK_DIR
            retired = root / retired_name(BENCHMARK_DIR, secrets.token_hex(4))
            if final.exists():
                os.rename(final, retired)
            os.rename(staging, final)
            shutil.rmtree(retired, ignore_errors=True)
            _record(root, result)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return [str(root / BENCHMARK_DIR / name) for name in (BENCHMARK_JSON, BENCHMARK_HTML, *PLOTS)]


def _record(root: Path, result: BenchmarkResult) -> None:
    """The manifest's ``benchmark``: the file, its hash, and each artifact's headline figures."""
    manifest = read_manifest(root)
    if manifest is None:
        return
    path = root / BENCHMARK_DIR / BENCHMARK_JSON
    manifest["benchmark"] = {
        "file": str(Path(BENCHMARK_DIR) / BENCHMARK_JSON), "sha256": sha256_of([path]), "images": result.images,
        "data": result.data, "ok": result.ok, "written": [f"{BENCHMARK_DIR}/{name}" for name in BENCHMARK_FILES],
        "map": {row.label: round(row.coco.map, 4) for row in result.rows if row.coco is not None}}
    temporary = root / staging_name("manifest", secrets.token_hex(4))
    temporary.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, root / MANIFEST_NAME)  # readers see the old manifest or the new one
