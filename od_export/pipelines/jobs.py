"""A YAML batch file → one :class:`ExportOptions` per export, checked before anything runs.

The keys a job takes are derived from the fields of :class:`ExportOptions`, the
settings each target declares (:data:`od_export.targets.SETTINGS`) and the two
conversion-wide ones (``calibration_images``, ``min_agreement``): the long flags of
``od-export export``, with ``_`` for ``-``.  A new export option or target setting is a
new batch key without a second list to keep in sync.  Two keys exist only here:
``name`` and ``checkpoints``.

A file has optional ``defaults`` and a list of ``jobs``; each job is the defaults
updated with its own keys.  Relative paths are relative to the YAML file, ``${VAR}``
expands from the environment, and every problem is one line naming the file, the
job and the key.
"""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any

from od_export.errors import InputError
from od_export.options import ConversionOptions, ExportOptions
from od_export.pipelines import batch_yaml, job_values
from od_export.pipelines.batch_yaml import load_yaml
from od_export.storage.reading import decode_text, read_bounded
from od_export.storage.location import AnyPath, location
from od_export.targets import SETTINGS, check_export_options
from od_export.verify.tolerance import thresholds

_EXPORT_FIELDS = {f.name: f for f in fields(ExportOptions) if f.name != "conversion"}
_CONVERSION_FIELDS = {f.name: f for f in fields(ConversionOptions) if f.name != "settings"}
#: Keys of a batch job that are not export options.
BATCH_KEYS = ("name", "checkpoints")
JOB_KEYS = (*_EXPORT_FIELDS, *_CONVERSION_FIELDS, *SETTINGS, *BATCH_KEYS)
_PATH_KEYS = tuple(name for name, f in _EXPORT_FIELDS.items() if f.default is MISSING and f.default_factory is MISSING)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
LATEST_LINK = "latest"


@dataclass(frozen=True)
class CheckpointSelection:
    """``all``, ``latest``, explicit names, or every checkpoint whose number is a multiple of ``every``."""

    mode: str  # "all" | "latest" | "names" | "every"
    names: tuple[str, ...] = ()
    every: int = 0

    def select(self, available: tuple[str, ...]) -> tuple[str, ...]:
        """``available`` is oldest first (as :func:`available_checkpoints` lists them)."""
        if self.mode == "all":
            return available
        if self.mode == "latest":
            return available[-1:]
        if self.mode == "every":
            numbered = ((n, re.search(r"(\d+)$", n)) for n in available)
            return tuple(n for n, number in numbered if number and int(number.group(1)) % self.every == 0)
        return self.names


@dataclass(frozen=True)
class Job:
    file: Path | str  # the batch file, or "command line"
    index: int
    name: str
    options: ExportOptions
    checkpoints: CheckpointSelection | None

    def where(self, key: str | None = None) -> str:
        return f"{self.file}: job {self.index} ({self.name})" + (f": {key}" if key else "")


@dataclass(frozen=True)
class Task:
    """One export of a batch: a job, and for multi-checkpoint jobs the checkpoint it exports."""

    job: Job
    checkpoint: str | None
    options: ExportOptions

    @property
    def label(self) -> str:
        return f"{self.job.name}/{self.checkpoint}" if self.checkpoint else self.job.name

    @property
    def latest_link(self) -> AnyPath | None:
        """``OUTPUT/latest`` of a multi-checkpoint job."""
        return location(self.job.options.output_dir) / LATEST_LINK if self.checkpoint else None


class BatchFileError(InputError):
    """A batch file that cannot run: nothing is exported."""


def load_batch(path: str | Path) -> list[Job]:
    """Read and check a batch file; every job's options are checked as ``export`` checks them."""
    import yaml

    file = Path(path).absolute()
    fix = "give a YAML batch file"
    text = decode_text(read_bounded(file, "batch file", batch_yaml.MAX_BATCH_BYTES, fix, BatchFileError), file, "batch file",
                       fix, BatchFileError)
    try:
        document = load_yaml(text, file, BatchFileError)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BatchFileError(f"{file}: not valid YAML{where}: {problem}") from exc
    if isinstance(document, dict):
        _check_keys(document, ("defaults", "jobs"), f"{file}")
    if not isinstance(document, dict) or not isinstance(document.get("jobs"), list) or not document["jobs"]:
        raise BatchFileError(f"{file}: a batch file is a mapping with a non-empty list of `jobs` (and optional `defaults`)")
    defaults = document.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise BatchFileError(f"{file}: defaults: must be a mapping of job keys")
    _check_keys(defaults, JOB_KEYS, f"{file}: defaults")
    jobs = []
    for index, raw in enumerate(document["jobs"], start=1):
        if not isinstance(raw, dict):
            raise BatchFileError(f"{file}: job {index}: must be a mapping of job keys, not {type(raw).__name__}")
        jobs.append(_job(file, index, {**defaults, **raw}))
    _check_unique_outputs(jobs)
    return jobs


def _check_keys(mapping: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key).replace("-", "_"), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(allowed)}"
            raise BatchFileError(f"{where}: unknown key {key!r}{hint}")


def _job(file: Path, index: int, raw: dict[str, Any]) -> Job:
    name = str(raw.get("name") or f"job{index}")
    where = f"{file}: job {index} ({name})"
    _check_keys(raw, JOB_KEYS, where)
    for key in _PATH_KEYS:
        if key not in raw:
            raise BatchFileError(f"{where}: {key}: missing; every job needs {', '.join(_PATH_KEYS)}")
    values: dict[str, Any] = {}
    conversion: dict[str, Any] = {}
    for key, value in raw.items():
        if key in BATCH_KEYS:
            continue
        try:
            target = conversion if key in _CONVERSION_FIELDS or key in SETTINGS else values
            target[key] = _coerce(key, _expand(value), file.parent)
        except InputError as exc:
            raise BatchFileError(f"{where}: {key}: {exc.message}") from exc
    checkpoints = _checkpoints(raw.get("checkpoints"), where)
    if checkpoints is not None and "checkpoint" in raw:
        raise BatchFileError(f"{where}: checkpoint: give either checkpoint (one) or checkpoints (several), not both")
    options = ExportOptions(**values, conversion=ConversionOptions.of(**conversion))
    try:
        check_export_options(options)
    except InputError as exc:
        raise BatchFileError(f"{where}: {exc.render(_key_spellings())}") from exc
    return Job(file, index, name, options, checkpoints)


def _key_spellings() -> dict[str, str]:
    """Option placeholders in library messages, spelled as this file's keys."""
    return {key: key for key in JOB_KEYS}


def _expand(value: Any) -> Any:
    """``${VAR}`` in every string, from the environment; an unset variable is an error."""
    if isinstance(value, str):
        def substitute(match: re.Match[str]) -> str:
            if match.group(1) not in os.environ:
                raise InputError(f"environment variable {match.group(1)} is not set")
            return os.environ[match.group(1)]

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    return value


def _coerce(key: str, value: Any, base: Path) -> Any:
    """A YAML value → the type of the options field ``key``; strict, never a silent change."""
    if key in SETTINGS:
        return SETTINGS[key].from_yaml(value)
    field = _EXPORT_FIELDS.get(key) or _CONVERSION_FIELDS[key]
    if key in _PATH_KEYS:
        return job_values.path(job_values.scalar(value, str, "a path"), base)
    if key == "side_inputs":
        return job_values.side_inputs(value)
    if key in ("calibration_images", "label_map"):
        return job_values.path(job_values.scalar(value, str, "a path"), base)
    if key == "benchmark":
        return job_values.benchmark(value, base)
    if key == "min_agreement":
        if not isinstance(value, dict):
            raise InputError(f"must map each precision to a fraction, like {{int8: 0.3}}, not {value!r}")
        return thresholds(value)
    default = job_values.default(field)
    if isinstance(default, tuple):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise InputError("must be a string or a list of strings")
        return tuple(items)
    return job_values.scalar(value, type(default), {bool: "true or false", int: "a whole number", str: "a string"}[type(default)])


def _checkpoints(value: Any, where: str) -> CheckpointSelection | None:
    if value is None:
        return None
    if value in ("all", "latest"):
        return CheckpointSelection(value)
    if isinstance(value, dict) and set(value) == {"every"} and type(value["every"]) is int and value["every"] >= 1:
        return CheckpointSelection("every", every=value["every"])
    if isinstance(value, list) and value and all(type(v) is int or isinstance(v, str) for v in value):
        names = tuple(f"ckpt-{v}" if type(v) is int or str(v).isdigit() else str(v) for v in value)
        if all(re.fullmatch(r"ckpt-\d+", n) for n in names):
            return CheckpointSelection("names", names=names)
    raise BatchFileError(f"{where}: checkpoints: must be all, latest, a list like [ckpt-5, ckpt-10], or every: N "
                         f"(N ≥ 1), not {value!r}")


def _check_unique_outputs(jobs: list[Job]) -> None:
    seen: dict[str, Job] = {}
    for job in jobs:
        key = str(job.options.output_dir).rstrip("/")
        if key in seen:
            raise BatchFileError(f"{job.where('output_dir')}: {key} is also the output of job {seen[key].index} "
                                 f"({seen[key].name}); give each job its own output")
        seen[key] = job


def expand(jobs: list[Job]) -> list[Task]:
    """Every export the jobs ask for; multi-checkpoint jobs list their run's checkpoints now."""
    from od_export.source.checkpoints import available_checkpoints

    tasks = []
    for job in jobs:
        _check_sources_exist(job)
        if job.checkpoints is None:
            tasks.append(Task(job, None, job.options))
            continue
        directory = location(job.options.checkpoint_dir)
        available = available_checkpoints(directory) if directory.is_dir() else ()
        if not available:
            raise BatchFileError(f"{job.where('checkpoint_dir')}: {directory} has no ckpt-N checkpoints")
        missing = [n for n in job.checkpoints.select(available) if n not in available]
        if missing:
            raise BatchFileError(f"{job.where('checkpoints')}: {', '.join(missing)} not in {directory} "
                                 f"(it has {', '.join(available)})")
        for name in job.checkpoints.select(available):
            if name == LATEST_LINK:
                raise BatchFileError(f"{job.where('checkpoints')}: a checkpoint named {name!r} would be exported to "
                                     f"{location(job.options.output_dir) / name}, where the link to the newest export "
                                     "goes; rename the checkpoint (ckpt-N) or export it on its own")
            output = location(job.options.output_dir) / name
            tasks.append(Task(job, name, replace(job.options, checkpoint=name, output_dir=str(output))))
    return tasks


def _check_sources_exist(job: Job) -> None:
    """Local sources must exist before the batch starts (remote ones are checked by their export)."""
    for key, kind in (("pipeline_config", "file"), ("checkpoint_dir", "path")):
        path = location(getattr(job.options, key))
        if isinstance(path, Path) and not (path.is_file() if kind == "file" else path.exists()):
            raise BatchFileError(f"{job.where(key)}: {path} does not exist; fix the path (relative paths start at the batch file)")
    if isinstance(job.file, Path):
        from od_export.storage.output import check_apart

        try:
            check_apart(str(job.options.output_dir), [("batch file", job.file)])
        except InputError as exc:
            raise BatchFileError(f"{job.where('output_dir')}: {exc.message}") from exc


def shard(tasks: list[Task], index: int, count: int) -> list[Task]:
    """The ``index``-th (1-based) of ``count`` contiguous slices, sizes within one of each other.

    Contiguous, so a job's checkpoints stay together in a shard and share one model build.
    """
    if count < 1 or not 1 <= index <= count:
        raise InputError(f"shard {index}/{count} does not exist; write I/N with 1 ≤ I ≤ N")
    return tasks[(index - 1) * len(tasks) // count:index * len(tasks) // count]
