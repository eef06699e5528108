"""``od-export batch JOBS.yaml``: argument parsing, progress and the summary table."""
from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from typing import Any

from od_export import log
from od_export.errors import InputError


def add_subcommand(subparsers: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="run the exports a YAML file lists (several configs, checkpoints, targets)",
        description="Run every job of a YAML batch file. A job takes the options of `od-export export` "
        "(long flag names with _), plus `name` and `checkpoints: all | latest | [ckpt-5, ...] | every: N`. "
        "Exports that are up to date are skipped. Exit 0 when every job succeeded or was skipped, 1 when "
        "any failed, 2 for a bad batch file.",
    )
    parser.add_argument("batch_file", metavar="JOBS.yaml")
    parser.add_argument("--check", dest="check_only", action="store_true", help="check the file and list the exports it asks for; export nothing")
    parser.add_argument("--force", action="store_true", help="re-export even what is up to date")
    parser.add_argument("-j", "--jobs", dest="workers", type=int, metavar="N", help="worker processes (default: one per core, as many as memory allows, at most one per model)")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failed job (default: report it and go on)")
    parser.add_argument("--shard", metavar="I/N", help="run only the I-th of N equal slices of the job list (for cluster job arrays)")
    add_common(parser)
    parser.set_defaults(handler=run)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise InputError(f"shard {text!r} is not I/N; write it like 2/8")
    return int(match.group(1)), int(match.group(2))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from od_export.cli.progress import progress_display
    from od_export.pipelines.batch import BatchOptions, plan, run_batch

    options = BatchOptions(args.batch_file, args.check_only, args.force, args.workers, args.fail_fast,
                           parse_shard(args.shard))
    total = len(plan(options))  # a bad file fails here, before any display starts
    start = time.perf_counter()
    with log.progress_shows_info(), progress_display(total, quiet=args.verbosity < 0) as progress:
        result = run_batch(options, progress)
    if not args.json:
        print_summary(result, time.perf_counter() - start)
    return result.to_dict()


def print_summary(result: Any, seconds: float) -> None:
    """One row per export, then each failure's message on its own line."""
    rows = [("job", "checkpoint", "status", "time", "output")]
    rows += [(r.job, r.checkpoint or "-", r.status, f"{r.seconds:.1f} s", r.output_dir) for r in result.results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    for r in (r for r in result.results if r.error):
        print(f"{r.label}: {r.error['message']}")
    counts = result.to_dict()["counts"]
    workers = f"{result.workers} worker{'s' if result.workers > 1 else ''}" if result.workers else "checked, nothing run"
    print(", ".join(f"{n} {status}" for status, n in counts.items()) + f" in {seconds:.1f} s ({workers})")
