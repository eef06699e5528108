"""``od-export freeze``: a TF1 checkpoint → ``frozen_graph/`` (+ a Predict SavedModel), verified.

The output directory is built in staging and published whole, like an export: the
frozen graph and the SavedModel are each run on the same sample inputs as the
restored checkpoint and must give its outputs before anything is moved into place.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from od_export import compat
from od_export.errors import InputError, ValidationFailed
from od_export.layout import IO_SPEC_NAME, SAVED_MODEL_DIR
from od_export.manifest import checkpoint_files, export_request, output_manifest, sha256_of, write_manifest
from od_export.storage.output import plan_output, reserve, staged_output
from od_export.tf1 import inference_graph, meta_graph, serving
from od_export.targets.frozen_graph import FROZEN_GRAPH_DIR, FROZEN_GRAPH_NAME
from od_export.verify import graphs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FreezeOptions:
    meta_graph: str | Path
    output_dir: str | Path
    #: Checkpoint prefix; None: the one the .meta is named after, else the state file's latest.
    checkpoint: str | Path | None = None
    #: Output nodes (or tensors, ``name:1``); empty: discovered.
    output_nodes: tuple[str, ...] = ()
    saved_model: bool = False
    #: SignatureDef key → tensor; empty: every input (output) under its node name.
    signature_inputs: tuple[tuple[str, str], ...] = ()
    signature_outputs: tuple[tuple[str, str], ...] = ()
    #: Put a JPEG/PNG decode-and-resize front end before the image input of the SavedModel.
    encoded_image_input: bool = False
    #: The values 0 and 255 of a decoded pixel become these for a float image input.
    encoded_image_range: tuple[float, float] = (0.0, 255.0)
    overwrite: bool = False
    wait: bool = False

    def check(self) -> None:
        for what, pairs in (("signature input", self.signature_inputs), ("signature output", self.signature_outputs)):
            keys = [key for key, _ in pairs]
            repeated = sorted({k for k in keys if keys.count(k) > 1})
            if repeated:
                raise InputError(f"{what} key {repeated[0]!r} is given twice; give each key once")
        low, high = self.encoded_image_range
        if not low < high:
            raise InputError(f"encoded image range {low},{high} is empty; give the low then the high value, like 0,1")

    @property
    def writes_saved_model(self) -> bool:
        return self.saved_model or self.encoded_image_input


@dataclass
class FreezeResult:
    output_dir: Path
    frozen_graph: Path
    saved_model: Path | None
    io_spec: dict[str, Any]
    checks: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, "output_dir": str(self.output_dir), "frozen_graph": str(self.frozen_graph),
                "saved_model": str(self.saved_model) if self.saved_model else None, "io_spec": self.io_spec,
                "checks": self.checks}


def freeze_checkpoint(options: FreezeOptions) -> FreezeResult:
    options.check()
    meta, prefix = meta_graph.resolve_sources(options.meta_graph, options.checkpoint)
    plan = plan_output(options.output_dir, options.overwrite, [("checkpoint directory", prefix.parent),
                                                                ("meta graph", meta)])
    with reserve(plan, options.wait):
        logger.info(f"restoring {meta.name} from {prefix}")
        compat.import_tensorflow()
        restored = meta_graph.restore(meta, prefix)
        try:
            frozen, discovered = _freeze(restored, options)
            io_spec, signature = _io_spec(meta, prefix, frozen, discovered, options)
            samples = _sample_feeds(frozen, signature)
            expected = _run_checkpoint(restored, frozen, signature, samples)
        finally:
            restored.close()
        with staged_output(plan) as staging:
            with inference_graph.tensorflow_errors("checking"):
                result = _write_and_verify(staging, frozen, io_spec, signature, samples, expected)
            write_manifest(staging, output_manifest(
                staging, "tf1_freeze", request=export_request(options),
                source={"meta_graph": {"path": str(meta.absolute()), "sha256": sha256_of([meta])},
                        "checkpoint": {"prefix": str(prefix.absolute()), "sha256": sha256_of(checkpoint_files(prefix))}},
                validation=result.checks))
    final = Path(plan.target)
    result.output_dir = final
    result.frozen_graph = final / result.frozen_graph.relative_to(staging)
    result.saved_model = final / SAVED_MODEL_DIR if result.saved_model else None
    logger.info(f"wrote {final}")
    return result


def _freeze(restored: meta_graph.RestoredGraph, options: FreezeOptions) -> tuple[inference_graph.Frozen, bool]:
    choice = inference_graph.choose_outputs(restored, options.output_nodes)
    how = f"declared by {choice.discovery.declared}" if choice.discovery.declared else "found"
    logger.info(f"outputs ({how if choice.discovered else 'given'}): {', '.join(choice.outputs)}")
    frozen = inference_graph.freeze(restored, choice)
    if frozen.held_lines:
        logger.info(f"held for inference: {'; '.join(frozen.held_lines)}")
    described = [f"{key} {spec['dtype']} {spec['shape']}" for key, spec in frozen.inputs.items()]
    logger.info(f"inputs: {', '.join(described) or 'none'}")
    return frozen, choice.discovered


def _signature_map(pairs: tuple[tuple[str, str], ...], default: dict[str, dict[str, Any]], names: set[str],
                   what: str) -> dict[str, str]:
    if not pairs:
        return {key: spec["tensor"] for key, spec in default.items()}
    mapping = {key: tensor if ":" in tensor else f"{tensor}:0" for key, tensor in pairs}
    for key, tensor in mapping.items():
        if tensor.split(":")[0] not in names:
            raise InputError(f"signature {what} {key}={tensor} names a tensor the frozen graph does not have; "
                             f"it has {what}s {', '.join(spec['tensor'] for spec in default.values())}")
    return mapping


@dataclass(frozen=True)
class _Serving:
    """The SavedModel's signature: key → tensor for inputs and outputs, and the front end, if any."""

    inputs: dict[str, str]
    outputs: dict[str, str]
    front: serving.EncodedFrontEnd | None = None


def _io_spec(meta: Path, prefix: Path, frozen: inference_graph.Frozen, discovered: bool,
             options: FreezeOptions) -> tuple[dict[str, Any], _Serving | None]:
    spec: dict[str, Any] = {
        "source": {"meta_graph": str(meta), "checkpoint": str(prefix)},
        "outputs_discovered": discovered,
        "inputs": frozen.inputs,
        "outputs": frozen.outputs,
        "folded_defaults": frozen.folded_defaults,
        "held_for_inference": frozen.held_lines,
        "node_count": len(frozen.graph_def.node),
    }
    if not options.writes_saved_model:
        return spec, None
    names = {node.name for node in frozen.graph_def.node}
    inputs = _signature_map(options.signature_inputs, frozen.inputs, names, "input")
    missing = sorted(set(spec["tensor"] for spec in frozen.inputs.values()) - set(inputs.values()))
    if missing:
        raise InputError(f"the signature's inputs leave out {', '.join(missing)}, which the outputs need; add them")
    plan = _Serving(inputs, _signature_map(options.signature_outputs, frozen.outputs, names, "output"))
    spec["saved_model"] = {"signature_key": "serving_default", "inputs": plan.inputs, "outputs": plan.outputs}
    if options.encoded_image_input:
        by_tensor = {entry["tensor"]: entry for entry in frozen.inputs.values()}
        front = serving.encoded_front_end({key: by_tensor[tensor] for key, tensor in inputs.items()},
                                          options.encoded_image_range)
        plan = _Serving(plan.inputs, plan.outputs, front)
        spec["saved_model"]["encoded_image_input"] = {**front.__dict__, "value_range": list(front.value_range),
                                                      "input_key": serving.ENCODED_INPUT_KEY,
                                                      "format": "JPEG or PNG bytes"}
    return spec, plan


@dataclass
class _Samples:
    """Input tensor name → sample value, and the same images as PNG bytes for a decoding front end."""

    feeds: dict[str, np.ndarray]
    encoded: np.ndarray | None = None


def _sample_feeds(frozen: inference_graph.Frozen, plan: _Serving | None) -> _Samples:
    samples = _Samples({spec["tensor"]: graphs.sample_value(spec) for spec in frozen.inputs.values()})
    if plan is None or plan.front is None:
        return samples
    front, image_tensor = plan.front, plan.inputs[plan.front.image_key]
    image = next(spec for spec in frozen.inputs.values() if spec["tensor"] == image_tensor)
    pixels = graphs.sample_value({**image, "dtype": "uint8"})
    samples.encoded = np.array([graphs.png_bytes(p) for p in pixels], dtype=object)
    low, high = front.value_range
    samples.feeds[image_tensor] = pixels if front.dtype == "uint8" else (
        pixels.astype(np.float32) * np.float32((high - low) / 255.0) + np.float32(low))
    return samples


def _run_checkpoint(restored: meta_graph.RestoredGraph, frozen: inference_graph.Frozen, plan: _Serving | None,
                    samples: _Samples) -> dict[str, np.ndarray]:
    """The restored training graph's values of every output tensor (the reference)."""
    tensors = {spec["tensor"] for spec in frozen.outputs.values()} | set(plan.outputs.values() if plan else ())
    fetches = sorted(tensors)
    feeds = {frozen.stands_for.get(name, name): value for name, value in samples.feeds.items()}
    values = _session_run(restored, fetches, {**frozen.held, **frozen.draws, **feeds})
    return dict(zip(fetches, values))


def _session_run(restored: meta_graph.RestoredGraph, fetches: list[str], feeds: dict[str, Any]) -> list[Any]:
    with inference_graph.tensorflow_errors("running"):
        return restored.session.run(fetches, feed_dict=feeds)


def _write_and_verify(staging: Path, frozen: inference_graph.Frozen, io_spec: dict[str, Any], plan: _Serving | None,
                      samples: _Samples, expected: dict[str, np.ndarray]) -> FreezeResult:
    from od_export.verify.samples import run_frozen_graph

    directory = staging / FROZEN_GRAPH_DIR
    directory.mkdir(parents=True)
    graph_path = directory / f"{FROZEN_GRAPH_NAME}.pb"
    graph_path.write_bytes(frozen.graph_def.SerializeToString())
    (directory / IO_SPEC_NAME).write_text(json.dumps(io_spec, indent=2) + "\n", encoding="utf-8")
    fetches = {spec["tensor"]: spec["tensor"] for spec in frozen.outputs.values()}
    result = FreezeResult(staging, graph_path, None, io_spec)
    _judge(result, "frozen_graph", {t: expected[t] for t in fetches}, run_frozen_graph(frozen.graph_def, {**frozen.draws, **samples.feeds}, fetches))
    if plan is not None:
        serving.write_predict_saved_model(frozen.graph_def, plan.inputs, plan.outputs, staging / SAVED_MODEL_DIR, plan.front)
        result.saved_model = staging / SAVED_MODEL_DIR
        _judge(result, "saved_model", {k: expected[t] for k, t in plan.outputs.items()},
               _run_saved_model(result.saved_model, plan, samples, frozen.draws))
    return result


def _run_saved_model(directory: Path, plan: _Serving, samples: _Samples,
                     draws: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The SavedModel's outputs as TF Serving computes them; with random ops, their draws fed through TF1's loader."""
    tf = compat.import_tensorflow()
    inputs = {key: samples.feeds[tensor] for key, tensor in plan.inputs.items()}
    if plan.front is not None:
        inputs.pop(plan.front.image_key)
        inputs[serving.ENCODED_INPUT_KEY] = samples.encoded
    if not draws:
        return graphs.run_signature(tf.saved_model.load(str(directory)).signatures["serving_default"], inputs)
    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as session:
        loaded = v1.saved_model.loader.load(session, [v1.saved_model.tag_constants.SERVING], str(directory))
        signature = loaded.signature_def["serving_default"]
        feeds = {signature.inputs[k].name: v for k, v in inputs.items()}
        keys = sorted(signature.outputs)
        values = session.run([signature.outputs[k].name for k in keys], {**draws, **feeds})
    return dict(zip(keys, values))


def _judge(result: FreezeResult, artifact: str, expected: dict[str, np.ndarray], actual: dict[str, Any]) -> None:
    mismatches = graphs.compare_outputs(expected, actual)
    if mismatches:
        raise ValidationFailed(f"the {artifact.replace('_', ' ')} differs from the checkpointed graph on the same inputs "
                               f"({'; '.join(m.describe() for m in mismatches)}); nothing was written")
    result.checks[artifact] = f"same outputs as the checkpoint on {len(expected)} tensors"
    logger.info(f"{artifact}: same outputs as the checkpointed graph")
