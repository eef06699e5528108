"""Export each checkpoint of a training run as it appears (``od-export watch``).

Like the OD API's continuous evaluation, a watcher polls the training directory.  A
checkpoint is read only once it is complete: its index and every data shard its
file names announce are there, and their sizes and times did not change between two
looks.  Each new checkpoint goes to ``OUTPUT/ckpt-N`` (with ``OUTPUT/latest``), as a
batch writes it, and the built model is reused, so only the first one pays for the
build and the traces.  What is already exported is skipped by its manifest, so a
restarted watcher never exports a checkpoint twice.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from od_export.errors import InputError
from od_export.options import ExportOptions
from od_export.pipelines.batch import BatchResult, Progress, run_task
from od_export.pipelines.jobs import CheckpointSelection, Job, Task
from od_export.source.checkpoints import available_checkpoints
from od_export.source.pipeline_config import load_pipeline_config
from od_export.storage.location import AnyPath, location

_SHARD = re.compile(r"\.data-(\d+)-of-(\d+)$")


@dataclass(frozen=True)
class WatchOptions:
    export: ExportOptions  # checkpoint_dir is the training directory, output_dir the root of ckpt-N exports
    timeout: float | None = None  # stop after this many seconds without a new checkpoint
    once: bool = False  # export what is complete now, then stop
    poll_interval: float = 10.0

    def check(self) -> None:
        from od_export.targets import check_export_options

        check_export_options(self.export)
        if self.poll_interval <= 0 or (self.timeout is not None and self.timeout < 0):
            raise InputError("the poll interval must be above 0 s and the timeout 0 s or more")


def _snapshot(directory: AnyPath, name: str) -> tuple[tuple[str, int, float], ...] | None:
    """Sizes and times of a checkpoint's files, or None while the index or a shard it announces is missing."""
    index = [p for p in directory.glob(name + ".*") if p.name == name + ".index"]
    shards = {p: _SHARD.search(p.name) for p in directory.glob(name + ".data-*")}
    shards = {p: m for p, m in shards.items() if m}
    if not index or not shards:
        return None
    expected = int(next(iter(shards.values())).group(2))
    if sorted(int(m.group(1)) for m in shards.values()) != list(range(expected)):
        return None
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime) for p in sorted([*index, *shards], key=lambda p: p.name))


class _Completeness:
    """Checkpoints whose files are all there and unchanged since the previous look."""

    def __init__(self, directory: AnyPath) -> None:
        self.directory, self.previous = directory, {}

    def look(self) -> list[str]:
        complete = []
        for name in available_checkpoints(self.directory):
            snapshot = _snapshot(self.directory, name)
            if snapshot is not None and self.previous.get(name) == snapshot:
                complete.append(name)
            self.previous[name] = snapshot
        return complete


def watch(options: WatchOptions, progress: Progress | None = None,
          sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> BatchResult:
    """Export new checkpoints until ``timeout`` passes without one (or once); failures are reported, not retried."""
    from od_export.source.model import BuiltModels

    options.check()
    directory = location(options.export.checkpoint_dir)
    if not directory.is_dir():
        raise InputError(f"training directory {directory} does not exist; pass the model_dir the trainer writes to")
    # a config that cannot work is refused now, not once per checkpoint
    load_pipeline_config(location(options.export.pipeline_config), options.export.config_overrides)
    job = Job("watch", 1, location(options.export.output_dir).name, options.export, CheckpointSelection("all"))
    report = progress or (lambda label, event, detail: None)
    built, handled, result = BuiltModels(), set(), BatchResult(str(directory), 1)
    completeness, last_new = _Completeness(directory), clock()
    completeness.look()  # the first look only records sizes: completeness needs two
    while True:
        sleep(1.0 if options.once else options.poll_interval)
        for name in completeness.look():
            if name in handled:
                continue
            handled.add(name)
            output = location(options.export.output_dir) / name
            task = Task(job, name, replace(options.export, checkpoint=name, output_dir=str(output)))
            result.results.append(run_task(task, False, built, report))
            last_new = clock()
        if options.once or (options.timeout is not None and clock() - last_new >= options.timeout):
            return result
