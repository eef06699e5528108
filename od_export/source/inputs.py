"""What an export reads, checked before TensorFlow: no input may lie inside, equal to or around the output,
and no checkpoint file may be a device or a FIFO (hashing and restoring would read it forever)."""
from __future__ import annotations

from pathlib import Path

from od_export.errors import CheckpointError
from od_export.manifest import checkpoint_files
from od_export.options import ExportOptions
from od_export.source.checkpoints import ResolvedCheckpoint
from od_export.source.labels import find_label_map
from od_export.storage.location import AnyPath, location
from od_export.storage.reading import check_regular


def export_inputs(options: ExportOptions, resolved: ResolvedCheckpoint) -> list[tuple[str, AnyPath]]:
    """Everything the export reads: none of it may be inside, equal to or around the output."""
    inputs: list[tuple[str, AnyPath]] = [
        ("pipeline config", location(options.pipeline_config)),
        ("checkpoint directory", location(options.checkpoint_dir)),  # as named
        ("checkpoint directory", resolved.directory),  # as the state file resolves it
        ("checkpoint directory", resolved.prefix.parent)]
    label_map = options.label_map or find_label_map(location(options.pipeline_config))[0]
    if label_map is not None:
        inputs.append(("label map", location(label_map)))
    if options.conversion.calibration_images is not None:
        inputs.append(("calibration images", location(options.conversion.calibration_images)))
    if options.benchmark is not None:
        inputs += [("evaluation data", location(path)) for path in options.benchmark.data]
    return inputs


def check_checkpoint_files(resolved: ResolvedCheckpoint) -> None:
    """Each local index and data shard of the checkpoint is a regular file."""
    for file in checkpoint_files(resolved.prefix):
        if isinstance(file, Path):
            check_regular(file, "checkpoint file", "copy the checkpoint again from the training run", error=CheckpointError)
