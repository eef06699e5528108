"""TF1 OD API runs (slim feature extractors, ``model.ckpt-N``) → the TF1 exporter's layout, verified.

A config whose feature extractor is a TF1 (slim) one, such as ``ssd_mobilenet_v1``,
cannot be built by the TF2 model builder.  Its export runs the OD API's own TF1
``exporter.export_inference_graph`` in a child process with TF1 behaviour
(:mod:`od_export.tf1.od_api_worker`, fixes in :func:`od_export.tf1.od_api_worker.import_tf1_exporter`),
which writes ``frozen_inference_graph.pb``, ``saved_model/``, ``model.ckpt.*`` and
``pipeline.config`` per input type.  Back here, before anything is published, the
exported checkpoint's weights must equal the training checkpoint's, and the frozen
graph and the SavedModel must give the same detections as the checkpointed
inference graph (``model.ckpt.meta`` restored) on the same image.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from od_export import compat
from od_export.errors import ExportFailed, InputError, ValidationFailed, option
from od_export.health import check_finite_outputs
from od_export.options import ExportOptions
from od_export.source.pipeline_config import meta_architecture

logger = logging.getLogger(__name__)

TF1_INPUT_TYPES = ("image_tensor", "encoded_image_string_tensor", "tf_example")
FROZEN_NAME = "frozen_inference_graph.pb"
EXPORTED_PREFIX = "model.ckpt"


def feature_extractor_type(config: Any) -> str:
    architecture = meta_architecture(config)
    if architecture not in ("ssd", "faster_rcnn"):
        return ""
    return str(getattr(config.model, architecture).feature_extractor.type)


def is_tf1_config(config: Any) -> bool:
    """A slim (TF1) feature extractor: the TF2 builder's are all named ``*_keras``."""
    kind = feature_extractor_type(config)
    return bool(kind) and not kind.endswith("_keras")


def check_tf1_request(options: ExportOptions) -> None:
    """What the TF1 exporter cannot do, refused before any work (pure)."""
    kind = "a TF1 (slim) feature extractor"
    for input_type in options.input_types:
        if input_type not in TF1_INPUT_TYPES:
            raise InputError(f"{kind} exports input types {', '.join(TF1_INPUT_TYPES)} (the TF1 exporter's), "
                             f"not {input_type}")
    refused = [("targets", bool(set(options.targets) - {"frozen_graph"}),
                "the TF1 exporter writes a frozen graph and a SavedModel; for other targets convert the config to a "
                "TF2 (*_keras) feature extractor and retrain, or convert the SavedModel"),
               ("freeze", not options.freeze, "the TF1 exporter always writes the frozen graph"),
               ("side_inputs", bool(options.side_inputs), "side inputs need a TF2 model"),
               ("single_saved_model", options.single_saved_model, "one SavedModel for every input type needs a TF2 model"),
               ("full_object_graph", options.full_object_graph, "a TF1 SavedModel has no object graph"),
               ("frozen_format", options.frozen_format != "pb", "the TF1 exporter writes a binary .pb")]
    for name, bad, why in refused:
        if bad:
            raise InputError(f"{kind} cannot take {option(name)}: {why}")


def run_worker(request: dict[str, Any], what: str) -> int:
    """Run :mod:`od_export.tf1.od_api_worker` on ``request``: its count, or its one-line error as ours."""
    with tempfile.TemporaryDirectory(prefix="od-export-tf1-") as scratch:
        path = Path(scratch) / "request.json"
        path.write_text(json.dumps(request), encoding="utf-8")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        process = subprocess.run([sys.executable, "-m", "od_export.tf1.od_api_worker", str(path)],
                                 capture_output=True, text=True, env=env)
    if process.returncode == 0:
        return int(json.loads(process.stdout.strip().splitlines()[-1])["count"])
    errors = [json.loads(line)["error"] for line in process.stdout.splitlines() if line.startswith('{"error"')]
    tail = [line for line in process.stderr.splitlines() if line.strip()][-1:] or [f"exit code {process.returncode}"]
    raise ExportFailed(f"the OD API's TF1 {what} failed: {(errors or tail)[-1]}")


def write_config_text(config: Any, path: Path) -> Path:
    from google.protobuf import text_format

    path.write_text(text_format.MessageToString(config), encoding="utf-8")
    return path


def export_units(config: Any, prefix: Any, units: dict[str, Path]) -> None:
    """The TF1 exporter's layout in each of ``units`` (input type → directory), from ``prefix``."""
    with tempfile.TemporaryDirectory(prefix="od-export-tf1-") as scratch:
        config_path = write_config_text(config, Path(scratch) / "pipeline.config")
        logger.info(f"running the OD API's TF1 exporter for {', '.join(units)} (in a TF1 process)")
        run_worker({"action": "export", "pipeline_config": str(config_path), "checkpoint_prefix": str(prefix),
                    "units": {t: str(d) for t, d in units.items()}}, "exporter")


def write_demo_checkpoint(config_path: Path, prefix: Path, seed: int, step: int) -> int:
    """A seeded random TF1 training checkpoint ``prefix-step``; returns its number of variables."""
    logger.info("building the TF1 model (in a TF1 process)")
    return run_worker({"action": "checkpoint", "pipeline_config": str(config_path), "output_prefix": str(prefix),
                       "seed": seed, "step": step}, "model build")


def signature_io(unit: Path) -> tuple[str, dict[str, str]]:
    """The SavedModel's input tensor name and output key → tensor name (its ``serving_default``)."""
    tf = compat.import_tensorflow()
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((unit / "saved_model" / "saved_model.pb").read_bytes())
    signature = saved.meta_graphs[0].signature_def[tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY]
    return signature.inputs["inputs"].name, {k: v.name for k, v in signature.outputs.items()}


def verify_unit(unit: Path, input_type: str, prefix: Any, config: Any) -> dict[str, str]:
    """Weights equal the training checkpoint's; frozen graph and SavedModel equal the checkpointed graph."""
    from od_export.tf1.meta_graph import restore
    from od_export.verify import graphs, samples

    tf = compat.import_tensorflow()
    _check_weights(unit / EXPORTED_PREFIX, prefix, config)
    input_name, outputs = signature_io(unit)
    value = samples.input_batch(input_type, samples.sample_image())
    restored = restore(unit / f"{EXPORTED_PREFIX}.meta", unit / EXPORTED_PREFIX)
    try:
        expected = dict(zip(outputs, restored.session.run(list(outputs.values()), {input_name: value})))
    finally:
        restored.close()
    check_finite_outputs(expected, f"the {input_type} TF1 model")
    frozen = samples.run_frozen_graph(samples.load_graph_def(unit / FROZEN_NAME), {input_name: value}, outputs)
    served = graphs.run_signature(tf.saved_model.load(str(unit / "saved_model")).signatures["serving_default"],
                                  {"inputs": value})
    checks = {}
    for artifact, actual in (("frozen_graph", frozen), ("saved_model", served)):
        mismatches = graphs.compare_outputs(expected, actual)
        if mismatches:
            raise ValidationFailed(f"{input_type}: the TF1 {artifact.replace('_', ' ')} differs from the checkpointed "
                                   f"graph ({'; '.join(m.describe() for m in mismatches)}); nothing was written")
        checks[artifact] = f"same detections as the checkpointed graph ({len(expected)} outputs)"
    return checks


def _check_weights(exported: Path, prefix: Any, config: Any) -> None:
    """Every exported variable has the training checkpoint's value (its moving average when the exporter used it)."""
    tf = compat.import_tensorflow()
    written, trained = tf.train.load_checkpoint(str(exported)), tf.train.load_checkpoint(str(prefix))
    averaged = config.eval_config.use_moving_averages  # what the TF1 exporter reads
    for name in written.get_variable_to_shape_map():
        source = f"{name}/ExponentialMovingAverage" if averaged and trained.has_tensor(f"{name}/ExponentialMovingAverage") else name
        if not trained.has_tensor(source):
            raise ValidationFailed(f"the exported checkpoint has {name}, which {prefix} does not; nothing was written")
        if not np.array_equal(written.get_tensor(name), trained.get_tensor(source)):
            raise ValidationFailed(f"the exported value of {name} differs from {prefix}; nothing was written")


def export_tf1(options: ExportOptions, config: Any, prefix: Any, output: Any, notes: list[str],
               timings: dict[str, float]) -> Any:
    """The whole TF1 export in staging: the exporter's units, verified, a manifest; then published."""
    from od_export.results import ExportResult, InputTypeResult
    from od_export.layout import unit_relative
    from od_export.manifest import build_manifest, export_request, write_manifest
    from od_export.storage.location import location
    from od_export.storage.output import staged_output

    single = len(options.input_types) == 1
    results = []
    with staged_output(output) as staging:
        units = {t: staging / unit_relative(t, single) for t in options.input_types}
        export_units(config, prefix, units)
        validation: dict[str, Any] = {"ok": True, "checks": {}}
        for input_type, directory in units.items():
            validation["checks"][input_type] = verify_unit(directory, input_type, prefix, config)
            final = output.target if single else output.target / input_type
            input_name, outputs = signature_io(directory)
            result = InputTypeResult(input_type, final, unit_relative(input_type, single),
                                     {"inputs": {"inputs": input_name}, "outputs": outputs}, autograph=False,
                                     checkpoint=EXPORTED_PREFIX)
            result.artifacts = {"saved_model": [final / "saved_model"], "frozen_graph": [final / FROZEN_NAME]}
            results.append(result)
        write_manifest(staging, build_manifest(
            staging, request=export_request(options), pipeline_config=location(options.pipeline_config),
            checkpoint_prefix=prefix, config_overrides=options.config_overrides, architecture=meta_architecture(config),
            input_types=[{"input_type": r.input_type, "directory": str(r.relative), "signature": r.signature,
                          "exporter": "TF1 (object_detection.exporter)", "targets": sorted(r.artifacts)} for r in results],
            timings=timings, validation=validation))
    logger.info(f"wrote {output.target}")
    return ExportResult(output.target, prefix, meta_architecture(config), options.signature_key, results,
                        notes + ["exported with the OD API's TF1 exporter (slim feature extractor)"], timings,
                        validation if options.validate else None)
