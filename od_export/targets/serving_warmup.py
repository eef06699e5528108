"""TF Serving warm-up: ``saved_model/assets.extra/tf_serving_warmup_requests``.

TF Serving runs the PredictionLog records it finds there when it loads a model, so
that the first real requests do not pay for graph optimisation and memory allocation.
Each record is a PredictRequest to ``serving_default`` with one sample image in the
form the signature takes (pixels, JPEG bytes or a serialized tf.Example), written
with ``tensorflow-serving-api``'s own protos.  TF Serving reads at most 1000.

Verified by reading every record back with those protos and running its inputs
through the SavedModel: the signature must exist, take exactly those inputs in their
dtypes, and give finite detections.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from od_export.errors import EnvironmentProblem, InputError
from od_export.targets.settings import Setting
from od_export.verify.reference import Reference
from od_export.verify.report import ArtifactCheck

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
MAX_RECORDS = 1000  # TF Serving's own limit
CHECK_NAME = "serving warm-up"


def _check_count(count: int) -> None:
    if not 0 <= count <= MAX_RECORDS:
        raise InputError(f"serving warm-up records {count} is outside 0 to {MAX_RECORDS} (TF Serving reads at most "
                         f"{MAX_RECORDS}); give a number in that range")


WARMUP = Setting("serving_warmup", 0, f"TF Serving warm-up records in saved_model/{WARMUP_DIR} (0: none; at most "
                 f"{MAX_RECORDS})", kind=int, check_value=_check_count, metavar="N", label="serving warm-up records")


def check_protos_available() -> None:
    """Before any model is built: the protos the records are written with are installed."""
    import importlib.util

    if importlib.util.find_spec("tensorflow_serving") is None:
        raise EnvironmentProblem("TF Serving warm-up records need tensorflow-serving-api: "
                                 "pip install 'od-export[serving]'")


def _protos() -> Any:
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    except ImportError as exc:
        raise EnvironmentProblem("TF Serving warm-up records need tensorflow-serving-api: "
                                 "pip install 'od-export[serving]'") from exc
    return predict_pb2, prediction_log_pb2


def write_warmup(saved_model: Path, input_type: str, count: int) -> Path:
    """``count`` PredictionLog records for ``serving_default``, one seeded sample image each."""
    from od_export import compat
    from od_export.verify import samples

    tf = compat.import_tensorflow()
    predict_pb2, prediction_log_pb2 = _protos()
    path = saved_model / WARMUP_DIR / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for seed in range(count):
            image = samples.sample_image(96 + 16 * (seed % 4), 128, seed=seed)
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = "serving_default"
            request.inputs["input_tensor"].CopyFrom(tf.make_tensor_proto(samples.input_batch(input_type, image)))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def warmup_checks(reference: Reference) -> list[ArtifactCheck]:
    """One check for a SavedModel that carries warm-up records; none otherwise."""
    path = Path(str(reference.unit.saved_model)) / WARMUP_DIR / WARMUP_FILE
    if not path.is_file():
        return []
    check = ArtifactCheck(reference.unit.name, CHECK_NAME, reference.input_type)
    try:
        _run_records(path, reference)
    except Exception as exc:  # a record TF Serving would refuse: unreadable, another signature or input
        check.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return [check]


def _run_records(path: Path, reference: Reference) -> None:
    from od_export import compat

    tf = compat.import_tensorflow()
    _, prediction_log_pb2 = _protos()
    loaded = reference.function._od_export_loaded
    count = 0
    for raw in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(raw.numpy())
        request = log.predict_log.request
        key = request.model_spec.signature_name or "serving_default"
        if key not in loaded.signatures:
            raise ValueError(f"record {count} asks for signature {key!r}, which the SavedModel does not have")
        function = loaded.signatures[key]
        specs = function.structured_input_signature[1]
        if sorted(request.inputs) != sorted(specs):
            raise ValueError(f"record {count} feeds {sorted(request.inputs)}, the signature takes {sorted(specs)}")
        inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
        for name, value in inputs.items():
            if value.dtype != specs[name].dtype:
                raise ValueError(f"record {count} feeds {name} as {value.dtype.name}, the signature takes "
                                 f"{specs[name].dtype.name}")
        outputs = function(**inputs)
        if "detection_boxes" not in outputs or not all(np.isfinite(v.numpy()).all() for v in outputs.values()):
            raise ValueError(f"record {count} gives no finite detections")
        count += 1
    if count == 0:
        raise ValueError(f"{WARMUP_FILE} holds no record")
    if count > MAX_RECORDS:
        raise ValueError(f"{WARMUP_FILE} holds {count} records; TF Serving reads at most {MAX_RECORDS}")
