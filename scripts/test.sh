#!/usr/bin/env bash
# Set up if needed, then run the whole test suite (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
VENV="${OD_EXPORT_VENV:-.venv}"
exec "$VENV/bin/python" -m pytest "$@"
