"""Traced serving function → SavedModel directory (plus the exporter's checkpoint copy).

The exporter saves its whole detection module, which makes ``tf.saved_model.save``
serialise every Keras layer of the model (most of its save time).  The default here
is a *lean* SavedModel: a module holding only the model's variables and the traced
serving function.  It has the same ``serving_default`` signature, loads with
``tf.saved_model.load`` into an object callable as ``detect_fn(input_tensor)``, and
works with ``saved_model_cli`` and TF Serving.  ``--full-object-graph`` saves the
exporter's module instead, for users who restore Keras layers from the SavedModel.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from od_export import compat
from od_export.layout import CHECKPOINT_DIR, SAVED_MODEL_DIR
from od_export.source.tracing import TracedFunction
from od_export.storage.location import AnyPath
from od_export.targets.base import ArtifactRunner, ExportContext, Target, pixels_as
from od_export.targets.serving_warmup import WARMUP, check_protos_available, write_warmup
from od_export.verify.reference import Reference, input_type_of
from od_export.verify.report import ArtifactCheck, Tolerance


if TYPE_CHECKING:
    from od_export.options import ExportOptions

def write_checkpoint(model: Any, directory: Path) -> Path:
    """``checkpoint/ckpt-0`` exactly as exporter_lib_v2 writes it (model only)."""
    tf = compat.import_tensorflow()
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(directory), max_to_keep=1)
    return Path(manager.save(checkpoint_number=0))


def copy_checkpoint(source: Path, destination: Path) -> None:
    """Reuse one written checkpoint for every input type: the files are identical."""
    shutil.copytree(source, destination)


def lean_module(model: Any, traced: TracedFunction) -> Any:
    """A ``tf.Module`` with the model's variables and the serving function as ``__call__``."""
    tf = compat.import_tensorflow()
    module = tf.Module(name="detection_module")
    module.model_variables = list(model.variables)
    module.__call__ = traced.concrete  # a tf.function here would be traced again by save()
    return module


def write_saved_model(model: Any, traced: TracedFunction, directory: Path, full_object_graph: bool,
                      signatures: dict[str, TracedFunction] | None = None) -> None:
    """``traced`` is ``serving_default`` and ``__call__``; ``signatures``, when given, are all the signatures.

    Every signature's function reads the same model variables, which the root tracks,
    so a SavedModel with a signature per input type stores the weights once.
    """
    tf = compat.import_tensorflow()
    root = traced.module if full_object_graph else lean_module(model, traced)
    if full_object_graph:
        root.__call__ = traced.concrete  # the function that was traced and checked, not a re-trace
    functions = {key: item.concrete for key, item in signatures.items()} if signatures else traced.concrete
    tf.saved_model.save(root, str(directory), signatures=functions)


class SavedModelTarget(Target):
    """exporter_main_v2's unit: ``saved_model/``, ``checkpoint/ckpt-0`` and ``pipeline.config``.

    Always written, and the reference that every other target is verified against.
    """

    name = "saved_model"
    directory = SAVED_MODEL_DIR
    settings = (WARMUP,)

    def write(self, context: ExportContext, directory: Path) -> list[Path]:
        """``directory`` is the unit; a checkpoint already written for another unit is copied."""
        od = compat.import_object_detection()
        directory.mkdir(parents=True, exist_ok=True)
        first_checkpoint = context.shared.get("checkpoint")
        if first_checkpoint is None:
            write_checkpoint(context.model, directory / CHECKPOINT_DIR)
            context.shared["checkpoint"] = directory / CHECKPOINT_DIR
        else:
            copy_checkpoint(first_checkpoint, directory / CHECKPOINT_DIR)  # identical files: copy, not save
        od.config_util.save_pipeline_config(context.config, str(directory))
        serving = context.signatures.get("serving_default", context.traced)
        write_saved_model(context.model, serving, directory / SAVED_MODEL_DIR, context.options.full_object_graph,
                          context.signatures)
        warmup = context.options.conversion.value(WARMUP)
        if warmup:
            write_warmup(directory / SAVED_MODEL_DIR, serving.input_type, warmup)
        return [directory / SAVED_MODEL_DIR]

    def check_request(self, architecture: str, config: Any, options: ExportOptions) -> None:
        if options.conversion.value(WARMUP):
            check_protos_available()

    def labels_directory(self, directory: Path) -> Path:
        return directory / SAVED_MODEL_DIR / "assets"  # SAVED_MODEL_LABELS: the SavedModel's own files, as TF Serving ships them

    def find(self, unit_dir: AnyPath) -> AnyPath | None:
        return unit_dir / SAVED_MODEL_DIR if (unit_dir / SAVED_MODEL_DIR).is_dir() else None

    def verify(self, artifact: AnyPath, reference: Reference, tolerance: Tolerance) -> ArtifactCheck:
        raise TypeError("the SavedModel is the reference; it is checked by running it (validator)")

    def runners(self, artifact: AnyPath) -> list[ArtifactRunner]:
        return [SavedModelRunner(self.name, artifact)]


class SavedModelRunner(ArtifactRunner):
    """The signature of a loaded SavedModel, fed what its input type takes (JPEG bytes as they are)."""

    runtime = "TensorFlow"

    def __init__(self, name: str, directory: AnyPath, signature_key: str = "serving_default") -> None:
        super().__init__(name, [directory])
        self.signature_key = signature_key
        self.input_type = ""

    def load(self) -> None:
        tf = compat.import_tensorflow()
        self.loaded = tf.saved_model.load(str(self.files[0]))
        self.function = self.loaded.signatures[self.signature_key]
        self.input_type = input_type_of(self.function, Path(str(self.files[0])).parent.name)

    def feed(self, pixels: Any, encoded: bytes) -> Any:
        from od_export.verify.samples import tf_example_of_encoded

        if self.input_type == "encoded_image_string_tensor":
            return np.array([encoded], dtype=object)
        if self.input_type == "tf_example":
            return np.array([tf_example_of_encoded(encoded, pixels.shape)], dtype=object)
        return pixels_as("uint8" if self.input_type == "image_tensor" else "float32", pixels)

    def infer(self, feed: Any) -> Any:
        tf = compat.import_tensorflow()
        return {key: value.numpy() for key, value in self.function(input_tensor=tf.constant(feed)).items()}

    def close(self) -> None:
        self.loaded = self.function = None
