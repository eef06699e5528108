"""CPU latency, file size and agreement of the TFLite and OpenVINO artifacts, next to the SavedModel's.

Used by ``scripts/bench_export.py --deploy`` (and runnable alone).  Per architecture:
one od-export export with ``--target tflite`` (every precision the OD API's TFLite
path allows) and ``--target openvino`` (fp32), then a ``convert`` of a copy to
OpenVINO fp16.  The agreement figures are those the export's own check reports.
Latency: one image, each runtime with its default settings (LiteRT's default
delegates, OpenVINO's CPU plugin, the SavedModel in TensorFlow), runtimes alternating
in blocks of calls, median ms per call.

    .venv/bin/python scripts/bench_deploy.py --architectures ssd_mobilenet_v2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
TFLITE_ARCHITECTURES = ("ssd_mobilenet_v2", "ssd_mobilenet_v2_fpnlite", "centernet_mobilenet_v2_fpn")
OPENVINO_ARCHITECTURES = ("ssd_mobilenet_v2", "ssd_mobilenet_v2_fpnlite", "efficientdet_d0", "centernet_mobilenet_v2_fpn")
BLOCK = 10


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


#: The benchmark reports agreement; it refuses no artifact for it.
ANY_AGREEMENT = (("bf16", 0.0), ("fp16", 0.0), ("int8", 0.0))


def make_artifacts(run: Path, architecture: str, scratch: Path) -> tuple[Path, Path, dict]:
    """The export (SavedModel, TFLite, OpenVINO fp32) and a copy converted to OpenVINO fp16; their agreements."""
    import od_export
    from od_export.options import ConversionOptions

    tflite = architecture in TFLITE_ARCHITECTURES
    targets = (("tflite",) if tflite else ()) + ("openvino",)
    conversion = ConversionOptions.of(tflite_precisions=("fp32", "fp16", "int8"), min_agreement=ANY_AGREEMENT)
    out = scratch / f"deploy-{architecture}"
    result = od_export.export(od_export.ExportOptions(run / "pipeline.config", run, out, targets=targets, freeze=False,
                                                      validate=True, conversion=conversion))
    fp16 = scratch / f"deploy-{architecture}-ov16"
    shutil.copytree(out, fp16, ignore=shutil.ignore_patterns("openvino", "tflite"))
    converted = od_export.convert(od_export.ConvertOptions(
        fp16, ("openvino",), conversion=ConversionOptions.of(openvino_precision="fp16", min_agreement=ANY_AGREEMENT)))
    # named as the latency rows are: the IR's check at f32, and its check of this CPU's default (openvino:bf16)
    agreements = {_row("openvino:fp32", c["artifact"]): c["agreement"] for c in result.validation["checks"]
                  if "agreement" in c}
    agreements.update({_row("openvino:fp16", c["artifact"]): c["agreement"] for c in converted.validation["checks"]
                       if "agreement" in c and c["artifact"].startswith("openvino")})
    return out, fp16, agreements


def latency(out: Path, fp16: Path, runs: int) -> dict[str, float]:
    import openvino
    from od_export import compat
    from od_export.targets.tflite_runner import TFLiteRunner
    from od_export.verify import samples

    tf = compat.import_tensorflow()
    image = samples.sample_image()
    function = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    tensor = tf.constant(samples.input_batch("image_tensor", image))
    calls = {"saved_model": lambda: {k: v.numpy() for k, v in function(input_tensor=tensor).items()}}
    core = openvino.Core()
    # at f32, as verified; and the plugin's own default where this CPU's differs (bf16 with AVX512_BF16 or AMX)
    settings = [("", {"INFERENCE_PRECISION_HINT": "f32"})]
    default = core.get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    if default != "f32":
        settings.append((f" ({default} default)", {}))
    for name, directory in (("openvino:fp32", out), ("openvino:fp16", fp16)):
        for suffix, config in settings:
            compiled = core.compile_model(str(directory / "openvino" / "model.xml"), "CPU", config)
            batch = samples.input_batch("image_tensor", image)
            calls[name + suffix] = lambda compiled=compiled, batch=batch: compiled({"input_tensor": batch})
    spec_path = out / "tflite" / "io_spec.json"
    if spec_path.is_file():
        spec = json.loads(spec_path.read_text())
        pixels = samples.resize_image(image, *spec["input_size"])
        for precision, entry in spec["files"].items():
            runner = TFLiteRunner((out / "tflite" / entry["file"]).read_bytes(), entry, spec)
            calls[f"tflite:{precision}"] = lambda r=runner.runner, f=runner.feed(pixels): r(input_tensor=f)
    for call in calls.values():
        for _ in range(3):
            call()
    timings: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(max(1, runs // BLOCK)):
        for name, call in calls.items():
            for _ in range(BLOCK):
                start = time.perf_counter()
                call()
                timings[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in timings.items()}


def sizes(out: Path, fp16: Path) -> dict[str, int]:
    found = {"saved_model": _size(out / "saved_model"), "openvino:fp32": _size(out / "openvino"),
             "openvino:fp16": _size(fp16 / "openvino")}
    for path in sorted((out / "tflite").glob("model_*.tflite")) if (out / "tflite").is_dir() else []:
        found[f"tflite:{path.stem.split('_')[1]}"] = path.stat().st_size
    return found


def deployment(run: Path, architecture: str, scratch: Path, runs: int) -> dict:
    out, fp16, agreements = make_artifacts(run, architecture, scratch)
    return {"architecture": architecture, "deploy_ms": latency(out, fp16, runs), "bytes": sizes(out, fp16),
            "agreement": agreements}


def _row(ir: str, artifact: str) -> str:
    """A check's name → the latency row it belongs to (``openvino:bf16`` → ``openvino:fp32 (bf16 default)``)."""
    if artifact == "openvino":
        return ir
    if artifact.startswith("openvino:"):
        return f"{ir} ({artifact.split(':')[1]} default)"
    return artifact


def print_table(results: list[dict]) -> None:
    print("\nTFLite and OpenVINO on CPU, one image: median ms per call (ratio to the SavedModel), file size, "
          "and agreement with the SavedModel (fraction of its detections above 0.05 found; fp32 is verified exactly):\n")
    print("| architecture | artifact | latency | vs SavedModel | size | agreement |")
    print("|---|---|---|---|---|---|")
    for r in results:
        base = r["deploy_ms"]["saved_model"]
        for name, value in r["deploy_ms"].items():
            agreement = r["agreement"].get(name)
            shown = f"{agreement['agreement']:.2f} ({agreement['matched']}/{agreement['total']})" if agreement else (
                "reference" if name == "saved_model" else "exact")
            size = r["bytes"][name.split(" ")[0]]
            print(f"| {r['architecture']} | {name} | {value:.1f} ms | {value / base:.2f}× | "
                  f"{size / 2**20:.2f} MB | {shown} |")


def main() -> None:
    from bench_export import make_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architectures", nargs="+", default=list(OPENVINO_ARCHITECTURES), choices=OPENVINO_ARCHITECTURES)
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="od-export-bench-") as temp:
        for architecture in args.architectures:
            print(f"{architecture}: deployment artifacts", file=sys.stderr, flush=True)
            run = make_checkpoint(architecture, Path(temp) / f"run-{architecture}")
            results.append(deployment(run, architecture, Path(temp), args.latency_runs))
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
