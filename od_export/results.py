"""What an export reports: each input type's unit, its artifacts and checks, and the whole result.

Shared by the TF2 exporter and the TF1 OD API path, and the ``--json`` document of
``od-export export`` (``to_dict``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from od_export.layout import CHECKPOINT_DIR, PIPELINE_CONFIG_NAME, SAVED_MODEL_DIR
from od_export.manifest import MANIFEST_NAME
from od_export.storage.location import AnyPath
from od_export.verify.compare import OutputDifference


@dataclass
class InputTypeResult:
    input_type: str
    directory: AnyPath
    relative: Path
    signature: dict[str, Any]
    autograph: bool
    artifacts: dict[str, list[AnyPath]] = field(default_factory=dict)
    #: Verification per artifact (target name → its differences from the SavedModel).
    checks: dict[str, tuple[OutputDifference, ...]] = field(default_factory=dict)
    #: Reduced-precision artifacts' detection agreement (``tflite:int8`` → its figures).
    agreement: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The exporter's copy of the weights, inside the unit (the TF1 exporter writes ``model.ckpt``).
    checkpoint: str = f"{CHECKPOINT_DIR}/ckpt-0"

    @property
    def check(self) -> tuple[OutputDifference, ...]:
        """The frozen graph's differences: what ``check`` held before there were other targets."""
        return self.checks.get("frozen_graph", ())

    @property
    def frozen_files(self) -> list[AnyPath]:
        return self.artifacts.get("frozen_graph", [])

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_type": self.input_type,
            "directory": str(self.directory),
            "saved_model": str(self.directory / SAVED_MODEL_DIR),
            "checkpoint": str(self.directory / self.checkpoint),
            "pipeline_config": str(self.directory / PIPELINE_CONFIG_NAME),
            "frozen_graph": [str(p) for p in self.frozen_files],
            "artifacts": {name: [str(p) for p in paths] for name, paths in self.artifacts.items()},
            "signature": self.signature,
            "traced_with_autograph": self.autograph,
            "check": _differences(self.check),
            "checks": {name: _differences(differences) for name, differences in self.checks.items()},
            "agreement": self.agreement,
        }


def _differences(differences: tuple[OutputDifference, ...]) -> dict[str, dict[str, Any]]:
    return {d.key: {"max_abs_diff": d.max_abs_diff, "ok": d.ok} for d in differences}


@dataclass
class ExportResult:
    output_dir: AnyPath
    checkpoint: AnyPath
    architecture: str
    signature_key: str
    artifacts: list[InputTypeResult]
    notes: list[str]
    timings: dict[str, float]
    validation: dict[str, Any] | None = None
    #: Artifacts that failed their check and were left out (only when asked to keep going).
    failed: list[dict[str, Any]] = field(default_factory=list)
    #: ``od-export benchmark``'s document, when one was asked for.
    benchmark: dict[str, Any] | None = None

    @property
    def benchmark_shortfalls(self) -> list[str]:
        return list((self.benchmark or {}).get("shortfalls", []))

    @property
    def ok(self) -> bool:
        return not self.failed and not self.benchmark_shortfalls

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failed": self.failed,
            "benchmark": self.benchmark,
            "output_dir": str(self.output_dir),
            "manifest": str(self.output_dir / MANIFEST_NAME),
            "validation": self.validation,
            "checkpoint": str(self.checkpoint),
            "architecture": self.architecture,
            "signature_key": self.signature_key,
            "input_types": [a.to_dict() for a in self.artifacts],
            "notes": self.notes,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }
