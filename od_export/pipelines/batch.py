"""Run a batch: skip what is up to date, build each model once, go on after a failure.

Tasks that share a config, overrides, input types and side inputs form a group; a
group runs in one process, in order, so its model is built and traced once and only
the weights are restored for each further checkpoint (:class:`BuiltModels`).  Groups
run in worker processes when more than one worker is asked for; each export keeps the
single-export guarantee (staged, verified, moved into place), so a failed task leaves
nothing behind and the others go on, unless ``fail_fast`` is set.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from od_export.errors import FAILURE_EXIT_CODE, InputError, OdExportError
from od_export.options import ExportOptions
from od_export.pipelines.jobs import BatchFileError, CheckpointSelection, Job, Task, expand, load_batch, shard
from od_export.storage.location import location

if TYPE_CHECKING:
    from od_export.pipelines.freshness import Freshness

#: Peak resident memory of one export worker that a default worker count must leave room
#: for: the sample models peak at 0.95-2.75 GB (scripts/bench_export.py), full-size ones more.
WORKER_MEMORY_BYTES = 3 * 1024**3


@dataclass(frozen=True)
class BatchOptions:
    batch_file: str | Path
    check_only: bool = False
    force: bool = False
    workers: int | None = None  # None: chosen from the machine (see default_workers)
    fail_fast: bool = False
    shard: tuple[int, int] | None = None  # (I, N): the I-th of N slices


@dataclass
class TaskResult:
    label: str
    job: str
    checkpoint: str | None
    output_dir: str
    status: str  # exported | skipped | failed | not run | planned
    seconds: float = 0.0
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job, "checkpoint": self.checkpoint, "output_dir": self.output_dir, "status": self.status,
                "seconds": round(self.seconds, 2), "error": self.error}


@dataclass
class BatchResult:
    batch_file: str
    workers: int
    results: list[TaskResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return FAILURE_EXIT_CODE if any(r.status in ("failed", "partial", "not run") for r in self.results) else 0

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(r.status == s for r in self.results) for s in ("exported", "partial", "skipped", "failed", "not run", "planned")}
        return {"batch_file": self.batch_file, "workers": self.workers, "ok": self.exit_code == 0,
                "counts": {k: v for k, v in counts.items() if v}, "jobs": [r.to_dict() for r in self.results]}


#: progress(label, event, detail): event is "start", "phase", "done".
Progress = Callable[[str, str, str], None]


def default_workers(groups: int) -> int:
    """One worker per core, as many as memory holds (:data:`WORKER_MEMORY_BYTES` each), no more than groups."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        available = WORKER_MEMORY_BYTES
    return max(1, min(cores, available // WORKER_MEMORY_BYTES, groups))


def plan(options: BatchOptions) -> list[Task]:
    """The batch file's tasks (this shard's, when sharded); raises for a bad file before anything runs."""
    tasks = expand(load_batch(options.batch_file))
    return shard(tasks, *options.shard) if options.shard else tasks


def group_tasks(tasks: list[Task]) -> list[list[Task]]:
    """Tasks that can share one built model, in first-appearance order."""
    groups: dict[tuple[Any, ...], list[Task]] = {}
    for task in tasks:
        o = task.options
        key = (str(location(o.pipeline_config)), o.config_overrides, o.input_types, o.side_inputs)
        groups.setdefault(key, []).append(task)
    return list(groups.values())


def run_batch(options: BatchOptions, progress: Progress | None = None) -> BatchResult:
    if options.workers is not None and options.workers < 1:
        raise InputError(f"{options.workers} workers is below 1; give 1 or more")
    tasks = plan(options)
    if options.check_only:
        for task in tasks:
            check_task(task, options.force)
        result = BatchResult(str(options.batch_file), 0)
        result.results = [_result(task, "planned") for task in tasks]
        return result
    return run_tasks(tasks, str(options.batch_file), options.force, options.workers, options.fail_fast, progress)


def check_task(task: Task, force: bool) -> None:
    """Every check the task's export makes before TensorFlow (``--check``): the first refusal, as bad input."""
    from od_export.exporter import check_request
    from od_export.pipelines.freshness import stale_reason, task_options

    freshness = stale_reason(task.options)
    if freshness.up_to_date and not force:
        return
    try:
        check_request(task_options(task, force, freshness))
    except OdExportError as exc:
        raise BatchFileError(f"{task.job.where()}{f' ({task.checkpoint})' if task.checkpoint else ''}: "
                             f"{exc.message}") from exc


def export_checkpoints(options: ExportOptions, selection: CheckpointSelection, progress: Progress | None = None) -> BatchResult:
    """Several checkpoints of one run, each into ``OUTPUT/ckpt-N`` (``export --checkpoint all``)."""
    job = Job("command line", 1, Path(str(options.output_dir)).name, options, selection)
    return run_tasks(expand([job]), "command line", False, 1, False, progress)


def run_tasks(tasks: list[Task], source: str, force: bool, workers: int | None, fail_fast: bool,
              progress: Progress | None) -> BatchResult:
    report = progress or (lambda label, event, detail: None)
    outcomes = {} if force else _skip_current(tasks, report)  # no worker or TensorFlow for what is current
    groups = group_tasks([task for task in tasks if task.label not in outcomes])
    workers = workers or default_workers(len(groups))
    if workers == 1:
        outcomes.update(_run_groups_here(groups, force, fail_fast, report))
    else:
        outcomes.update(_run_groups_in_workers(groups, force, fail_fast, workers, report))
    result = BatchResult(source, workers)
    result.results = [outcomes.get(task.label) or _result(task, "not run") for task in tasks]
    return result


def _result(task: Task, status: str, seconds: float = 0.0, error: dict[str, Any] | None = None) -> TaskResult:
    return TaskResult(task.label, task.job.name, task.checkpoint, str(task.options.output_dir), status, seconds, error)


def _skip_current(tasks: list[Task], report: Progress) -> dict[str, TaskResult]:
    from od_export.pipelines.freshness import stale_reason

    outcomes = {}
    for task in tasks:
        try:
            freshness = stale_reason(task.options)
        except OSError:  # unreadable sources: the export reports it properly
            continue
        if freshness.up_to_date:
            outcomes[task.label] = run_task(task, False, None, report, freshness)
    return outcomes


def _run_groups_here(groups: list[list[Task]], force: bool, fail_fast: bool, report: Progress) -> dict[str, TaskResult]:
    from od_export.source.model import BuiltModels

    built, outcomes = BuiltModels(), {}
    for group in groups:
        for task in group:
            outcome = run_task(task, force, built, report)
            outcomes[task.label] = outcome
            if outcome.status == "failed" and fail_fast:
                return outcomes
    return outcomes


def run_task(task: Task, force: bool, built: Any, report: Progress, freshness: Freshness | None = None) -> TaskResult:
    """One export, or a skip when its output is up to date; a failure is a result, not an exception."""

    from od_export.pipelines.freshness import stale_reason, task_options, update_latest

    start = time.perf_counter()
    report(task.label, "start", "")
    try:
        freshness = freshness or stale_reason(task.options)
        if freshness.up_to_date and not force:
            outcome = _result(task, "skipped", time.perf_counter() - start)
        else:
            if freshness.ours and not force:
                report(task.label, "phase", f"replacing {task.options.output_dir}: {freshness.reason}")
            options = task_options(task, force, freshness)
            with _phases_to(task.label, report):
                from od_export.exporter import export

                exported = export(options, built)
            outcome = _result(task, "exported", time.perf_counter() - start)
            if exported.failed:  # kept going past failed artifacts: published, but a failure to report
                reasons = "; ".join(f"{f['artifact']} {f['reason']}" for f in exported.failed)
                error = {"kind": "ValidationFailed", "message": f"published without {reasons}",
                         "exit_code": FAILURE_EXIT_CODE}
                outcome = _result(task, "partial", outcome.seconds, error)
            elif exported.benchmark_shortfalls:  # written and benchmarked, but refused: latest stays where it was
                error = {"kind": "BenchmarkFailed", "message": "benchmark: " + "; ".join(exported.benchmark_shortfalls),
                         "exit_code": FAILURE_EXIT_CODE}
                outcome = _result(task, "failed", outcome.seconds, error)
        if task.latest_link is not None and outcome.status != "failed":
            update_latest(task)
    except OdExportError as exc:
        outcome = _result(task, "failed", time.perf_counter() - start,
                          {"kind": type(exc).__name__, "message": exc.message, "exit_code": exc.exit_code})
    except Exception as exc:  # an unexpected TensorFlow failure fails this task, not the batch
        outcome = _result(task, "failed", time.perf_counter() - start,
                          {"kind": type(exc).__name__, "message": " ".join(str(exc).split())[:300],
                           "exit_code": FAILURE_EXIT_CODE})
    report(task.label, "done", outcome.status + (f": {outcome.error['message']}" if outcome.error else ""))
    return outcome


class _PhaseForwarder(logging.Handler):
    def __init__(self, label: str, report: Progress) -> None:
        super().__init__(logging.INFO)
        self.label, self.report = label, report

    def emit(self, record: logging.LogRecord) -> None:
        self.report(self.label, "phase", record.getMessage())


@contextlib.contextmanager
def _phases_to(label: str, report: Progress) -> Iterator[None]:
    """While an export runs, its log records become progress events of its task."""
    handler = _PhaseForwarder(label, report)
    logging.getLogger("od_export").addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger("od_export").removeHandler(handler)


# ------------------------------------------------------------------ worker processes
def _run_groups_in_workers(groups: list[list[Task]], force: bool, fail_fast: bool, workers: int,
                           report: Progress) -> dict[str, TaskResult]:
    import multiprocessing
    import threading

    context = multiprocessing.get_context("spawn")  # a forked TensorFlow is not safe
    manager = context.Manager()
    events, stop = manager.Queue(), manager.Event()
    pump = threading.Thread(target=_pump, args=(events, report), daemon=True)
    pump.start()
    outcomes: dict[str, TaskResult] = {}
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending = {pool.submit(_worker_group, group, force, fail_fast, events, stop) for group in groups}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                for outcome in future.result():
                    outcomes[outcome.label] = outcome
            if fail_fast and any(o.status == "failed" for o in outcomes.values()):
                stop.set()
                for future in pending:
                    future.cancel()
    events.put(None)
    pump.join()
    manager.shutdown()
    return outcomes


def _pump(events: Any, report: Progress) -> None:
    while (event := events.get()) is not None:
        report(*event)


_WORKER_MODELS: dict[str, Any] = {}


def _worker_group(group: list[Task], force: bool, fail_fast: bool, events: Any, stop: Any) -> list[TaskResult]:
    """A group in a worker process; the worker keeps its built model for the next group."""
    from od_export.source.model import BuiltModels

    library = logging.getLogger("od_export")
    library.setLevel(logging.INFO)
    library.propagate = False  # records reach the parent as progress events, not through TF's root handler
    built = _WORKER_MODELS.setdefault("built", BuiltModels())
    outcomes = []
    for task in group:
        if stop.is_set():
            break
        outcome = run_task(task, force, built, lambda *event: events.put(event))
        outcomes.append(outcome)
        if outcome.status == "failed" and fail_fast:
            stop.set()
    return outcomes
