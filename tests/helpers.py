"""Reference computations for tests: the OD API exporter's own code path, and artifact runners."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from od_export import compat
from od_export.verify import samples
from od_export.source.pipeline_config import load_pipeline_config


def exporter_concrete_function(run_dir: Path, input_type: str) -> Any:
    """What exporter_lib_v2.export_inference_graph traces, step for step, minus the save."""
    od = compat.import_object_detection()
    tf = od.tf
    config = load_pipeline_config(run_dir / "pipeline.config")
    model = od.exporter_lib_v2.INPUT_BUILDER_UTIL_MAP["model_build"](config.model, is_training=False)
    checkpoint = tf.train.Checkpoint(model=model)
    manager = tf.train.CheckpointManager(checkpoint, str(run_dir), max_to_keep=1)
    status = checkpoint.restore(manager.latest_checkpoint).expect_partial()
    module = od.exporter_lib_v2.DETECTION_MODULE_MAP[input_type](model, False, [])
    concrete = module.__call__.get_concrete_function()
    status.assert_existing_objects_matched()
    return concrete


def sample_input(input_type: str) -> np.ndarray:
    return samples.input_batch(input_type, samples.sample_image())


def run_concrete(concrete: Any, value: np.ndarray) -> dict[str, np.ndarray]:
    tf = compat.import_tensorflow()
    return {k: v.numpy() for k, v in concrete(tf.constant(value)).items()}


def saved_model_signature(directory: Path) -> dict[str, Any]:
    from od_export.source.tracing import signature_description

    tf = compat.import_tensorflow()
    return signature_description(tf.saved_model.load(str(directory)).signatures["serving_default"])


def assert_non_degenerate(outputs: dict[str, np.ndarray]) -> None:
    """Random-but-trained-looking weights: varied scores, several confident detections."""
    scores = outputs["detection_scores"][0]
    assert float(np.std(scores)) > 0.02, scores
    assert int((scores > 0.3).sum()) >= 3, scores


# Tampering: an artifact's weights changed in place, as a corrupted or wrongly converted file would have them.

def largest_kernel(value: np.ndarray) -> bool:
    return value.ndim == 4 and value.dtype in (np.float32, np.int8)


def anchors(value: np.ndarray) -> bool:
    """SSD's anchor constant, which TFLite_Detection_PostProcess decodes the box encodings with."""
    return value.ndim == 2 and value.shape[1] == 4 and value.shape[0] > 100 and value.dtype == np.float32


def _buffer_starts(data: bytes) -> dict[int, int]:
    """Subgraph 0's tensor index → where its constant data starts in the file (tensors with data only)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    subgraph, starts = model.Subgraphs(0), {}
    for index in range(subgraph.TensorsLength()):
        buffer = model.Buffers(subgraph.Tensors(index).Buffer())
        field = buffer._tab.Offset(4)  # Buffer.data
        if field and buffer.DataLength():
            starts[index] = buffer._tab.Vector(field)
    return starts


def tensor_bytes_replaced(path, transform, pick=largest_kernel, every: bool = False) -> int:
    """Rewrite the file's largest constant tensor that ``pick`` accepts (or, with ``every``, each one) in place,
    where the flatbuffer keeps its data.  Returns how many tensors were rewritten."""
    from ai_edge_litert.interpreter import Interpreter

    data = bytearray(path.read_bytes())
    starts = _buffer_starts(bytes(data))
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    weights = []
    for detail in interpreter.get_tensor_details():
        start = starts.get(detail["index"])
        try:
            value = interpreter.get_tensor(detail["index"])
        except ValueError:
            continue
        if start is not None and pick(value) and bytes(data[start:start + value.nbytes]) == value.tobytes():
            weights.append((start, value))
    chosen = weights if every else [max(weights, key=lambda w: w[1].size)]
    for start, value in chosen:
        data[start:start + value.nbytes] = transform(value).astype(value.dtype).tobytes()
    path.write_bytes(bytes(data))
    return len(chosen)


def weights_negated(xml_path: Path, element_type: str = "", every: bool = False) -> int:
    """Negate the IR's largest float32 or int8 constant in model.bin (its offset and size are in model.xml); with
    ``element_type`` only constants of that type, with ``every`` each of them.  Returns how many were negated."""
    import xml.etree.ElementTree as ElementTree

    dtypes = {"f32": np.float32, "i8": np.int8}
    layers = ElementTree.parse(xml_path).getroot().iter("layer")
    constants = [layer.find("data").attrib for layer in layers
                 if layer.get("type") == "Const" and layer.find("data").get("element_type") in dtypes]
    constants = [c for c in constants if c["element_type"] == (element_type or c["element_type"])]
    chosen = constants if every else [max(constants, key=lambda data: int(data["size"]))]
    weights = xml_path.with_suffix(".bin")
    data = bytearray(weights.read_bytes())
    for constant in chosen:
        start, size = int(constant["offset"]), int(constant["size"])
        dtype = dtypes[constant["element_type"]]
        data[start:start + size] = np.negative(np.frombuffer(bytes(data[start:start + size]), dtype)).tobytes()
    weights.write_bytes(bytes(data))
    return len(chosen)


def od_export_directory(root: Path, files: dict[str, str]) -> Path:
    """A directory shaped as od-export writes one: ``files`` and a manifest (our marker) listing them."""
    import json

    from od_export.manifest import output_manifest, write_manifest

    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    write_manifest(root, output_manifest(root, "test"))
    assert json.loads((root / "manifest.json").read_text())["generator"] == "od-export"
    return root
