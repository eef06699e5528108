"""``od-export watch TRAIN_DIR``: export each new checkpoint of a training run."""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from od_export import log
from od_export.cli import batch as cli_batch
from od_export.cli import export as cli_export


def add_subcommand(subparsers: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="export each new checkpoint of a training run as it appears",
        description="Poll TRAIN_DIR (the trainer's model_dir) and export every complete new ckpt-N into "
        "OUTPUT/ckpt-N, with OUTPUT/latest, reusing the built model. Takes the options of `od-export export`.",
    )
    parser.add_argument("train_dir", metavar="TRAIN_DIR")
    parser.add_argument("--pipeline-config", "--pipeline_config_path", dest="pipeline_config", metavar="PATH",
                        help="the run's pipeline.config (default: TRAIN_DIR/pipeline.config, which the OD API trainer writes)")
    cli_export.add_export_arguments(parser)
    parser.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds without a new checkpoint (default: never)")
    parser.add_argument("--once", action="store_true", help="export the checkpoints that are complete now, then stop")
    parser.add_argument("--poll", type=float, default=10.0, metavar="S", help="seconds between looks at TRAIN_DIR (default 10)")
    add_common(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from od_export.cli.progress import progress_display
    from od_export.pipelines.watch import WatchOptions, watch
    from od_export.storage.location import location

    args.checkpoint_dir, args.checkpoint = args.train_dir, "latest"
    if args.pipeline_config is None:
        args.pipeline_config = str(location(args.train_dir) / "pipeline.config")
    options = WatchOptions(cli_export.export_options_from_args(args), args.timeout, args.once, args.poll)
    start = time.perf_counter()
    with log.progress_shows_info(), progress_display(0, quiet=args.verbosity < 0) as progress:
        result = watch(options, progress)
    if not args.json and not result.results:
        print(f"no checkpoints yet in {args.train_dir}")
    elif not args.json:
        cli_batch.print_summary(result, time.perf_counter() - start)
    return result.to_dict()
