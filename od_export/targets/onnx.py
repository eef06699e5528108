"""``onnx/model.onnx``: the serving function converted by tf2onnx, verified in onnxruntime.

The traced serving function is frozen in memory, as for the frozen-graph target but
with TensorFlow's functional control flow kept (tf2onnx turns ``While``/``If`` into
ONNX ``Loop``/``If``; the lowered ``Enter``/``Exit`` frames kept for TF1 tools do not
convert), and tf2onnx converts that GraphDef: no SavedModel reload, no subprocess.
Inputs and outputs carry the signature's names (``input_tensor``,
``detection_boxes``, …), and dynamic dimensions stay dynamic.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from od_export.errors import ExportFailed, InputError
from od_export.layout import IO_SPEC_NAME
from od_export.storage.location import AnyPath
from od_export.targets.base import ArtifactRunner, ExportContext, Target, pixels_as
from od_export.source.labels import Labels, metadata_entries
from od_export.targets.settings import Setting
from od_export.verify.reference import Reference
from od_export.verify.report import ArtifactCheck, Tolerance, compare_runs

logger = logging.getLogger(__name__)

ONNX_DIR = "onnx"
ONNX_FILE = "model.onnx"
ONNX_MODULES = ("tf2onnx", "onnx", "onnxruntime")
#: ONNX has no image decoder and no tf.Example parser: these input types do not convert.
STRING_INPUT_TYPES = ("encoded_image_string_tensor", "tf_example")
#: ONNX opsets that tf2onnx 1.17 writes and onnxruntime runs.
OPSETS = range(13, 19)


def _check_opset(opset: int) -> None:
    if opset not in OPSETS:
        raise InputError(f"ONNX opset {opset} is not supported; choose {OPSETS.start} to {OPSETS.stop - 1}")


OPSET = Setting("opset", 17, "the ONNX opset", kind=int, check_value=_check_opset, label="ONNX opset")


def convert_function(concrete: Any, opset: int) -> Any:
    """A traced function → ONNX ModelProto named after the signature; conversion errors fail the export."""
    from od_export.source.freezing import freeze_function

    frozen = freeze_function(concrete, lower_control_flow=False)
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(max(logging.getLogger("od_export").getEffectiveLevel(), logging.ERROR))
    names = {entry["tensor"]: key for part in ("inputs", "outputs") for key, entry in frozen.io_spec[part].items()}
    logger.info(f"converting to ONNX with tf2onnx (opset {opset}, {len(frozen.graph_def.node)} nodes)")
    try:
        model_proto, _ = tf2onnx.convert.from_graph_def(
            frozen.graph_def, input_names=[e["tensor"] for e in frozen.io_spec["inputs"].values()],
            output_names=[e["tensor"] for e in frozen.io_spec["outputs"].values()], opset=opset, tensors_to_rename=names)
    except Exception as exc:  # tf2onnx raises plain ValueError/KeyError/RuntimeError for what it cannot convert
        raise ExportFailed(f"tf2onnx cannot convert this model: {' '.join(str(exc).split())[:300]}") from exc
    return model_proto


def _value_info(value: Any) -> dict[str, Any]:
    import onnx

    tensor = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    return {"dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name, "shape": dims}


def describe_onnx(model_proto: Any) -> dict[str, Any]:
    """Opset, inputs and outputs (name, dtype, shape with None for dynamic) of an ONNX model."""
    opsets = {entry.domain or "ai.onnx": entry.version for entry in model_proto.opset_import}
    return {
        "format": "onnx",
        "opset": opsets.get("ai.onnx"),
        "opsets": opsets,
        "producer": f"{model_proto.producer_name} {model_proto.producer_version}".strip(),
        "inputs": {v.name: _value_info(v) for v in model_proto.graph.input},
        "outputs": {v.name: _value_info(v) for v in model_proto.graph.output},
    }


def inspect_onnx(path: AnyPath) -> dict[str, Any]:
    """Opset, inputs, outputs and any TensorRT plugin nodes (with their attributes) of an ONNX file."""
    import onnx

    try:
        model = onnx.load_from_string(read_bytes(path))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise InputError(f"{path} is not an ONNX model ({' '.join(str(exc).split())[:200]})") from exc
    plugins = [{"name": node.name, "op": node.op_type, "attributes": {a.name: _attribute(a) for a in node.attribute}}
               for node in model.graph.node if node.op_type.endswith("_TRT")]
    return {**describe_onnx(model), "nodes": len(model.graph.node), "plugins": plugins,
            "metadata": {entry.key: entry.value for entry in model.metadata_props}}


def _attribute(attribute: Any) -> Any:
    import onnx

    value = onnx.helper.get_attribute_value(attribute)
    return value.decode() if isinstance(value, bytes) else value


def write_onnx(model_proto: Any, directory: Path, extra_spec: dict[str, Any] | None = None,
               labels: Labels | None = None) -> list[Path]:
    """``model.onnx`` (with the class names in its ``metadata_props``) and its ``io_spec.json`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ONNX_FILE
    entries = metadata_entries(labels, 0) if labels is not None else {}
    kept = [(p.key, p.value) for p in model_proto.metadata_props if p.key not in entries]
    del model_proto.metadata_props[:]  # a conversion shared by several units is written once per unit
    for key, value in kept + list(entries.items()):
        model_proto.metadata_props.add(key=key, value=value)
    path.write_bytes(model_proto.SerializeToString())
    spec = {**describe_onnx(model_proto), **(extra_spec or {})}
    spec_path = directory / IO_SPEC_NAME
    spec_path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return [path, spec_path]


class OnnxRunner:
    """An ONNX file in onnxruntime with its default providers and settings, as users run it."""

    def __init__(self, model: bytes | str) -> None:
        import onnxruntime

        onnxruntime.set_default_logger_severity(3)  # its warnings are about graph rewrites, not results
        self.session = onnxruntime.InferenceSession(model, providers=onnxruntime.get_available_providers())
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds)))


class OnnxFileRunner(ArtifactRunner):
    """``benchmark``'s view of an ONNX file: onnxruntime, default providers, the input's own dtype."""

    runtime = "onnxruntime"

    def load(self) -> None:
        self.runner = OnnxRunner(read_bytes(self.files[0]))
        self.dtype = "uint8" if self.runner.session.get_inputs()[0].type == "tensor(uint8)" else "float32"

    def feed(self, pixels: Any, encoded: bytes) -> Any:
        return pixels_as(self.dtype, pixels)

    def infer(self, feed: Any) -> Any:
        return self.runner.run({"input_tensor": feed})


def read_bytes(path: AnyPath) -> bytes:
    with path.open("rb") as handle:
        return handle.read()


def run_failure(check: ArtifactCheck, exc: Exception) -> ArtifactCheck:
    check.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return check


#: What a file written without post-processing returns (the SavedModel's outputs of the same names).
RAW_OUTPUTS = ("raw_detection_boxes", "raw_detection_scores")
RAW_NOTE = ("none: raw_detection_boxes are every anchor's decoded box ([ymin, xmin, ymax, xmax], normalised) and "
            "raw_detection_scores its score per class after the score conversion, background in column 0 (so column k "
            "is label id k), before non-maximum suppression")


def is_raw(spec: dict[str, Any]) -> bool:
    """Whether an io_spec.json describes a file written without post-processing (:data:`RAW_NOTE`; an SSD
    TFLite file's ``postprocessing`` names its op instead)."""
    return str(spec.get("postprocessing", "")).startswith("none")


def input_spec(concrete: Any) -> Any:
    """The TensorSpec of a one-input serving function's input."""
    args, kwargs = concrete.structured_input_signature
    [spec] = list(args) + list(kwargs.values())
    return spec


def onnx_ready_function(context: ExportContext) -> Any:
    """The serving function, retraced where an op does not convert faithfully (see portable_crop), and
    ending at the raw outputs when written without post-processing (freezing then prunes the NMS away)."""
    from od_export.source.portable_crop import portable_serving_function

    concrete = portable_serving_function(context)
    if context.options.postprocessing:
        return concrete
    return raw_function(concrete)


def raw_function(concrete: Any, input_shape: list[int] | None = None) -> Any:
    """``concrete`` cut at its raw outputs (its input shape fixed to ``input_shape`` if given)."""
    from od_export import compat

    tf = compat.import_tensorflow()
    spec = input_spec(concrete)
    _, kwargs = concrete.structured_input_signature
    if input_shape is not None:
        spec = tf.TensorSpec(input_shape, spec.dtype, name=spec.name)
    missing = [key for key in RAW_OUTPUTS if key not in concrete.structured_outputs]
    if missing:
        raise ExportFailed(f"this model's serving function has no {missing[0]}, so there is nothing to export "
                           "without post-processing")

    def raw(input_tensor: Any) -> dict[str, Any]:
        outputs = concrete(input_tensor=input_tensor) if kwargs else concrete(input_tensor)
        return {key: outputs[key] for key in RAW_OUTPUTS}

    return tf.function(raw, input_signature=[spec], autograph=False).get_concrete_function()


class OnnxTarget(Target):
    name = "onnx"
    directory = ONNX_DIR
    extra = "onnx"
    modules = ONNX_MODULES
    settings = (OPSET,)
    raw_outputs = True

    def unsupported_reason(self, input_type: str) -> str:
        if input_type in STRING_INPUT_TYPES:
            return "ONNX has no image decoder; convert an image_tensor or float_image_tensor export"
        return ""

    def write(self, context: ExportContext, directory: Path) -> list[Path]:
        model_proto = convert_function(onnx_ready_function(context), context.options.conversion.value(OPSET))
        spec = {"input_type": context.input_type, **({} if context.options.postprocessing else {"postprocessing": RAW_NOTE})}
        return write_onnx(model_proto, directory, spec, context.labels)

    def find(self, unit_dir: AnyPath) -> AnyPath | None:
        path = unit_dir / ONNX_DIR / ONNX_FILE
        return path if path.is_file() else None

    def runners(self, artifact: AnyPath) -> list[ArtifactRunner]:
        if is_raw(json.loads((artifact.parent / IO_SPEC_NAME).read_text(encoding="utf-8"))):
            logger.warning(f"{self.name}: written without post-processing, it has no detections to benchmark")
            return []
        return [OnnxFileRunner(self.name, [artifact])]

    file_description = "an .onnx file"

    def claims(self, path: AnyPath) -> bool:
        return path.suffix == ".onnx"

    def inspect_file(self, path: AnyPath) -> dict[str, Any]:
        self.check_available()
        return inspect_onnx(path)

    def verify(self, artifact: AnyPath, reference: Reference, tolerance: Tolerance) -> ArtifactCheck:
        check = ArtifactCheck(reference.unit.name, self.name, reference.input_type)
        try:
            runner = OnnxRunner(read_bytes(artifact))
        except Exception as exc:  # onnxruntime's load errors have no common base class
            return run_failure(check, exc)
        expected, judge = reference.outputs, reference
        if sorted(runner.output_names) == sorted(RAW_OUTPUTS):  # written without post-processing: what it keeps
            expected, judge = [{key: outputs[key] for key in RAW_OUTPUTS} for outputs in expected], None
        return compare_runs(check, expected,
                            lambda i: runner.run({"input_tensor": reference.feed(reference.images[i])}), tolerance,
                            judge)
