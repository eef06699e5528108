"""What every target supplies, and what an export hands to it.

A target is one kind of artifact (SavedModel, frozen graph, ONNX, …).  It knows which
optional packages it needs, which requests it cannot serve (checked before any model
is built), how to write its artifact from what the export holds in memory, how to
recognise that artifact in an existing export, and how to run it, as its users do,
against the SavedModel's reference outputs.  Adding a target is one module and one
line in :mod:`od_export.targets`.
"""
from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from od_export.errors import EnvironmentProblem
from od_export.storage.location import AnyPath
from od_export.targets.settings import Setting

if TYPE_CHECKING:
    from od_export.options import ConversionOptions, ExportOptions
    from od_export.source.labels import Labels
    from od_export.source.tracing import TracedFunction
    from od_export.source.freezing import FrozenGraph
    from od_export.verify.reference import Reference
    from od_export.verify.report import ArtifactCheck, Tolerance


@dataclass
class ExportContext:
    """One input type's model in memory, shared by every target written for it.

    ``model`` is None when converting an export that has no checkpoint: targets then
    work from ``traced`` alone (the SavedModel's signature).
    """

    config: Any
    architecture: str
    input_type: str
    traced: TracedFunction
    options: ExportOptions
    model: Any = None
    #: Where this unit is being written (its SavedModel is in ``saved_model/`` there).
    unit_dir: Path | None = None
    #: Shared by the units of one export (a checkpoint written once, a conversion done once).
    shared: dict[str, Any] = field(default_factory=dict)
    #: Signature key → function, when one SavedModel serves every input type (else just ``traced``).
    signatures: dict[str, TracedFunction] = field(default_factory=dict)
    #: The run's class names (None: no label map found); every artifact carries them.
    labels: Labels | None = None
    _frozen: FrozenGraph | None = field(default=None, repr=False)

    def frozen_graph(self) -> FrozenGraph:
        """The serving function frozen in memory, once, for every target that starts from it."""
        if self._frozen is None:
            from od_export import health
            from od_export.source.freezing import freeze_function

            self._frozen = freeze_function(self.traced.concrete, self.options.signature_key)
            health.check_frozen_graph_fits(self._frozen.graph_def.ByteSize())
        return self._frozen


class ArtifactRunner:
    """An artifact as ``benchmark`` runs it: loaded once, then fed one image at a time as its users feed it.

    ``feed`` prepares the input (outside the timing: users hold their images in the
    artifact's format), ``infer`` is the timed runtime call, and ``detections`` turns
    its outputs into the SavedModel's conventions (normalised boxes, label-map class
    ids, a batch of one).  ``input_size`` is set for a file with a fixed input size:
    the benchmark resizes each image to it once, for every artifact of that size.
    """

    runtime: str = ""
    input_size: tuple[int, int] | None = None

    def __init__(self, name: str, files: list[AnyPath]) -> None:
        self.name = name
        self.files = files

    def load(self) -> None:
        raise NotImplementedError

    def feed(self, pixels: Any, encoded: bytes) -> Any:
        raise NotImplementedError

    def infer(self, feed: Any) -> Any:
        raise NotImplementedError

    def detections(self, raw: Any) -> dict[str, Any]:
        return raw

    def close(self) -> None:
        """Free what ``load`` holds."""


def pixels_as(dtype: str, pixels: Any) -> Any:
    """One image as a batch of one in ``dtype`` (``uint8`` or ``float32``), as an image input takes it."""
    return pixels[None].astype(dtype)


class Target:
    """Base class: override what differs (see the module docstring)."""

    name: ClassVar[str]
    directory: ClassVar[str]
    #: pip extra that provides ``modules`` (``od-export[onnx]``), None for the base install.
    extra: ClassVar[str | None] = None
    modules: ClassVar[tuple[str, ...]] = ()
    #: False for a target that only reads the written SavedModel: converting an export to it
    #: then skips rebuilding the model from the export's checkpoint.
    needs_model: ClassVar[bool] = True

    def needs_model_for(self, conversion: ConversionOptions) -> bool:
        """:attr:`needs_model` for this request (a target may read only the SavedModel for some settings)."""
        return self.needs_model
    #: The options this target reads (its flags, batch keys and checks; see :mod:`.settings`).
    settings: ClassVar[tuple[Setting, ...]] = ()
    #: Whether this target can be written without post-processing (raw boxes and scores, no NMS).
    raw_outputs: ClassVar[bool] = False
    #: What this artifact's class output adds to reach a label id (the SavedModel's classes are label ids).
    class_offset: ClassVar[int] = 0

    def check_available(self) -> None:
        missing = [m for m in self.modules if importlib.util.find_spec(m) is None]
        if missing:
            raise EnvironmentProblem(
                f"the {self.name} target needs {', '.join(missing)}: pip install 'od-export[{self.extra}]'"
            )

    def calibrates(self, conversion: ConversionOptions) -> bool:
        """Whether this target's files, as ``conversion`` asks for them, are quantised from calibration images."""
        return False

    def check_options(self, options: ExportOptions) -> None:
        """Raise :class:`InputError` for options this target cannot work with (pure, before the config is read)."""

    def check_request(self, architecture: str, config: Any, options: ExportOptions) -> None:
        """Raise :class:`InputError` for a request this target cannot serve (pure, no TensorFlow)."""

    def supports_input_type(self, input_type: str) -> bool:
        return not self.unsupported_reason(input_type)

    def unsupported_reason(self, input_type: str) -> str:
        """Why this target has no artifact for ``input_type`` ("" when it has one)."""
        return ""

    def write(self, context: ExportContext, directory: Path) -> list[Path]:
        raise NotImplementedError

    def write_labelled(self, context: ExportContext, directory: Path) -> list[Path]:
        """:meth:`write`, then the run's class names beside what it wrote (``labels.txt``, io_spec.json)."""
        written = self.write(context, directory)
        if context.labels is None:
            return written
        from od_export.source.labels import attach_labels
        from od_export.source.pipeline_config import num_classes

        where = self.labels_directory(directory)
        return written + attach_labels(where, context.labels, num_classes(context.config), self.class_offset)

    def labels_directory(self, directory: Path) -> Path:
        """Where ``labels.txt`` goes, given the directory :meth:`write` was given."""
        return directory

    def find(self, unit_dir: AnyPath) -> AnyPath | None:
        """This target's artifact in an export unit, or None."""
        return None

    #: What ``inspect`` takes as this target's file on its own ("an .onnx file"); "" for none.
    file_description: ClassVar[str] = ""

    def claims(self, path: AnyPath) -> bool:
        """Whether ``inspect`` should read the file ``path`` as this target's (by its name)."""
        return False

    def inspect_file(self, path: AnyPath) -> dict[str, Any]:
        """``inspect`` of one file this target claims: format, inputs, outputs and what else it records."""
        raise NotImplementedError

    def inspect_artifact(self, artifact: AnyPath) -> dict[str, Any]:
        """``inspect`` of this target's artifact in an export unit."""
        return {"path": str(artifact), **self.inspect_file(artifact)}

    def verify(self, artifact: AnyPath, reference: Reference, tolerance: Tolerance) -> ArtifactCheck:
        raise NotImplementedError

    def verify_all(self, artifact: AnyPath, reference: Reference, tolerance: Tolerance) -> list[ArtifactCheck]:
        """Every check of the artifact (one per file where a target writes several, as TFLite does)."""
        return [self.verify(artifact, reference, tolerance)]

    def runners(self, artifact: AnyPath) -> list[ArtifactRunner]:
        """How ``benchmark`` runs the artifact (one runner per file where a target writes several)."""
        return []

    def carry_over(self, previous: Path, written: Path) -> list[str]:
        """After ``convert`` rewrote this artifact in ``written``: keep what of ``previous`` was not asked for.

        By default nothing (the artifact is one thing, replaced whole); a target with a file per
        variant keeps the variants not rewritten and returns their names."""
        return []

    def discard(self, unit_dir: Path, check_name: str) -> None:
        """Remove what failed ``check_name`` from a staged unit, so that the rest can be published."""
        shutil.rmtree(unit_dir / self.directory, ignore_errors=True)
