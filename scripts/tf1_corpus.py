#!/usr/bin/env python
"""The TF1 corpus table of the README: per real checkpoint, what discovery finds and how long freezing takes.

For each entry of ``tests/tf1_corpus.py`` present on disk (``$OD_EXPORT_TF1_CORPUS``, else
``../shared/tf1_corpus``): discovery on the ``.meta``, then one ``od-export freeze`` (with
stand-in weights where the repository's data file is not in the corpus), timed.
Prints a Markdown table and the slowest freeze.

    .venv/bin/python scripts/tf1_corpus.py
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from od_export import compat  # noqa: E402
from od_export.cli import main  # noqa: E402
from od_export.inspect.meta_discovery import discover_meta  # noqa: E402
from tests import tf1_corpus  # noqa: E402


def _row(entry: tf1_corpus.Entry, scratch: Path) -> tuple[str, float]:
    tf = compat.import_tensorflow()
    meta = tf1_corpus.corpus_root() / entry.key
    found = discover_meta(tf.compat.v1.MetaGraphDef.FromString(meta.read_bytes()))
    names = [c.name for c in found.ranked] if found.ambiguous else list(found.outputs)
    outputs = ("ambiguous, ranked: " if found.ambiguous else "") + ", ".join(f"`{n}`" for n in names)
    held = "; ".join(f.describe() for f in found.folds) or "none"
    args = ["freeze", "--meta-graph", str(meta), "--output-dir", str(scratch / "out"), "-q"]
    if entry.weights != "checkpoint":
        args += ["--checkpoint", str(tf1_corpus.standin_checkpoint(meta, scratch / "standin"))]
    if found.ambiguous:
        args += ["--output-nodes", found.ranked[0].name]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the written path
        code = main(args)
    seconds = time.perf_counter() - start
    verdict = {0: f"frozen and verified, {seconds:.2f} s", 2: "refused, exit 2 (see note)"}.get(code, f"exit {code}")
    repository = f"[{entry.repository}]({entry.source})"
    return (f"| {repository} | {entry.era} | {entry.style} | {outputs} | {held} | {entry.weights} | {verdict} |",
            seconds if code == 0 else 0.0)


def run() -> int:
    logging.disable(logging.WARNING)
    present = [e for e in tf1_corpus.ENTRIES if tf1_corpus.present(e)]
    if not present:
        print(f"no corpus at {tf1_corpus.corpus_root()}; set OD_EXPORT_TF1_CORPUS", file=sys.stderr)
        return 2
    print("| checkpoint | era | style | outputs found | held for inference | weights | freeze |")
    print("|---|---|---|---|---|---|---|")
    slowest = (0.0, "")
    for entry in present:
        with tempfile.TemporaryDirectory() as scratch:
            row, seconds = _row(entry, Path(scratch))
        print(row, flush=True)
        slowest = max(slowest, (seconds, entry.key))
    print(f"\n{len(present)} of {len(tf1_corpus.ENTRIES)} entries present; "
          f"slowest freeze {slowest[0]:.1f} s ({slowest[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(run())
