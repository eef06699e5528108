"""File names that say whether an export directory is finished.

``manifest.json`` is written last into every export and is its completion marker;
``.od-export-incomplete`` is written first into a remote target while it is being
published and removed last (see :mod:`od_export.storage.remote`).
"""
MANIFEST_NAME = "manifest.json"
INCOMPLETE_MARKER = ".od-export-incomplete"
#: The ``generator`` every od-export manifest carries: what tells our manifest.json from a web app's.
GENERATOR = "od-export"
#: What ``od-export benchmark`` writes into an export (recorded in its manifest's ``benchmark`` entry).
BENCHMARK_DIR = "benchmark"
BENCHMARK_FILES = ("benchmark.json", "benchmark.html", "map_latency.png", "pr_curves.png")
