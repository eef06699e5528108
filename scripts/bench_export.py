#!/usr/bin/env python
"""Benchmark od-export against exporter_main_v2 plus the usual freezing script.

Baseline, as a practitioner runs it today: for each input type, one
``exporter_main_v2`` process (made to start on this stack by od-export's compat
layer, which it needs to run at all) and one freezing process (load the SavedModel,
take ``serving_default``, ``convert_variables_to_constants_v2``, ``write_graph``).
Candidate: one ``od-export export`` process for all the input types.  Both run on
the same demo checkpoint, alternating, several times; the table gives median wall
time, peak RSS of the child processes and the ratio to the baseline.

Time to a TensorRT-ready ONNX: ``od-export export --input-type float_image_tensor
--target tensorrt`` against the path users take today without od-export (an
``exporter_main_v2`` float export, then a process that reloads the SavedModel and
converts it with ``python -m tf2onnx.convert``; it does not even do the NMS surgery
that NVIDIA's ``create_onnx.py`` adds), alternating.  A last table compares per-image
CPU latency of the SavedModel, the frozen graph and the ONNX file in onnxruntime.

    .venv/bin/python scripts/bench_export.py --architectures ssd_mobilenet_v2 --repetitions 3
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from od_export.options import INPUT_TYPES  # noqa: E402  (light: no TensorFlow import)

#: Latency calls per runtime before switching to the next runtime.
LATENCY_BLOCK = 10
ARCHITECTURES = tuple(sorted(p.stem for p in (REPO / "pipeline_samples").glob("*.config")))
CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}
os.environ.update(TF_CPP_MIN_LOG_LEVEL="3")  # the latency step imports TensorFlow here too
# Latency is measured with TensorFlow's kernel choice as the environment has it.  Note that
# TF_ENABLE_ONEDNN_OPTS=1 on a CPU without AVX-512 made the SavedModel ~20x slower (SSD:
# 94 ms against 4.6 ms per image), while the default there is oneDNN off.


# ----------------------------------------------------------------- child modes
def child_exporter_main_v2(argv: list[str]) -> None:
    """Run the OD API's exporter_main_v2 unchanged, after od-export's import fixes."""
    from od_export import compat

    compat.import_object_detection()
    sys.argv = ["exporter_main_v2.py", *argv]
    runpy.run_module("object_detection.exporter_main_v2", run_name="__main__")


def child_freeze(saved_model: str, output_dir: str) -> None:
    """The freezing script users write today (the recipe od-export replaces)."""
    from od_export import compat

    tf = compat.import_tensorflow()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    loaded = tf.saved_model.load(saved_model)  # must outlive the function, or its variables go
    function = loaded.signatures["serving_default"]
    frozen = convert_variables_to_constants_v2(function)
    tf.io.write_graph(frozen.graph.as_graph_def(), output_dir, "frozen_inference_graph.pb", as_text=False)


# ----------------------------------------------------------------- measuring
def run_child(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process; fails loudly on error."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=CHILD_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr_tail = process.stderr.read()[-3000:]
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark child failed: {' '.join(command)}\n{stderr_tail.decode(errors='replace')}")
    return elapsed, usage.ru_maxrss * 1024


def baseline(run: Path, input_types: tuple[str, ...], out: Path) -> tuple[float, int]:
    wall, peak = 0.0, 0
    for input_type in input_types:
        target = out / input_type
        seconds, rss = run_child([
            sys.executable, __file__, "_exporter_main_v2", f"--input_type={input_type}",
            f"--pipeline_config_path={run / 'pipeline.config'}", f"--trained_checkpoint_dir={run}",
            f"--output_directory={target}",
        ])
        wall, peak = wall + seconds, max(peak, rss)
        seconds, rss = run_child([sys.executable, __file__, "_freeze", str(target / "saved_model"), str(target / "frozen_graph")])
        wall, peak = wall + seconds, max(peak, rss)
    return wall, peak


def od_export(run: Path, input_types: tuple[str, ...], out: Path) -> tuple[float, int]:
    command = [str(Path(sys.executable).with_name("od-export")), "export", "-q",
               "--pipeline-config", str(run / "pipeline.config"), "--checkpoint-dir", str(run), "--output-dir", str(out)]
    for input_type in input_types:
        command += ["--input-type", input_type]
    return run_child(command)


def tensorrt_baseline(run: Path, out: Path) -> tuple[float, int]:
    wall, peak = run_child([
        sys.executable, __file__, "_exporter_main_v2", "--input_type=float_image_tensor",
        f"--pipeline_config_path={run / 'pipeline.config'}", f"--trained_checkpoint_dir={run}", f"--output_directory={out}",
    ])
    seconds, rss = run_child([sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(out / "saved_model"),
                              "--opset", "17", "--output", str(out / "model.onnx")])
    return wall + seconds, max(peak, rss)


def tensorrt_od_export(run: Path, out: Path) -> tuple[float, int]:
    return run_child([str(Path(sys.executable).with_name("od-export")), "export", "-q", "--input-type",
                      "float_image_tensor", "--target", "tensorrt", "--pipeline-config", str(run / "pipeline.config"),
                      "--checkpoint-dir", str(run), "--output-dir", str(out)])


def tensorrt_time(run: Path, repetitions: int, scratch: Path) -> dict:
    samples: dict[str, list[tuple[float, int]]] = {"baseline": [], "od-export": []}
    for repetition in range(repetitions):
        order = ("baseline", "od-export") if repetition % 2 == 0 else ("od-export", "baseline")
        for variant in order:
            out = scratch / f"trt-{variant}-{repetition}"
            measure = tensorrt_baseline if variant == "baseline" else tensorrt_od_export
            samples[variant].append(measure(run, out))
            shutil.rmtree(out, ignore_errors=True)
            print(f"  tensorrt {variant:9s} rep {repetition + 1}: {samples[variant][-1][0]:.1f} s", file=sys.stderr, flush=True)
    medians = {variant: statistics.median(v[0] for v in values) for variant, values in samples.items()}
    return {"baseline_s": medians["baseline"], "od_export_s": medians["od-export"],
            "ratio": medians["od-export"] / medians["baseline"]}


def export_time(run: Path, input_types: tuple[str, ...], repetitions: int, scratch: Path, keep: Path) -> dict:
    samples: dict[str, list[tuple[float, int]]] = {"baseline": [], "od-export": []}
    phases: list[dict[str, float]] = []  # od-export's own per-phase timings, from its manifest
    for repetition in range(repetitions):
        order = ("baseline", "od-export") if repetition % 2 == 0 else ("od-export", "baseline")
        for variant in order:
            out = scratch / f"{variant}-{repetition}"
            measure = baseline if variant == "baseline" else od_export
            samples[variant].append(measure(run, input_types, out))
            if variant == "od-export":
                phases.append(json.loads((out / "manifest.json").read_text())["timings_s"])
            if variant == "od-export" and not keep.exists():
                shutil.move(str(out), keep)
            shutil.rmtree(out, ignore_errors=True)
            print(f"  {variant:9s} {len(input_types)} type(s) rep {repetition + 1}: {samples[variant][-1][0]:.1f} s", file=sys.stderr, flush=True)
    summary = {}
    for variant, values in samples.items():
        summary[variant] = {
            "median_s": statistics.median(v[0] for v in values),
            "peak_rss_mb": max(v[1] for v in values) / 2**20,
            "runs_s": [round(v[0], 2) for v in values],
        }
    summary["od-export"]["phases_s"] = {phase: statistics.median(p[phase] for p in phases) for phase in phases[0]}
    summary["ratio"] = summary["od-export"]["median_s"] / summary["baseline"]["median_s"]
    summary["rss_ratio"] = summary["od-export"]["peak_rss_mb"] / summary["baseline"]["peak_rss_mb"]
    return summary


def inference_latency(export_dir: Path, architecture: str, runs: int) -> dict:
    """Median ms per image: SavedModel, frozen graph, ONNX in onnxruntime; alternating, same image, CPU."""
    import od_export
    from od_export import compat
    from od_export.verify import samples

    tf = compat.import_tensorflow()
    directory = export_dir / "image_tensor" if (export_dir / "image_tensor").is_dir() else export_dir
    od_export.convert(od_export.ConvertOptions(directory, targets=("onnx",)))
    import onnxruntime

    # onnxruntime's threads spin for a while after each run; alternating with TensorFlow on
    # two cores, that spinning would be charged to the TensorFlow calls, so it is turned off.
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(directory / "onnx" / "model.onnx"), options)
    calls = {"onnx": lambda: session.run(None, {"input_tensor": image})}
    image = samples.input_batch("image_tensor", samples.sample_image())
    loaded = tf.saved_model.load(str(directory / "saved_model"))
    function = loaded.signatures["serving_default"]
    runner = samples.FrozenGraphRunner(
        samples.load_graph_def(directory / "frozen_graph" / "frozen_inference_graph.pb"), optimize=True
    )
    spec = json.loads((directory / "frozen_graph" / "io_spec.json").read_text())
    fetches = {key: entry["tensor"] for key, entry in spec["outputs"].items()}
    tensor = tf.constant(image)

    def saved_model_once() -> None:
        {k: v.numpy() for k, v in function(input_tensor=tensor).items()}

    def frozen_once() -> None:
        runner.run({"input_tensor:0": image}, fetches)

    calls = {"saved_model": saved_model_once, "frozen_graph": frozen_once, **calls}
    for _ in range(5):
        for call in calls.values():
            call()
    # Runtimes alternate in blocks, not call by call: switching between TensorFlow's eager
    # runtime and a session on every call made the SavedModel's calls ~15× slower than
    # alone (measured, SSD), which is not what a server running one of them sees.
    timings: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(max(1, runs // LATENCY_BLOCK)):
        for name, call in calls.items():
            for _ in range(LATENCY_BLOCK):
                start = time.perf_counter()
                call()
                timings[name].append((time.perf_counter() - start) * 1000)
    result = {name: statistics.median(values) for name, values in timings.items()}
    result["ratio"] = result["frozen_graph"] / result["saved_model"]
    if "onnx" in result:
        result["onnx_ratio"] = result["onnx"] / result["saved_model"]
    return result


def make_checkpoint(architecture: str, directory: Path) -> Path:
    subprocess.run(
        [str(Path(sys.executable).with_name("od-export")), "demo-checkpoint", "-q",
         "--pipeline-config", str(REPO / "pipeline_samples" / f"{architecture}.config"), "--output-dir", str(directory)],
        env=CHILD_ENV, check=True, stdout=subprocess.DEVNULL,
    )
    return directory


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_exporter_main_v2":
        return child_exporter_main_v2(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "_freeze":
        return child_freeze(sys.argv[2], sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES), choices=ARCHITECTURES)
    parser.add_argument("--input-type-counts", nargs="+", type=int, default=[1, 4], choices=[1, 2, 3, 4])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--no-tensorrt", dest="tensorrt", action="store_false", help="skip the TensorRT-ready ONNX timing")
    parser.add_argument("--deploy", action="store_true", help="also TFLite/OpenVINO latency, size, agreement (bench_deploy.py)")
    parser.add_argument("--only-deploy", action="store_true", help="only that (no export or TensorRT timing)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    from bench_deploy import OPENVINO_ARCHITECTURES, deployment, print_table

    results = []
    with tempfile.TemporaryDirectory(prefix="od-export-bench-") as temp:
        scratch = Path(temp)
        for architecture in args.architectures:
            print(f"{architecture}: making a demo checkpoint", file=sys.stderr, flush=True)
            run = make_checkpoint(architecture, scratch / f"run-{architecture}")
            keep = scratch / f"kept-{architecture}"
            if (args.deploy or args.only_deploy) and architecture in OPENVINO_ARCHITECTURES:
                results.append(deployment(run, architecture, scratch, args.latency_runs))
            if args.only_deploy:
                continue
            for count in args.input_type_counts:
                summary = export_time(run, INPUT_TYPES[:count], args.repetitions, scratch, keep / str(count))
                results.append({"architecture": architecture, "input_types": count, **summary})
            if args.tensorrt and architecture != "faster_rcnn_resnet50":
                results.append({"architecture": architecture, "tensorrt": tensorrt_time(run, args.repetitions, scratch)})
            latency = inference_latency(keep / str(args.input_type_counts[0]), architecture, args.latency_runs)
            results.append({"architecture": architecture, "latency_ms": latency})
    if not args.only_deploy:
        print_tables(results, args.repetitions)
    if args.deploy or args.only_deploy:
        print_table([r for r in results if "deploy_ms" in r])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def print_tables(results: list[dict], repetitions: int) -> None:
    print(f"\nExport: median of {repetitions} alternating runs; peak RSS is the largest child process.\n")
    print("| architecture | input types | exporter_main_v2 + freeze | od-export | ratio | peak RSS baseline | peak RSS od-export |")
    print("|---|---|---|---|---|---|---|")
    for r in (r for r in results if "ratio" in r):
        print(f"| {r['architecture']} | {r['input_types']} | {r['baseline']['median_s']:.1f} s | {r['od-export']['median_s']:.1f} s "
              f"| {r['ratio']:.2f}× | {r['baseline']['peak_rss_mb']:.0f} MB | {r['od-export']['peak_rss_mb']:.0f} MB |")
    exports = [r for r in results if "ratio" in r]
    phase_names = list(exports[0]["od-export"]["phases_s"]) if exports else []
    print("\nod-export phases, median seconds (from each run's manifest.json; the rest is process start and exit):\n")
    print("| architecture | input types | " + " | ".join(phase_names) + " |")
    print("|---|---|" + "---|" * len(phase_names))
    for r in exports:
        phases = r["od-export"]["phases_s"]
        print(f"| {r['architecture']} | {r['input_types']} | " + " | ".join(f"{phases[p]:.1f}" for p in phase_names) + " |")
    print(f"\nTime to a TensorRT-ready ONNX, median of {repetitions} alternating runs:\n")
    print("| architecture | exporter_main_v2 float + tf2onnx | od-export --target tensorrt | ratio |")
    print("|---|---|---|---|")
    for r in (r for r in results if "tensorrt" in r):
        t = r["tensorrt"]
        print(f"| {r['architecture']} | {t['baseline_s']:.1f} s | {t['od_export_s']:.1f} s | {t['ratio']:.2f}× |")
    print("\nInference on CPU, image_tensor, one image, median ms per call:\n")
    print("| architecture | SavedModel | frozen graph | ratio | ONNX (onnxruntime) | ratio |")
    print("|---|---|---|---|---|---|")
    for r in (r for r in results if "latency_ms" in r):
        latency = r["latency_ms"]
        onnx = f"{latency['onnx']:.1f} ms | {latency['onnx_ratio']:.2f}×" if "onnx" in latency else "— | —"
        print(f"| {r['architecture']} | {latency['saved_model']:.1f} ms | {latency['frozen_graph']:.1f} ms "
              f"| {latency['ratio']:.2f}× | {onnx} |")


if __name__ == "__main__":
    main()
