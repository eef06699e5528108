"""``od-export`` command line: parse into a typed request, make one library call.

TensorFlow is imported only inside the handlers, so ``od-export --help`` and
argument errors answer instantly.  Every :class:`OdExportError` becomes one line on
stderr and its exit code (2 for bad input), never a traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from od_export import __version__, log
from od_export.cli import batch as cli_batch
from od_export.cli import benchmark as cli_benchmark
from od_export.cli import export as cli_export
from od_export.cli import freeze as cli_freeze
from od_export.cli import legacy
from od_export.cli import watch as cli_watch
from od_export.cli import inspect as cli_inspect
from od_export.errors import FAILURE_EXIT_CODE, USAGE_EXIT_CODE, OdExportError
from od_export.storage.location import location

PROG = "od-export"
logger = logging.getLogger("od_export.cli")


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{PROG}: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(USAGE_EXIT_CODE)


def _add_common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_const", dest="verbosity", const=log.QUIET, help="print only errors and warnings")
    group.add_argument("-v", "--verbose", action="store_const", dest="verbosity", const=log.VERBOSE, help="show TensorFlow's own log output and tracebacks")
    parser.add_argument("--json", action="store_true", help="print one JSON document describing the result on stdout")
    parser.set_defaults(verbosity=log.NORMAL)


def _add_convert(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="add targets (onnx, tensorrt, frozen_graph, …) to an existing export; or a frozen graph → saved_model",
        description="Convert an export (od-export's, exporter_main_v2's or a model-zoo directory) to more targets; "
        "the new artifacts are verified and the export is updated atomically. Given a frozen graph file "
        "(.pb/.pbtxt) and --target saved_model, wrap it in a SavedModel with a serving_default signature.",
    )
    parser.add_argument("export_dir", metavar="EXPORT_DIR_OR_GRAPH")
    parser.add_argument("--io-spec", metavar="PATH", help="frozen graph: its io_spec.json (default: the one beside it, "
                        "else the TF1 model zoo's names, else discovered inputs and outputs)")
    parser.add_argument("--output-dir", metavar="DIR", help="frozen graph: the SavedModel directory to write (default: saved_model/ beside the graph)")
    parser.add_argument("--pipeline-config", metavar="PATH", help="the run's pipeline.config (default: the one in the export)")
    parser.add_argument("--signature-key", default="serving_default")
    cli_export.add_target_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace artifacts of these targets that the export already has")
    parser.add_argument("--wait", action="store_true", help="if another od-export is writing this export, wait for it")
    _add_common(parser)
    parser.set_defaults(handler=_run_convert)


def _run_convert(args: argparse.Namespace) -> dict[str, Any]:
    from od_export.converter import ConvertOptions, convert
    from od_export.tf1.wrap import GRAPH_SUFFIXES

    if os.path.splitext(args.export_dir)[1] in GRAPH_SUFFIXES:
        return _run_wrap(args)
    if args.io_spec or args.output_dir:
        from od_export.errors import InputError

        raise InputError("an I/O description and an output directory apply to a frozen graph file; "
                         "an export is converted in place")
    result = convert(ConvertOptions(
        location(args.export_dir), tuple(args.targets),
        location(args.pipeline_config) if args.pipeline_config else None,
        cli_export.conversion_options_from_args(args), args.signature_key, args.overwrite, args.wait, args.label_map,
    ))
    if not args.json:
        for unit, targets in result.written.items():
            for name, files in targets.items():
                print(f"{unit}: {name}: {files[0]}")
    return result.to_dict()


def _run_wrap(args: argparse.Namespace) -> dict[str, Any]:
    from od_export.errors import InputError
    from od_export.tf1.wrap import WrapOptions, wrap_frozen_graph

    if args.targets != ["saved_model"]:
        raise InputError(f"a frozen graph converts to the saved_model target only (got {', '.join(args.targets) or 'none'}); "
                         "for other targets export from the training checkpoint or convert an export directory")
    result = wrap_frozen_graph(WrapOptions(args.export_dir, args.output_dir, args.io_spec, args.overwrite, args.wait))
    if not args.json:
        print(result.saved_model)
    return result.to_dict()


def _add_demo_checkpoint(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo-checkpoint",
        help="create a seeded random checkpoint from a pipeline.config (for demos and tests)",
        description="Build the model a pipeline.config describes, give it seeded random weights, and save "
        "a training-style checkpoint directory (ckpt-N, checkpoint, pipeline.config).",
    )
    parser.add_argument("--pipeline-config", required=True, metavar="PATH")
    parser.add_argument("--output-dir", required=True, metavar="DIR")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    _add_common(parser)
    parser.set_defaults(handler=_run_demo_checkpoint)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=PROG, description="Turn a TF2 Object Detection API training run into deployable artifacts.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineParser)
    subparsers.required = True
    cli_export.add_subcommand(subparsers, _add_common)
    _add_convert(subparsers)
    cli_freeze.add_subcommand(subparsers, _add_common)
    cli_batch.add_subcommand(subparsers, _add_common)
    cli_watch.add_subcommand(subparsers, _add_common)
    _add_demo_checkpoint(subparsers)
    cli_inspect.add_subcommands(subparsers, _add_common)
    cli_benchmark.add_subcommand(subparsers, _add_common)
    return parser


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def option_spellings(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Option name → its long flag, over every subcommand, so errors name what the user typed."""
    spellings: dict[str, str] = {}
    parsers = [parser]
    while parsers:
        current = parsers.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif action.option_strings:
                spellings.setdefault(action.dest, max(action.option_strings, key=lambda s: s.startswith("--")))
    return spellings


def _run_demo_checkpoint(args: argparse.Namespace) -> dict[str, Any]:
    from od_export.source.demo import DemoCheckpointOptions, create_demo_checkpoint

    result = create_demo_checkpoint(
        DemoCheckpointOptions(location(args.pipeline_config), location(args.output_dir), args.seed, overwrite=args.overwrite)
    )
    if not args.json:
        print(result.output_dir)
    return {"output_dir": str(result.output_dir), "checkpoint": str(result.checkpoint_prefix), "pipeline_config": str(result.pipeline_config), "variables": result.variables}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["export"]:
        argv = argv[:1] + legacy.absl_to_argparse(argv[1:], _subparser(parser, "export"))
    args = parser.parse_args(argv)
    log.configure(args.verbosity)
    handler: Callable[[argparse.Namespace], dict[str, Any]] = args.handler
    try:
        document = handler(args)
    except OdExportError as exc:
        if args.verbosity >= log.VERBOSE:
            traceback.print_exc()
        return _fail(args, type(exc).__name__, exc.render(option_spellings(parser)), exc.exit_code)
    except KeyboardInterrupt:
        return _fail(args, "Interrupted", "interrupted; no partial output was left", 130, prefix="")
    except Exception as exc:  # an unexpected TensorFlow/OD API failure: still one line
        if args.verbosity >= log.VERBOSE:
            traceback.print_exc()
        message = f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]} (rerun with -v for details)"
        return _fail(args, type(exc).__name__, message, FAILURE_EXIT_CODE)
    ok = bool(document.get("ok", True))
    if args.json:  # every document says whether the command succeeded, as failures' do
        json.dump({"ok": ok, **document}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0 if ok else FAILURE_EXIT_CODE


def _fail(args: argparse.Namespace, kind: str, message: str, exit_code: int, prefix: str = "error: ") -> int:
    """One line on stderr; with --json also one JSON document on stdout, so a script can always parse it."""
    print(f"{PROG}: {prefix}{message}", file=sys.stderr)
    if args.json:
        json.dump({"ok": False, "error": {"kind": kind, "message": message, "exit_code": exit_code}}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return exit_code


def console_main() -> None:
    """The ``od-export`` console script: :func:`main`, TF's native logs filtered, fast exit.

    Once TensorFlow is loaded, interpreter teardown takes about 1.5 s (measured on
    the SSD sample) and does nothing a finished command needs: every file is
    written and closed by then.  So the script flushes its streams and leaves with
    ``os._exit``.
    """
    argv = sys.argv[1:]
    if not ({"-v", "--verbose", "-h", "--help", "--version"} & set(argv)):
        log.configure(log.NORMAL)
        log.filter_native_stderr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's --help/--version and usage errors
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else USAGE_EXIT_CODE)
    log.flush_all()
    os._exit(code)
