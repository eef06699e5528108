"""``openvino/model.xml`` + ``model.bin``: the unit's SavedModel converted by OpenVINO, verified on its CPU plugin.

``openvino.convert_model`` reads the SavedModel that the export has just written
(its TensorFlow frontend takes the serving signature as it is, dynamic image size
included), and ``openvino.save_model`` writes the IR: float32 weights for ``fp32``,
float16 weights for ``fp16`` (OpenVINO's weight compression: half the file, the CPU
plugin computes in float32), and for ``int8`` the IR that NNCF's post-training
quantisation (``nncf.quantize``) makes from the export's calibration images
(:mod:`od_export.source.calibration`), fed as users feed the IR.  The IR's input and outputs carry the signature's names
(``input_tensor``, ``detection_boxes``, …), so a client keys its results exactly as
it does the SavedModel's.

Verification runs the IR on OpenVINO's CPU plugin on the same images as the
SavedModel, at float32 inference precision (``INFERENCE_PRECISION_HINT`` f32): fp32
must reproduce every output as any other artifact does; fp16 must reach a detection
agreement (:mod:`od_export.verify.agreement`).  The precision is pinned because the
plugin's default depends on the CPU: with AVX512_BF16 or AMX it computes an fp32 IR in
bfloat16 (raw scores move by up to 0.7 on the SSD sample).  What a user gets by default
is checked too: where that default is not f32, the IR is also run with the plugin's
defaults and judged by detection agreement at that precision, as a check of its own
(``openvino:bf16``), and ``io_spec.json`` names both precisions.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from od_export.errors import ExportFailed, InputError
from od_export.layout import IO_SPEC_NAME, SAVED_MODEL_DIR
from od_export.storage.location import AnyPath
from od_export.targets.base import ArtifactRunner, ExportContext, Target, pixels_as
from od_export.targets.onnx import STRING_INPUT_TYPES, read_bytes, run_failure
from od_export.targets.settings import Setting
from od_export.verify.agreement import detection_agreement
from od_export.verify.reference import Reference
from od_export.verify.report import ArtifactCheck, Tolerance, compare_runs

if TYPE_CHECKING:
    from od_export.options import ConversionOptions, ExportOptions

logger = logging.getLogger(__name__)

OPENVINO_DIR = "openvino"
OPENVINO_FILE = "model.xml"
OPENVINO_WEIGHTS = "model.bin"
#: What the fp32 and fp16 IRs mean: weights as written, arithmetic in float32.
VERIFIED_PRECISION = "f32"
#: OpenVINO's element type names → the precisions agreement thresholds are named by.
_PRECISION_NAMES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
PRECISION = Setting("openvino_precision", "fp32", "the IR's weights (int8: quantised by NNCF from calibration images)",
                    choices=("fp32", "fp16", "int8"), label="OpenVINO precision")


def cpu_default_precision() -> str:
    """The inference precision OpenVINO's CPU plugin uses on this machine when not told (f32, bf16 or f16)."""
    import openvino

    return openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()


def _port(port: Any) -> dict[str, Any]:
    shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
    return {"dtype": port.get_element_type().to_dtype().name, "shape": shape}


def describe_ir(model: Any) -> dict[str, Any]:
    """Inputs and outputs (dtype, shape with None for dynamic) of an OpenVINO model."""
    import openvino

    return {"format": "openvino", "openvino": openvino.__version__,
            "inputs": {p.get_any_name(): _port(p) for p in model.inputs},
            "outputs": {p.get_any_name(): _port(p) for p in model.outputs}}


def precision_entry(precision: str) -> dict[str, str]:
    weights = {"fp16": "float16 (compressed), computed in float32 by the CPU plugin",
               "int8": "int8, with int8 activations where NNCF placed quantize nodes (post-training quantisation)"}
    return {"precision": precision, "weights": weights.get(precision, "float32")}


def quantize_ir(model: Any, context: ExportContext) -> tuple[Any, str]:
    """NNCF's post-training quantisation of the IR, on the export's calibration images fed as users feed them."""
    import nncf

    from od_export.source.calibration import shared_calibration_set

    calibration = shared_calibration_set(context)
    dtype = np.uint8 if context.input_type == "image_tensor" else np.float32
    dataset = nncf.Dataset(calibration.images, lambda image: {"input_tensor": image[np.newaxis].astype(dtype)})
    logger.info(f"quantising the OpenVINO IR with NNCF ({len(calibration.images)} calibration images)")
    logging.getLogger("nncf").setLevel(max(logging.getLogger("od_export").getEffectiveLevel(), logging.ERROR))
    try:  # NNCF draws progress bars on stdout, which belongs to --json: they are dropped
        with contextlib.redirect_stdout(io.StringIO()):
            quantized = nncf.quantize(model, dataset, subset_size=len(calibration.images))
    except Exception as exc:  # nncf raises its own and OpenVINO's errors
        raise ExportFailed(f"NNCF cannot quantise this model: {' '.join(str(exc).split())[:300]}") from exc
    return quantized, calibration.source


def convert_saved_model(saved_model: Path) -> Any:
    """OpenVINO's model of a SavedModel; a conversion error fails the export with the converter's reason."""
    import openvino

    try:
        return openvino.convert_model(str(saved_model))
    except Exception as exc:  # OpenConversionFailure, OpConversionFailure, RuntimeError, …
        reason = " ".join(str(exc).split())
        raise ExportFailed(f"OpenVINO cannot convert this model: {reason[:300]}") from exc


class OpenVinoRunner:
    """An IR compiled for OpenVINO's CPU plugin at ``inference_precision`` (None: the plugin's default)."""

    def __init__(self, xml: AnyPath, inference_precision: str | None = VERIFIED_PRECISION) -> None:
        import openvino

        config = {"INFERENCE_PRECISION_HINT": inference_precision} if inference_precision else {}
        self.compiled = openvino.Core().compile_model(self.read(xml), "CPU", config)
        self.inference_precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()

    @staticmethod
    def read(xml: AnyPath) -> Any:
        """The IR's model from ``model.xml`` and the ``.bin`` beside it (local or remote)."""
        import openvino

        weights = np.frombuffer(read_bytes(xml.parent / xml.name.replace(".xml", ".bin")), np.uint8)
        return openvino.Core().read_model(model=read_bytes(xml).decode("utf-8"), weights=openvino.Tensor(weights))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output under each of its names: outputs that are one tensor (Mask R-CNN's ``final_anchors`` is its
        ``proposal_boxes_normalized``) share a port, and a port answers to one name only when asked for any."""
        results = self.compiled(feeds)
        return {name: np.asarray(value) for port, value in results.items() for name in port.get_names()}


class OpenVinoIrRunner(ArtifactRunner):
    """``benchmark``'s view of an IR: the CPU plugin at ``precision`` (None: its default), the input's dtype."""

    runtime = "OpenVINO"

    def __init__(self, name: str, files: list[AnyPath], precision: str | None) -> None:
        super().__init__(name, files)
        self.precision = precision

    def load(self) -> None:
        self.runner = OpenVinoRunner(self.files[0], self.precision)
        self.dtype = self.runner.compiled.inputs[0].get_element_type().to_dtype().name

    def feed(self, pixels: Any, encoded: bytes) -> Any:
        return pixels_as(self.dtype, pixels)

    def infer(self, feed: Any) -> Any:
        return self.runner.run({"input_tensor": feed})


class OpenVinoTarget(Target):
    name = "openvino"
    directory = OPENVINO_DIR
    extra = "openvino"
    modules = ("openvino",)
    needs_model = False
    settings = (PRECISION,)

    def calibrates(self, conversion: ConversionOptions) -> bool:
        return conversion.value(PRECISION) == "int8"

    def check_options(self, options: ExportOptions) -> None:
        first = options.input_types[0]
        if options.single_saved_model and options.selected_input_type != first:
            raise InputError(f"OpenVINO converts the SavedModel's serving_default, which is {first}; give "
                             f"{options.selected_input_type} as the first input type to convert its function")

    def unsupported_reason(self, input_type: str) -> str:
        if input_type in STRING_INPUT_TYPES:
            return "OpenVINO has no image decoder or tf.Example parser; convert an image_tensor or float_image_tensor export"
        return ""

    def write(self, context: ExportContext, directory: Path) -> list[Path]:
        import openvino

        if context.unit_dir is None:
            raise ExportFailed("the openvino target converts the unit's SavedModel, and none was given")
        precision = context.options.conversion.value(PRECISION)
        model = convert_saved_model(context.unit_dir / SAVED_MODEL_DIR)
        extra = {}
        if precision == "int8":
            model, extra["calibration"] = quantize_ir(model, context)
        if context.labels is not None:
            from od_export.source.labels import metadata_entries

            for key, value in metadata_entries(context.labels, self.class_offset).items():
                model.set_rt_info(value, ["od_export", key])
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / OPENVINO_FILE
        openvino.save_model(model, str(path), compress_to_fp16=precision == "fp16")
        spec_path = directory / IO_SPEC_NAME
        spec = {**describe_ir(model), **precision_entry(precision), **extra, "input_type": context.input_type,
                "inference_precision": {"verified": VERIFIED_PRECISION, "cpu_default_here": cpu_default_precision()}}
        spec_path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
        return [path, directory / OPENVINO_WEIGHTS, spec_path]

    def find(self, unit_dir: AnyPath) -> AnyPath | None:
        path = unit_dir / OPENVINO_DIR / OPENVINO_FILE
        return path if path.is_file() else None

    file_description = "an OpenVINO .xml"

    def claims(self, path: AnyPath) -> bool:
        return path.suffix == ".xml" and (path.parent / (path.stem + ".bin")).is_file()

    def inspect_file(self, path: AnyPath) -> dict[str, Any]:
        """Inputs and outputs of an IR, and its precision when od-export's io_spec.json lies beside it."""
        self.check_available()
        try:
            model = OpenVinoRunner.read(path)
        except Exception as exc:  # OpenVINO raises RuntimeError for what it cannot read
            raise InputError(f"{path} is not an OpenVINO IR with its .bin beside it "
                             f"({' '.join(str(exc).split())[:200]})") from exc
        report = describe_ir(model)
        if model.has_rt_info(["od_export", "labels"]):
            report["labels"] = json.loads(model.get_rt_info(["od_export", "labels"]).astype(str))
        spec = path.parent / IO_SPEC_NAME
        if spec.is_file():
            report["precision"] = json.loads(spec.read_text(encoding="utf-8")).get("precision")
        return report

    def runners(self, artifact: AnyPath) -> list[ArtifactRunner]:
        """The IR at f32 and, where this CPU's default differs, as users get it by default."""
        files = [artifact, artifact.parent / OPENVINO_WEIGHTS]
        spec = json.loads((artifact.parent / IO_SPEC_NAME).read_text(encoding="utf-8"))
        precision = spec.get("precision", "fp32")
        name = self.name if precision == "fp32" else f"{self.name}:{precision}"
        runners = [OpenVinoIrRunner(name, files, VERIFIED_PRECISION)]
        default = cpu_default_precision()
        if default != VERIFIED_PRECISION:
            runners.append(OpenVinoIrRunner(f"{self.name}:{_PRECISION_NAMES.get(default, default)}", files, None))
        return runners

    def verify_all(self, artifact: AnyPath, reference: Reference, tolerance: Tolerance) -> list[ArtifactCheck]:
        """The IR at f32; and, where this CPU's default differs, as users get it by default."""
        checks = [self.verify(artifact, reference, tolerance)]
        default = cpu_default_precision()
        if default != VERIFIED_PRECISION:
            checks.append(self._verify_default(artifact, reference, tolerance, default))
        return checks

    def verify(self, artifact: AnyPath, reference: Reference, tolerance: Tolerance) -> ArtifactCheck:
        check = ArtifactCheck(reference.unit.name, self.name, reference.input_type)
        try:
            spec = json.loads((artifact.parent / IO_SPEC_NAME).read_text(encoding="utf-8"))
            runner = OpenVinoRunner(artifact)
        except Exception as exc:  # OpenVINO's load errors are plain RuntimeErrors
            return run_failure(check, exc)
        precision = spec.get("precision", "fp32")
        if precision == "fp32":
            return compare_runs(check, reference.outputs, _runs(runner, reference), tolerance, reference)
        return _agreement_check(check, runner, reference, tolerance, precision)

    def _verify_default(self, artifact: AnyPath, reference: Reference, tolerance: Tolerance,
                        default: str) -> ArtifactCheck:
        precision = _PRECISION_NAMES.get(default, default)
        check = ArtifactCheck(reference.unit.name, f"{self.name}:{precision}", reference.input_type)
        check.notes.append(f"OpenVINO's CPU plugin computes in {default} by default on this CPU; compile with "
                           f"INFERENCE_PRECISION_HINT f32 to get the verified float32 results")
        try:
            runner = OpenVinoRunner(artifact, inference_precision=None)
        except Exception as exc:  # OpenVINO's load errors are plain RuntimeErrors
            return run_failure(check, exc)
        return _agreement_check(check, runner, reference, tolerance, precision)


def _runs(runner: OpenVinoRunner, reference: Reference) -> Callable[[int], dict[str, np.ndarray]]:
    return lambda i: runner.run({"input_tensor": reference.feed(reference.images[i])})


def _agreement_check(check: ArtifactCheck, runner: OpenVinoRunner, reference: Reference, tolerance: Tolerance,
                     precision: str) -> ArtifactCheck:
    """A reduced-precision run judged by how many of the SavedModel's detections it finds."""
    run = _runs(runner, reference)
    try:
        check.outputs = [run(index) for index in range(len(reference.images))]
    except Exception as exc:  # a run failure is a failed check, on one line
        return run_failure(check, exc)
    check.agreement = detection_agreement(reference.outputs, check.outputs, precision, tolerance)
    return check
