#!/usr/bin/env python
"""Benchmark ``od-export batch`` on every checkpoint of a run against the per-checkpoint loop users write.

A demo training run with five checkpoints (different weights each) is made once.
Baseline, as a pipeline does it today: for each checkpoint, one ``exporter_main_v2``
process (on a directory whose ``checkpoint`` file names that checkpoint, since the
tool always exports the latest) and one freezing process.  Candidate: one ``od-export
batch`` process with ``checkpoints: all`` (one input type).  Both alternate, several
times; then the same batch runs again with every export up to date.

    .venv/bin/python scripts/bench_batch.py --architecture ssd_mobilenet_v2 --repetitions 3
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_export import ARCHITECTURES, CHILD_ENV, REPO, baseline, run_child  # noqa: E402

MAKE_RUN = """
import shutil, sys
from pathlib import Path
from od_export import DemoCheckpointOptions, create_demo_checkpoint
config, run, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
run.mkdir(parents=True)
for number in range(1, count + 1):
    demo = create_demo_checkpoint(DemoCheckpointOptions(config, run.parent / f".demo-{number}", seed=number,
                                                        checkpoint_number=number))
    for path in demo.output_dir.iterdir():
        shutil.copy(path, run / path.name)
    shutil.rmtree(demo.output_dir)
"""


def make_run(architecture: str, run: Path, count: int) -> list[Path]:
    """The run, plus one directory per checkpoint whose ``checkpoint`` file names it (for exporter_main_v2)."""
    config = REPO / "pipeline_samples" / f"{architecture}.config"
    subprocess.run([sys.executable, "-c", MAKE_RUN, str(config), str(run), str(count)], env=CHILD_ENV, check=True)
    singles = []
    for number in range(1, count + 1):
        single = run.parent / f"single-ckpt-{number}"
        single.mkdir()
        for path in run.glob(f"ckpt-{number}.*"):
            (single / path.name).symlink_to(path)
        shutil.copy(run / "pipeline.config", single / "pipeline.config")
        (single / "checkpoint").write_text(f'model_checkpoint_path: "ckpt-{number}"\n')
        singles.append(single)
    return singles


def baseline_loop(singles: list[Path], out: Path) -> float:
    return sum(baseline(single, ("image_tensor",), out / single.name)[0] for single in singles)


def od_export_batch(batch_file: Path) -> float:
    return run_child([str(Path(sys.executable).with_name("od-export")), "batch", "-q", str(batch_file)])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", default="ssd_mobilenet_v2", choices=ARCHITECTURES)
    parser.add_argument("--checkpoints", type=int, default=5)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"baseline": [], "od-export": [], "up to date": []}
    with tempfile.TemporaryDirectory(prefix="od-export-bench-batch-") as temp:
        scratch = Path(temp)
        print(f"{args.architecture}: making a run with {args.checkpoints} checkpoints", file=sys.stderr, flush=True)
        singles = make_run(args.architecture, scratch / "run", args.checkpoints)
        for repetition in range(args.repetitions):
            order = ("baseline", "od-export") if repetition % 2 == 0 else ("od-export", "baseline")
            for variant in order:
                out = scratch / f"{variant}-{repetition}"
                if variant == "baseline":
                    times[variant].append(baseline_loop(singles, out))
                else:
                    batch_file = scratch / f"jobs-{repetition}.yaml"
                    batch_file.write_text(f"jobs:\n  - pipeline_config: run/pipeline.config\n    checkpoint_dir: run\n"
                                          f"    output_dir: {out.name}\n    checkpoints: all\n")
                    times[variant].append(od_export_batch(batch_file))
                    times["up to date"].append(od_export_batch(batch_file))
                shutil.rmtree(out, ignore_errors=True)
                print(f"  {variant:9s} rep {repetition + 1}: {times[variant][-1]:.1f} s", file=sys.stderr, flush=True)
    medians = {variant: statistics.median(values) for variant, values in times.items()}
    result = {"architecture": args.architecture, "checkpoints": args.checkpoints, "repetitions": args.repetitions,
              "median_s": medians, "runs_s": times, "ratio": medians["od-export"] / medians["baseline"]}
    print(f"\nEvery checkpoint of a run ({args.checkpoints} checkpoints, image_tensor), median of {args.repetitions} "
          "alternating runs:\n")
    print("| architecture | exporter_main_v2 + freeze, per checkpoint | od-export batch | ratio | batch again, all up to date |")
    print("|---|---|---|---|---|")
    print(f"| {args.architecture} | {medians['baseline']:.1f} s | {medians['od-export']:.1f} s | {result['ratio']:.2f}× "
          f"| {medians['up to date']:.1f} s |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
