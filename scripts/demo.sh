#!/usr/bin/env bash
# Demo on a fresh machine: set up, take the trained demo run (the SSD sample trained on synthetic
# shapes; with a config argument, a seeded random-weight checkpoint of that config instead), export
# it with all four input types plus ONNX, a TensorRT-ready ONNX, TFLite fp32/int8 and OpenVINO, print
# what was written, then benchmark the image_tensor unit: COCO mAP, latency and size per artifact.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
VENV="${OD_EXPORT_VENV:-.venv}"
OD_EXPORT="$VENV/bin/od-export"
OUT="${OD_EXPORT_DEMO_DIR:-demo_output}"

if [ $# -ge 1 ]; then
    # another sample config: seeded random weights (od-export demo-checkpoint)
    "$OD_EXPORT" demo-checkpoint --pipeline-config "$1" --output-dir "$OUT/training_run" --overwrite
else
    # the trained demo run (scripts/train_demo.py): five checkpoints, its eval record and label map
    rm -rf "$OUT/training_run"
    mkdir -p "$OUT"
    cp -r tests/fixtures/trained_ssd "$OUT/training_run"
fi
"$OD_EXPORT" export \
    --pipeline-config "$OUT/training_run/pipeline.config" \
    --checkpoint-dir "$OUT/training_run" \
    --output-dir "$OUT/exported" \
    --input-type image_tensor --input-type float_image_tensor \
    --input-type encoded_image_string_tensor --input-type tf_example \
    --target onnx --target tensorrt \
    --target tflite --tflite-precision fp32 --tflite-precision int8 --target openvino \
    --overwrite --json > "$OUT/export.json"

"$VENV/bin/python" - "$OUT/export.json" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))
print(f"\nexported {result['architecture']} from {result['checkpoint']} in {sum(result['timings_s'].values()):.1f} s")
for artifact in result["input_types"]:
    signature = artifact["signature"]
    inputs = ", ".join(f"{k} {v['dtype']}{v['shape']}" for k, v in signature["inputs"].items())
    print(f"\n{artifact['input_type']}: {artifact['directory']}")
    print(f"  SavedModel  {artifact['saved_model']}  (input {inputs})")
    for target, paths in artifact["artifacts"].items():
        if target != "saved_model":
            print(f"  {target:<12} {paths[0]}")
    print(f"  outputs      {', '.join(signature['outputs'])}")
    for target, differences in artifact["checks"].items():
        same = all(d["ok"] for d in differences.values())
        print(f"  checked      {target} gives the SavedModel's detections: {'yes' if same else 'NO'}")
PY

if [ $# -ge 1 ]; then
    echo
    echo "benchmark: skipped (random weights have no accuracy to measure; the trained demo run does)"
    exit 0
fi
echo
echo "benchmark of $OUT/exported/image_tensor on the run's eval record (first 100 images):"
"$OD_EXPORT" benchmark "$OUT/exported/image_tensor" --max-images 100 -q
