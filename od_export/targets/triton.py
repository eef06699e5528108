"""``triton/<model>/``: a Triton model repository entry, ``config.pbtxt`` and ``1/model.onnx`` or ``1/model.savedmodel``.

The config is read off the model file it serves: each input and output with its
dtype and dims, ``max_batch_size`` (and ``dynamic_batching``) when every tensor's
first dimension is open (``float_image_tensor``, or ``--dynamic-batch``), else 0 with
the batch of 1 in the dims, and an ``instance_group`` on the CPU (a TensorRT plan,
which only a GPU builds, is not written here).  The class names go beside it in
``labels.txt``, named by the ``detection_classes`` output.

Verified by parsing the config with Triton's own model-config schema
(``model_config_pb2`` from ``tritonclient``), comparing every input and output with
the model file's, and running the model file against the SavedModel as its runtime
(onnxruntime or TensorFlow) runs it.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from od_export.errors import EnvironmentProblem, ExportFailed, InputError, option
from od_export.layout import IO_SPEC_NAME, SAVED_MODEL_DIR
from od_export.storage.location import AnyPath
from od_export.targets.base import ArtifactRunner, ExportContext, Target
from od_export.targets.onnx import (ONNX_MODULES, OPSET, STRING_INPUT_TYPES, OnnxRunner, convert_function, describe_onnx,
                                    onnx_ready_function, read_bytes, run_failure)
from od_export.targets.settings import Setting
from od_export.verify.reference import Reference
from od_export.verify.report import ArtifactCheck, Tolerance, compare_runs

if TYPE_CHECKING:
    from od_export.options import ExportOptions

TRITON_DIR = "triton"
CONFIG_FILE = "config.pbtxt"
PLATFORMS = {"onnx": ("onnxruntime_onnx", "model.onnx"), "savedmodel": ("tensorflow_savedmodel", "model.savedmodel")}
DATA_TYPES = {"uint8": "TYPE_UINT8", "float32": "TYPE_FP32", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
              "string": "TYPE_STRING", "object": "TYPE_STRING"}


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", name) or set(name) == {"."}:
        raise InputError(f"Triton model name {name!r} is not a directory name (Triton names a model by its "
                         "directory); use up to 200 letters, digits, _, . and -, not only dots")


def _check_batch(size: int) -> None:
    if size < 1:
        raise InputError(f"Triton max batch size {size} is below 1; give 1 or more")


BACKEND = Setting("triton_backend", "onnx", "the model file Triton serves", choices=tuple(PLATFORMS),
                  label="Triton backend")
MODEL_NAME = Setting("triton_model_name", "detector", "the model's name in the repository",
                     check_value=_check_name, label="Triton model name")
MAX_BATCH = Setting("triton_max_batch_size", 8, "max_batch_size for a model whose batch is open",
                    kind=int, check_value=_check_batch, label="Triton max batch size")


def _dims(shape: list[int | None]) -> list[int]:
    return [-1 if d is None else int(d) for d in shape]


def model_config(name: str, backend: str, io: dict[str, Any], max_batch: int, labels: bool) -> str:
    """``config.pbtxt`` for a model file whose inputs and outputs are ``io`` (name → dtype and shape)."""
    tensors = list(io["inputs"].values()) + list(io["outputs"].values())
    batching = all(t["shape"] and t["shape"][0] is None for t in tensors)
    lines = [f'name: "{name}"', f'platform: "{PLATFORMS[backend][0]}"', f"max_batch_size: {max_batch if batching else 0}"]
    for part, entries in (("input", io["inputs"]), ("output", io["outputs"])):
        for key, entry in entries.items():
            dims = _dims(entry["shape"][1:] if batching else entry["shape"])
            # Triton wants at least one dim: a per-image scalar (num_detections) is [1], reshaped to []
            shape = f"dims: {dims}" if dims else "dims: [1] reshape { shape: [] }"
            label = ' label_filename: "labels.txt"' if labels and key == "detection_classes" else ""
            lines.append(f'{part} {{ name: "{key}" data_type: {DATA_TYPES[entry["dtype"]]} {shape}{label} }}')
    if batching:
        lines.append("dynamic_batching { }")
    lines.append("instance_group { kind: KIND_CPU count: 1 }")
    return "\n".join(lines) + "\n"


class TritonTarget(Target):
    name = "triton"
    directory = TRITON_DIR
    extra = "onnx"
    modules = ONNX_MODULES
    settings = (BACKEND, MODEL_NAME, MAX_BATCH, OPSET)
    raw_outputs = False

    def needs_model_for(self, conversion: Any) -> bool:
        return conversion.value(BACKEND) == "onnx"  # the SavedModel backend copies the written SavedModel

    def check_available(self) -> None:
        import importlib.util

        if importlib.util.find_spec("tritonclient") is None:  # no extra: its own pins conflict with TensorFlow's
            raise EnvironmentProblem("the triton target checks its config with tritonclient's schema: "
                                     "pip install --no-deps tritonclient==2.73.0 (scripts/setup.sh does)")
        super().check_available()

    def check_options(self, options: ExportOptions) -> None:
        strings = [t for t in options.input_types if t in STRING_INPUT_TYPES]
        if options.conversion.value(BACKEND) == "onnx" and strings:
            raise InputError(f"Triton's ONNX backend cannot feed {strings[0]} (ONNX has no image decoder); serve it "
                             f"from the SavedModel ({option('triton_backend')} savedmodel) or export image_tensor")

    def write(self, context: ExportContext, directory: Path) -> list[Path]:
        conversion = context.options.conversion
        backend, name = conversion.value(BACKEND), conversion.value(MODEL_NAME)
        version = directory / name / "1"
        version.mkdir(parents=True, exist_ok=True)
        model = version / PLATFORMS[backend][1]
        if backend == "onnx":
            model_proto = convert_function(onnx_ready_function(context), conversion.value(OPSET))
            model.write_bytes(model_proto.SerializeToString())
            io = describe_onnx(model_proto)
        else:
            if context.unit_dir is None:
                raise ExportFailed("the triton target copies the unit's SavedModel, and none was given")
            shutil.copytree(context.unit_dir / SAVED_MODEL_DIR, model)
            io = _signature_io(model)
        config = directory / name / CONFIG_FILE
        config.write_text(model_config(name, backend, io, conversion.value(MAX_BATCH), context.labels is not None),
                          encoding="utf-8")
        spec = directory / name / IO_SPEC_NAME  # inside the model's directory: the repository root holds models only
        spec.write_text(json.dumps({"format": "triton", "backend": backend, "model": name, "input_type": context.input_type,
                                    **{k: io[k] for k in ("inputs", "outputs")}}, indent=2) + "\n", encoding="utf-8")
        return [config, model, spec]

    def labels_directory(self, directory: Path) -> Path:
        return next(p for p in directory.iterdir() if p.is_dir())  # beside config.pbtxt, as Triton looks for it

    def find(self, unit_dir: AnyPath) -> AnyPath | None:
        folder = unit_dir / TRITON_DIR
        if not folder.is_dir():
            return None
        return next((p / CONFIG_FILE for p in sorted(folder.iterdir()) if (p / CONFIG_FILE).is_file()), None)

    def verify(self, artifact: AnyPath, reference: Reference, tolerance: Tolerance) -> ArtifactCheck:
        check = ArtifactCheck(reference.unit.name, self.name, reference.input_type)
        try:
            config, model, run = _load(artifact)
        except Exception as exc:  # a config Triton would refuse, or a model its runtime cannot load
            return run_failure(check, exc)
        mismatch = config_mismatch(config, _model_io(model))
        if mismatch:
            check.error = f"config.pbtxt does not describe its model: {mismatch}"
            return check
        return compare_runs(check, reference.outputs, lambda i: run(reference.feed(reference.images[i])), tolerance)

    def runners(self, artifact: AnyPath) -> list[ArtifactRunner]:
        return []  # the same model file as the onnx target or the SavedModel, which benchmark already runs

    def inspect_artifact(self, artifact: AnyPath) -> dict[str, Any]:
        return {"path": str(artifact), "config": artifact.read_text(encoding="utf-8")}


def _signature_io(saved_model: Path) -> dict[str, Any]:
    from od_export import compat
    from od_export.source.tracing import signature_description

    tf = compat.import_tensorflow()
    return signature_description(tf.saved_model.load(str(saved_model)).signatures["serving_default"])


def _model_io(model: Path) -> dict[str, Any]:
    if model.suffix == ".onnx":
        import onnx

        return describe_onnx(onnx.load_from_string(read_bytes(model)))
    return _signature_io(model)


def _load(config_path: AnyPath) -> tuple[Any, Path, Any]:
    """The parsed config, its model file, and a function that runs that file on one ``input_tensor`` value."""
    from google.protobuf import text_format

    from od_export import compat, compat_extras

    schema = compat_extras.import_triton_model_config()
    config = text_format.Parse(config_path.read_text(encoding="utf-8"), schema.ModelConfig())
    backend = next(key for key, (platform, _) in PLATFORMS.items() if platform == config.platform)
    model = Path(str(config_path)).parent / "1" / PLATFORMS[backend][1]
    if backend == "onnx":
        runner = OnnxRunner(read_bytes(model))
        return config, model, lambda value: runner.run({"input_tensor": value})
    tf = compat.import_tensorflow()
    loaded = tf.saved_model.load(str(model))
    function = loaded.signatures["serving_default"]
    return config, model, lambda value: {k: v.numpy() for k, v in function(input_tensor=tf.constant(value)).items()}


def config_mismatch(config: Any, io: dict[str, Any]) -> str:
    """The first way the parsed config differs from the model file's inputs and outputs ("" when none)."""
    from od_export import compat_extras

    schema = compat_extras.import_triton_model_config()
    batched = config.max_batch_size > 0
    for part, declared in (("inputs", config.input), ("outputs", config.output)):
        expected = io[part]
        if sorted(t.name for t in declared) != sorted(expected):
            return f"its {part} are {sorted(t.name for t in declared)}, the model's {sorted(expected)}"
        for tensor in declared:
            entry = expected[tensor.name]
            dims = _dims(entry["shape"][1:] if batched else entry["shape"])
            data_type = schema.DataType.Name(tensor.data_type)
            declared_dims = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
            if data_type != DATA_TYPES[entry["dtype"]] or declared_dims != dims:
                return (f"{tensor.name} is {data_type} {declared_dims}, the model's "
                        f"{DATA_TYPES[entry['dtype']]} {dims}")
    return ""
