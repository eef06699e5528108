"""Results of checking artifacts against their SavedModel, and how they are shown."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from od_export.storage.location import AnyPath
from od_export.verify.agreement import Agreement
from od_export.verify.compare import OutputDifference, compare_outputs
from od_export.verify.tolerance import Tolerance


@dataclass
class ArtifactCheck:
    unit: str
    artifact: str
    input_type: str
    differences: tuple[OutputDifference, ...] = ()
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    #: For reduced-precision artifacts: how many of the SavedModel's detections they find.
    agreement: Agreement | None = None
    #: The artifact's outputs per image (boxes normalised to the image), kept for drawing.
    outputs: list[dict[str, np.ndarray]] = field(default_factory=list, repr=False)
    #: What the check compared them with, per image, where that is not the SavedModel's outputs on the
    #: original image (a TFLite or TensorRT file sees the image resized to its input size); for drawing.
    expected: list[dict[str, np.ndarray]] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        agreed = self.agreement is None or self.agreement.ok
        return self.error is None and agreed and all(d.ok for d in self.differences)

    def to_dict(self) -> dict[str, Any]:
        document = {
            "unit": self.unit, "artifact": self.artifact, "input_type": self.input_type, "ok": self.ok, "error": self.error,
            "outputs": {d.key: {"max_abs_diff": d.max_abs_diff, "ok": d.ok} for d in self.differences},
        }
        if self.notes:
            document["notes"] = list(self.notes)
        if self.agreement is not None:
            document["agreement"] = self.agreement.to_dict()
        return document


def merge(per_image: Sequence[tuple[OutputDifference, ...]]) -> tuple[OutputDifference, ...]:
    """Worst difference per output over several images (or several parts of one check)."""
    merged: dict[str, OutputDifference] = {}
    for differences in per_image:
        for d in differences:
            seen = merged.get(d.key)
            merged[d.key] = OutputDifference(d.key, max(d.max_abs_diff, seen.max_abs_diff if seen else 0.0),
                                             d.ok and (seen.ok if seen else True))
    return tuple(merged[k] for k in sorted(merged))


def compare_runs(check: ArtifactCheck, references: Sequence[dict[str, np.ndarray]],
                 run: Callable[[int], dict[str, np.ndarray]], tolerance: Tolerance,
                 reference: Any = None) -> ArtifactCheck:
    """Fill ``check`` by running the artifact on each image (``run(i)``) against ``references[i]``.

    With the :class:`~od_export.verify.reference.Reference` whose outputs these are,
    each run is held to what it says for that run (a two-stage model's second stage on
    the artifact's own proposals, where it crops with ``CropAndResize``).  Any exception
    from the artifact's runtime means the artifact does not run; it is
    recorded on one line rather than raised, so the report still shows every artifact.
    """
    try:
        check.outputs = [run(index) for index in range(len(references))]
        if reference is not None:
            references = [reference.judged_on(index, outputs, tolerance.atol, tolerance.score_threshold)
                          for index, outputs in enumerate(check.outputs)]
        check.differences = merge([
            compare_outputs(expected, outputs, tolerance.atol, tolerance.score_threshold, rtol=tolerance.rtol)
            for expected, outputs in zip(references, check.outputs)
        ])
    except Exception as exc:  # the runtime's own error types vary (TF, onnxruntime, …)
        check.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return check


@dataclass
class ValidationReport:
    export_dir: AnyPath
    images: int
    atol: float
    checks: list[ArtifactCheck] = field(default_factory=list)
    manifest: str = "none"  # "verified", "none" (not written by od-export) or the problem found
    saved_images: list[str] = field(default_factory=list)

    @property
    def compared(self) -> int:
        """Artifacts compared with a SavedModel (not counting SavedModels that only ran)."""
        return sum(1 for check in self.checks if check.artifact != "saved_model")

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks) and self.manifest in ("verified", "none")

    def to_dict(self) -> dict[str, Any]:
        document = {"export_dir": str(self.export_dir), "images": self.images, "atol": self.atol, "ok": self.ok,
                    "compared": self.compared, "manifest": self.manifest, "checks": [c.to_dict() for c in self.checks]}
        if self.saved_images:
            document["saved_images"] = list(self.saved_images)
        return document


#: The worst few outputs a one-line failure names (a broken artifact differs on all of them).
_NAMED_OUTPUTS = 3


def failure_reason(check: ArtifactCheck) -> str:
    """Why ``check`` failed, in a few words with its figures ("" when it passed)."""
    if check.error:
        return check.error
    bad = sorted((d for d in check.differences if not d.ok), key=lambda d: -d.max_abs_diff)
    if bad:
        named = ", ".join(f"{d.key} (max |diff| {d.max_abs_diff:.3g})" for d in bad[:_NAMED_OUTPUTS])
        more = f" and {len(bad) - _NAMED_OUTPUTS} more" if len(bad) > _NAMED_OUTPUTS else ""
        return f"disagrees on {named}{more}"
    if check.agreement is not None and not check.agreement.ok:
        a = check.agreement
        return (f"finds {a.matched}/{a.total} = {a.fraction:.2f} of the SavedModel's detections, "
                f"below the {a.precision} minimum agreement {a.min_agreement:g}")
    return ""


def artifact_label(check: ArtifactCheck, root: str | None) -> str:
    """``tflite:int8``, or ``image_tensor/tflite:int8`` in an export with several units (``root``: the export's own name)."""
    return check.artifact if check.unit == root else f"{check.unit}/{check.artifact}"


def failures(report: ValidationReport) -> list[tuple[ArtifactCheck, str]]:
    """Each failed check with its one-line reason."""
    return [(check, failure_reason(check)) for check in report.checks if not check.ok]


def failure_summary(report: ValidationReport, root: str | None = None) -> str:
    """``"tflite:int8 finds …; openvino disagrees on …"``: every failed artifact, named, with its figures."""
    return "; ".join(f"{artifact_label(check, root)} {reason}" for check, reason in failures(report))


def _verdict(report: ValidationReport) -> str:
    if not report.ok:
        if report.manifest not in ("verified", "none"):
            return "DAMAGED: the export's files do not match its manifest"
        return "MISMATCH: an artifact does not compute the SavedModel's detections (or does not run)"
    saved_models = len(report.checks) - report.compared
    if report.compared == 0:
        return (f"{saved_models} SavedModel(s) load and run with finite outputs; there is no other artifact "
                "to compare with them (exported without a frozen graph)")
    return f"all {report.compared} artifact(s) match their SavedModel"


def format_report(report: ValidationReport) -> str:
    lines = [f"{'unit':<28} {'artifact':<13} {'output':<28} {'max |diff|':>11}  result"]
    for check in report.checks:
        if check.artifact == "saved_model" and check.ok:
            lines.append(f"{check.unit:<28} {check.artifact:<13} {'(loads and runs)':<28} {'':>11}  ok")
        if check.error:
            lines.append(f"{check.unit:<28} {check.artifact:<13} {'(failed to run)':<28} {'':>11}  FAIL: {check.error}")
        for d in check.differences:
            lines.append(f"{check.unit:<28} {check.artifact:<13} {d.key:<28} {d.max_abs_diff:>11.3g}  {'ok' if d.ok else 'MISMATCH'}")
        if check.agreement is not None:
            verdict = "ok" if check.agreement.ok else "TOO LOW"
            lines.append(f"{check.unit:<28} {check.artifact:<13} agreement {check.agreement.describe()}  {verdict}")
        lines += [f"{check.unit:<28} {check.artifact:<13} note: {note}" for note in check.notes]
    if report.manifest not in ("verified", "none"):
        lines.append(f"manifest: {report.manifest}")
    if report.saved_images:
        lines.append(f"drawn: {len(report.saved_images)} image(s) in {Path(report.saved_images[0]).parent}")
    lines.append(f"{report.images} image(s), atol {report.atol:g}: {_verdict(report)}")
    return "\n".join(lines)
