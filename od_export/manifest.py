"""``manifest.json``: what an export was made from, what it holds, and how it was checked.

Written by every export into the output directory before it is moved into place,
so a manifest always describes a complete export: tool versions, the source config
and checkpoint (path and sha256), each input type's signature, every file with its
size and sha256, per-phase timings, and validation results when they were run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from od_export import __version__
from od_export.errors import InputError
from od_export.storage.location import AnyPath
from od_export.storage.owners import LOCK_PREFIX, parse_owned_name
from od_export.storage.markers import GENERATOR, INCOMPLETE_MARKER, MANIFEST_NAME
from od_export.storage.ownership import load_manifest
from od_export.storage.reading import check_regular

_ODAPI_DISTRIBUTIONS = ("tf-models-research-object-detection", "object-detection")


def sha256_of(paths: list[AnyPath]) -> str:
    """One hash over the files' bytes; a device or FIFO among them is refused, not read forever."""
    digest = hashlib.sha256()
    for path in paths:
        if isinstance(path, Path):
            check_regular(path, "file", "give the training run's own files")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def checkpoint_files(prefix: AnyPath) -> list[AnyPath]:
    """The index and data shards of a checkpoint prefix, in a stable order."""
    return sorted((p for p in prefix.parent.glob(prefix.name + ".*") if p.suffix == ".index" or ".data-" in p.name),
                  key=str)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def tool_versions() -> dict[str, str | None]:
    odapi = next((v for v in map(_version, _ODAPI_DISTRIBUTIONS) if v), None)
    return {
        "od_export": __version__,
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow") or _version("tensorflow-cpu"),
        "tf_keras": _version("tf-keras") or _version("tf_keras"),
        "object_detection": odapi,
        "protobuf": _version("protobuf"),
    }


def file_inventory(root: Path) -> list[dict[str, Any]]:
    """Every file under ``root`` (but the manifest) with its size and sha256."""
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and p != root / MANIFEST_NAME):
        entries.append({"path": str(path.relative_to(root)), "bytes": path.stat().st_size, "sha256": sha256_of([path])})
    return entries


#: Options that do not change what an export contains (paths and sources are recorded by hash).
_NOT_IN_REQUEST = ("pipeline_config", "checkpoint_dir", "output_dir", "checkpoint", "overwrite", "wait", "validate",
                  "keep_going", "benchmark")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def export_request(options: Any) -> dict[str, Any]:
    """The options that shape an export's content, as JSON: equal requests give equal exports."""
    return {name: value for name, value in _plain(options).items() if name not in _NOT_IN_REQUEST}


def build_manifest(
    root: Path,
    *,
    request: dict[str, Any],
    pipeline_config: AnyPath,
    checkpoint_prefix: AnyPath,
    config_overrides: tuple[str, ...],
    architecture: str,
    input_types: list[dict[str, Any]],
    timings: dict[str, float],
    validation: dict[str, Any] | None,
    min_agreement: tuple[tuple[str, float], ...] = (),
    failed: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "generator": GENERATOR,
        "format": 1,
        "versions": tool_versions(),
        "source": {
            "pipeline_config": {"path": str(pipeline_config.absolute()), "sha256": sha256_of([pipeline_config])},
            "config_overrides": list(config_overrides),
            "checkpoint": {
                "prefix": str(checkpoint_prefix.absolute()),
                "sha256": sha256_of(checkpoint_files(checkpoint_prefix)),
            },
            "architecture": architecture,
        },
        "request": request,
        "input_types": input_types,
        "artifacts": file_inventory(root),
        "timings_s": {phase: round(seconds, 3) for phase, seconds in timings.items()},
        "validation": validation,
        "min_agreement": thresholds_entry(min_agreement),
        "failed": failed or [],
    }


def output_manifest(root: Path, kind: str, **entries: Any) -> dict[str, Any]:
    """The manifest of an output that is not an export (a demo run, a wrapped graph): what wrote it, what it holds."""
    return {"generator": GENERATOR, "format": 1, "kind": kind, "versions": tool_versions(), **entries,
            "artifacts": file_inventory(root)}


def write_manifest(root: Path, manifest: dict[str, Any]) -> Path:
    path = root / MANIFEST_NAME
    path.unlink(missing_ok=True)  # never write through a hard link into a published export
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def require_finished(root: AnyPath) -> None:
    """Refuse od-export's temporary directories and exports whose publication was interrupted."""
    owned = parse_owned_name(root.name)
    if owned is not None or root.name.startswith(LOCK_PREFIX):
        who = owned.describe() if owned else "a writer"
        raise InputError(f"{root} is a temporary directory of an unfinished od-export export ({who}), not an "
                         "export; the next export to that target removes it")
    if (root / INCOMPLETE_MARKER).exists():
        raise InputError(f"{root} is an unfinished od-export export (its publication was interrupted, so it has "
                         "no completion marker); run the export again")


def verify_inventory(root: AnyPath, manifest: dict[str, Any]) -> list[str]:
    """Files that the manifest lists but are missing or differ (a damaged or mixed export)."""
    problems = []
    for entry in manifest.get("artifacts", []):
        path = root / entry["path"]
        if not path.is_file():
            problems.append(f"{entry['path']} is missing")
        elif sha256_of([path]) != entry["sha256"]:
            problems.append(f"{entry['path']} differs from the manifest")
    return problems


def read_manifest(root: AnyPath) -> dict[str, Any] | None:
    """The manifest in ``root`` (read with a bound), or None where there is none that parses."""
    document = load_manifest(root)
    return document if isinstance(document, dict) else None


def recorded_thresholds(manifest: dict[str, Any] | None) -> tuple[tuple[str, float], ...]:
    """The reduced-precision thresholds an export was verified with (none for older manifests)."""
    recorded = (manifest or {}).get("min_agreement")
    if not isinstance(recorded, dict):
        return ()
    return tuple(sorted((str(k), float(v)) for k, v in recorded.items() if isinstance(v, (int, float))))


def thresholds_entry(given: tuple[tuple[str, float], ...]) -> dict[str, float]:
    """Every reduced precision's threshold in force (defaults included), as the manifest records it."""
    from od_export.verify.tolerance import DEFAULT_MIN_AGREEMENT

    return {**DEFAULT_MIN_AGREEMENT, **dict(given)}


def update_manifest(source_root: Path, root: Path, validation: dict[str, Any], targets: list[str],
                    min_agreement: tuple[tuple[str, float], ...] = ()) -> Path:
    """The manifest of an export that ``convert`` extended: new inventory, new validation, the conversion noted.

    An export without a manifest (exporter_main_v2's) gets one, whose source is the export itself.
    """
    manifest = read_manifest(source_root) or {"format": 1, "source": {"converted_from": str(source_root)}}
    manifest["generator"] = GENERATOR
    manifest.setdefault("conversions", []).append({"targets": targets, "versions": tool_versions()})
    manifest["artifacts"] = file_inventory(root)
    manifest["validation"] = validation
    manifest["min_agreement"] = {**manifest.get("min_agreement", {}), **dict(min_agreement)}
    return write_manifest(root, manifest)


def data_directories(config_path: AnyPath) -> list[Path]:
    """Where the relative data paths of a config may start: its own directory and, for a config
    inside an export, the directory of the training run's config that the export's manifest records."""
    if "://" in str(config_path):
        return []
    here = Path(str(config_path)).parent
    found = [here]
    for root in (here, here.parent):
        source = (((read_manifest(root) or {}).get("source") or {}).get("pipeline_config") or {}).get("path")
        if isinstance(source, str) and Path(source).parent not in found:
            found.append(Path(source).parent)
    return found
