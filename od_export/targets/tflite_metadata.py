"""TFLite Support metadata in each ``.tflite`` file: what the TFLite Task Library's ObjectDetector reads.

The metadata (``metadata_schema.fbs``, written with tflite-support's
``MetadataPopulator``) says:

* the input is an RGB image, normalised as ``(pixel - mean) / std`` per channel (the
  model's own preprocessing, as ``io_spec.json`` gives it).  A uint8 input
  (``int8_full``) is fed pixels unchanged by those readers, so its mean and std are
  the ones its quantisation implies;
* each output's role, by the names the ObjectDetector looks them up by (``location``,
  ``category``, ``score``, ``number of detections``), in the file's own output order,
  with boxes as [ymin, xmin, ymax, xmax] ratios;
* the class names: ``labels.txt`` packed into the file, line k naming class index k.

:func:`metadata_problem` reads it back with the schema and names the first way it
differs from what the file's ``io_spec.json`` and ``labels.txt`` say.
"""
from __future__ import annotations

import io
import zipfile
from typing import Any

#: The SavedModel's output name → the tensor name the ObjectDetector finds it by.
ROLES = {"detection_boxes": "location", "detection_classes": "category", "detection_scores": "score",
         "num_detections": "number of detections",
         # a CenterNet keypoint model's two more outputs (the ObjectDetector reads the four above only)
         "detection_keypoints": "keypoints", "detection_keypoint_scores": "keypoint scores"}
GROUP_NAME = "detection_result"
GROUP = (ROLES["detection_boxes"], ROLES["detection_classes"], ROLES["detection_scores"])
LABELS_NAME = "labels.txt"
METADATA_NAME = b"TFLITE_METADATA"
_BOX_INDEX = [1, 0, 3, 2]  # where left, top, right, bottom sit in [ymin, xmin, ymax, xmax]


def input_normalization(entry: dict[str, Any], normalization: dict[str, Any]) -> tuple[list[float], list[float]]:
    """(mean, std) that take a pixel to the file's input value: the model's for a float input,
    for a quantised one what ``(pixel - mean) / std`` then its quantisation amount to."""
    mean, std = list(normalization["mean"]), list(normalization["std"])
    quantization = entry["input"].get("quantization")
    if quantization is None:
        return [float(v) for v in mean], [float(v) for v in std]
    scale, zero_point = float(quantization["scale"]), float(quantization["zero_point"])
    return ([float(m - zero_point * s * scale) for m, s in zip(mean, std)],
            [float(s * scale) for s in std])


def _content(schema: Any, output_name: str) -> Any:
    content = schema.ContentT()
    if output_name == "detection_boxes":
        content.contentPropertiesType = schema.ContentProperties.BoundingBoxProperties
        box = schema.BoundingBoxPropertiesT()
        box.index, box.type, box.coordinateType = _BOX_INDEX, schema.BoundingBoxType.BOUNDARIES, schema.CoordinateType.RATIO
        content.contentProperties = box
    else:
        content.contentPropertiesType = schema.ContentProperties.FeatureProperties
        content.contentProperties = schema.FeaturePropertiesT()
    if output_name != "num_detections":  # as tflite-support's own object-detector writer gives it
        content.range = schema.ValueRangeT()
        content.range.min = content.range.max = 2
    return content


def _output_metadata(schema: Any, output_name: str, labelled: bool) -> Any:
    tensor = schema.TensorMetadataT()
    tensor.name = ROLES[output_name]
    tensor.content = _content(schema, output_name)
    if output_name == "detection_classes" and labelled:
        labels = schema.AssociatedFileT()
        labels.name, labels.type = LABELS_NAME, schema.AssociatedFileType.TENSOR_VALUE_LABELS
        labels.description = "Class names: line k names class index k (label map id k + 1)."
        tensor.associatedFiles = [labels]
    return tensor


def input_description(resize: dict[str, Any] | None) -> str:
    """The image input's description: how a client turns a picture into it (io_spec's ``resize``)."""
    if not resize:
        return "RGB image resized to the input size."
    frame = f" Outputs: {resize['outputs_frame']}." if resize.get("outputs_frame") else ""
    return f"RGB image: {resize['how']}.{frame}"


def _input_metadata(schema: Any, mean: list[float], std: list[float], quantised: bool, description: str) -> Any:
    tensor = schema.TensorMetadataT()
    tensor.name, tensor.description = "image", description
    tensor.content = schema.ContentT()
    tensor.content.contentPropertiesType = schema.ContentProperties.ImageProperties
    tensor.content.contentProperties = schema.ImagePropertiesT()
    tensor.content.contentProperties.colorSpace = schema.ColorSpaceType.RGB
    unit = schema.ProcessUnitT()
    unit.optionsType = schema.ProcessUnitOptions.NormalizationOptions
    unit.options = schema.NormalizationOptionsT()
    unit.options.mean, unit.options.std = mean, std
    tensor.processUnits = [unit]
    tensor.stats = schema.StatsT()
    low, high = ([0.0], [255.0]) if quantised else ([(0 - m) / s for m, s in zip(mean, std)],
                                                    [(255 - m) / s for m, s in zip(mean, std)])
    tensor.stats.min, tensor.stats.max = low, high
    return tensor


def metadata_buffer(entry: dict[str, Any], normalization: dict[str, Any], architecture: str, labelled: bool,
                    resize: dict[str, Any] | None = None) -> bytes:
    """The packed ModelMetadata for one file, as ``describe_file`` described it."""
    import flatbuffers

    from od_export import compat_extras

    schema = compat_extras.import_tflite_metadata_schema()
    mean, std = input_normalization(entry, normalization)
    subgraph = schema.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [_input_metadata(schema, mean, std, "quantization" in entry["input"],
                                                    input_description(resize))]
    subgraph.outputTensorMetadata = [_output_metadata(schema, o["name"], labelled) for o in entry["outputs"]]
    group = schema.TensorGroupT()
    group.name, group.tensorNames = GROUP_NAME, list(GROUP)
    subgraph.outputTensorGroups = [group]
    model = schema.ModelMetadataT()
    model.name = f"{architecture} object detector"
    model.description = "Object Detection API model exported by od-export."
    model.subgraphMetadata = [subgraph]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), b"M001")
    return bytes(builder.Output())


def with_metadata(model: bytes, entry: dict[str, Any], normalization: dict[str, Any], architecture: str,
                  labels: list[str] | None, resize: dict[str, Any] | None = None) -> bytes:
    """``model`` with its metadata and, given class names, ``labels.txt`` packed in."""
    from od_export import compat_extras

    writer = compat_extras.import_tflite_metadata_writer()
    populator = writer.MetadataPopulator.with_model_buffer(model)
    populator.load_metadata_buffer(metadata_buffer(entry, normalization, architecture, labels is not None, resize))
    if labels is not None:
        populator.load_associated_file_buffers({LABELS_NAME: ("\n".join(labels) + "\n").encode("utf-8")})
    populator.populate()
    return bytes(populator.get_model_buffer())


def metadata_summary(entry: dict[str, Any], normalization: dict[str, Any], labelled: bool,
                     resize: dict[str, Any] | None = None) -> dict[str, Any]:
    """What ``io_spec.json`` records of a file's metadata (and what its check expects to read back)."""
    mean, std = input_normalization(entry, normalization)
    integer = sorted({o["dtype"] for o in entry["outputs"] if o["dtype"] != "float32"})
    return {"schema": "TFLite Support metadata",
            "input": {"mean": mean, "std": std, "color_space": "RGB", "description": input_description(resize)},
            "outputs": [ROLES[o["name"]] for o in entry["outputs"]],
            "labels": LABELS_NAME if labelled else None,
            "task_library": (f"refused: its ObjectDetector takes float32 outputs, this file's are {', '.join(integer)} "
                             "(the int8 file has float32 outputs)") if integer else "ObjectDetector loads it"}


def _stored_metadata(model: bytes) -> bytes | None:
    """The bytes of the model's ``TFLITE_METADATA`` buffer, or None."""
    from ai_edge_litert import schema_py_generated as tflite_schema

    root = tflite_schema.Model.GetRootAs(model, 0)
    for i in range(root.MetadataLength()):
        if root.Metadata(i).Name() == METADATA_NAME:
            buffer = root.Buffers(root.Metadata(i).Buffer())
            if buffer.Offset() > 1:  # a file over 2 GB keeps buffers after the flatbuffer
                return model[buffer.Offset(): buffer.Offset() + buffer.Size()]
            return buffer.DataAsNumpy().tobytes()
    return None


def read_metadata(model: bytes) -> dict[str, Any] | None:
    """The file's metadata as the ObjectDetector reads it, or None when it has none; ValueError when it is
    not an object detector's (another kind of model's, or damaged)."""
    from od_export import compat_extras

    stored = _stored_metadata(model)
    if stored is None:
        return None
    schema = compat_extras.import_tflite_metadata_schema()
    if not schema.ModelMetadata.ModelMetadataBufferHasIdentifier(stored, 0):
        raise ValueError("its TFLITE_METADATA buffer is not TFLite Support metadata")
    try:
        return _parsed(schema, schema.ModelMetadataT.InitFromObj(schema.ModelMetadata.GetRootAs(stored, 0)), model)
    except (AttributeError, IndexError, StopIteration, TypeError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise ValueError(f"its TFLite metadata cannot be read as an object detector's ({type(exc).__name__}: {exc})") from exc


#: A packed labels.txt of tens of thousands of classes is well under a megabyte; a file claiming more is refused
#: before it is inflated (a small zip entry can expand to gigabytes).
MAX_PACKED_LABELS_BYTES = 16 * 2**20


def _packed_labels(packed: zipfile.ZipFile) -> list[str]:
    size = packed.getinfo(LABELS_NAME).file_size
    if size > MAX_PACKED_LABELS_BYTES:
        raise ValueError(f"its packed labels.txt claims {size:,} bytes, more than the {MAX_PACKED_LABELS_BYTES:,} any "
                         "label list needs")
    with packed.open(LABELS_NAME) as handle:  # read with a bound too: the size in the zip may lie
        data = handle.read(MAX_PACKED_LABELS_BYTES + 1)
    if len(data) > MAX_PACKED_LABELS_BYTES:
        raise ValueError(f"its packed labels.txt expands past {MAX_PACKED_LABELS_BYTES:,} bytes")
    return data.decode("utf-8").splitlines()


def _parsed(schema: Any, meta: Any, model: bytes) -> dict[str, Any]:
    """:func:`read_metadata`'s result; raises for metadata without an image input, outputs or normalisation."""
    subgraph = meta.subgraphMetadata[0]
    image = subgraph.inputTensorMetadata[0]
    norm = next(u.options for u in image.processUnits or []
                if u.optionsType == schema.ProcessUnitOptions.NormalizationOptions)
    files = {f.name.decode(): f for o in subgraph.outputTensorMetadata for f in (o.associatedFiles or [])}
    packed = zipfile.ZipFile(io.BytesIO(model)) if zipfile.is_zipfile(io.BytesIO(model)) else None
    labels = None
    if LABELS_NAME in files and packed is not None and LABELS_NAME in packed.namelist():
        labels = _packed_labels(packed)
    return {
        "name": meta.name.decode(), "min_parser_version": (meta.minParserVersion or b"").decode(),
        "input": {"name": image.name.decode(), "description": (image.description or b"").decode(), "mean": [float(v) for v in norm.mean], "std": [float(v) for v in norm.std],
                  "color_space": "RGB" if image.content.contentProperties.colorSpace == schema.ColorSpaceType.RGB
                  else str(image.content.contentProperties.colorSpace)},
        "outputs": [o.name.decode() for o in subgraph.outputTensorMetadata],
        "groups": {g.name.decode(): [n.decode() for n in g.tensorNames] for g in subgraph.outputTensorGroups or []},
        "associated_files": sorted(files), "labels": labels,
    }


def metadata_problem(model: bytes, entry: dict[str, Any], normalization: dict[str, Any],
                     labels: list[str] | None) -> str:
    """How the file's metadata differs from its io_spec entry and ``labels.txt`` ("" when it does not)."""
    import numpy as np

    try:
        read = read_metadata(model)
    except ValueError as exc:
        return str(exc)
    if read is None:
        return "the file carries no TFLite metadata"
    mean, std = input_normalization(entry, normalization)
    if not (np.allclose(read["input"]["mean"], mean, rtol=1e-6) and np.allclose(read["input"]["std"], std, rtol=1e-6)):
        return f"its input normalisation (mean {read['input']['mean']}, std {read['input']['std']}) is not the model's ({mean}, {std})"
    described = entry.get("metadata", {}).get("input", {}).get("description")  # older io_specs do not record it
    if described is not None and read["input"]["description"] != described:
        return f"its input description ({read['input']['description']!r}) is not how io_spec.json says to feed it"
    roles = [ROLES[o["name"]] for o in entry["outputs"]]
    if read["outputs"] != roles:
        return f"its outputs are named {read['outputs']}, the file's outputs are {roles}"
    if read["groups"].get(GROUP_NAME) != list(GROUP):
        return f"its {GROUP_NAME} group is {read['groups'].get(GROUP_NAME)}"
    if labels is not None and read["labels"] != labels:
        return ("its packed labels.txt is missing" if read["labels"] is None else
                f"its packed labels.txt ({len(read['labels'])} lines) differs from the artifact's labels.txt")
    return ""
