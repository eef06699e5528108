#!/usr/bin/env bash
# Create (or reuse) the project virtualenv and install od-export with the pinned stack.
# Needs only Python 3.10+ and PyPI.  Re-running is a no-op unless the pins changed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${OD_EXPORT_VENV:-.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
ODAPI="tf-models-research-object-detection==2.8.0.post1"
TASK_VENV="${OD_EXPORT_TASK_VENV:-.venv-task-library}"
STAMP="$VENV/.od-export-setup-$(cat constraints.txt setup.cfg scripts/task_library_requirements.txt | sha256sum | cut -c1-16)"

if [ -f "$STAMP" ]; then
    exit 0
fi
echo "setup: installing into $VENV (a few minutes on a fresh machine)" >&2
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip wheel setuptools
"$VENV/bin/python" -m pip install -q -c constraints.txt -e '.[test,onnx,tflite,openvino,serving]'
# The OD API's own requirements (pyparsing==2.4.7, tensorflow_io, keras) would break
# TensorFlow 2.20: install it without them; constraints.txt holds what it really imports.
# tritonclient likewise (its extras pin protobuf < 7 and ml-dtypes <= 0.5.4): the triton
# target only reads its model-config schema, which needs protobuf alone.  tflite-support
# likewise (it pins protobuf < 4): the tflite target only uses its metadata writer.
"$VENV/bin/python" -m pip install -q -c constraints.txt --no-deps "$ODAPI" lvis "tritonclient==2.73.0" \
    "tflite-support==0.4.4"
# The TFLite Task Library, which the tests load each .tflite file into, in its own
# environment (protobuf 3).
[ -x "$TASK_VENV/bin/python" ] || "$PYTHON" -m venv "$TASK_VENV"
"$TASK_VENV/bin/python" -m pip install -q -r scripts/task_library_requirements.txt
TF_CPP_MIN_LOG_LEVEL=3 "$VENV/bin/python" - <<'PY'
from od_export import compat
compat.import_object_detection()
PY
rm -f "$VENV"/.od-export-setup-*
touch "$STAMP"
echo "setup: done" >&2
