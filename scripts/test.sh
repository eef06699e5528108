#!/usr/bin/env bash
# Set up if needed, then run the whole test suite (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
VENV="${OD_EXPORT_VENV:-.venv}"
# Two workers, one test file each at a time: tracing and building models is mostly
# single-threaded Python, so the 2-core machine the budget is set on runs the suite in
# about two thirds of the serial time.  Files keep their session-scoped exports per
# worker.  Pass -n 0 to run serially.
exec "$VENV/bin/python" -m pytest -n "${OD_EXPORT_TEST_WORKERS:-2}" --dist loadfile "$@"
