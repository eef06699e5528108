"""The ``od-export`` command line: a thin layer over the library (see :mod:`od_export.cli.main`)."""
from od_export.cli.main import PROG, build_parser, console_main, main

__all__ = ["PROG", "build_parser", "console_main", "main"]
