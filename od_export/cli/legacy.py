"""exporter_main_v2's command line, as scripts that call it spell it.

exporter_main_v2 parses its flags with absl, so scripts pass ``--alsologtostderr``,
``--use_side_inputs=False`` or ``--nouse_side_inputs``, and they re-run the export
into the same ``--output_directory``, which exporter_main_v2 simply writes over.
``od-export export`` accepts all of that: absl's logging flags are dropped (od-export
has its own ``-q``/``-v``), absl's boolean spellings become argparse's, and the old
output spelling replaces an existing export (atomically, and says so), while the new
spelling ``--output-dir`` keeps the safe default.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

#: absl's logging flags: booleans, then flags with a value.
_ABSL_BOOLEANS = ("alsologtostderr", "logtostderr", "showprefixforinfo", "only_check_args", "run_with_pdb",
                  "run_with_profiling", "use_cprofile_for_profiling")
_ABSL_VALUED = ("v", "verbosity", "log_dir", "stderrthreshold", "logger_levels", "profile_file")
_TRUE, _FALSE = ("true", "t", "1", "yes", "y"), ("false", "f", "0", "no", "n")
LEGACY_OUTPUT_SPELLING = "--output_directory"


class RecordSpelling(argparse.Action):
    """Store the value and remember which of the option's spellings was used (``<dest>_spelling``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_spelling", option_string)


def _boolean_options(parser: argparse.ArgumentParser) -> set[str]:
    """Names (without dashes) of the parser's on/off flags, in every spelling."""
    return {s.lstrip("-") for a in parser._actions if isinstance(a, argparse._StoreTrueAction) for s in a.option_strings}


def absl_to_argparse(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """``argv`` with absl's spellings rewritten for ``parser``; anything unknown is left for argparse to refuse."""
    booleans = _boolean_options(parser)
    result: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        match = re.fullmatch(r"--([A-Za-z][\w-]*)(?:=(.*))?", token)
        if not match:
            result.append(token)
            continue
        name, value = match.group(1), match.group(2)
        if name in _ABSL_BOOLEANS or (name.startswith("no") and name[2:] in _ABSL_BOOLEANS):
            continue  # logging only: od-export's -q/-v decide what is shown
        if name in _ABSL_VALUED:
            if value is None:
                next(tokens, None)
            continue
        if name.startswith("no") and name[2:] in booleans and name not in booleans and value is None:
            continue  # --nouse_side_inputs: the default
        if name in booleans and value is not None:
            if value.lower() in _TRUE:
                result.append(f"--{name}")
                continue
            if value.lower() in _FALSE:
                continue
        result.append(token)
    return result


def replaces_like_exporter_main_v2(args: argparse.Namespace) -> bool:
    """True when the output was given as exporter_main_v2 spells it (and so may be written over)."""
    return getattr(args, "output_dir_spelling", None) == LEGACY_OUTPUT_SPELLING
