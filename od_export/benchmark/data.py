"""The evaluation images and their ground truth, read once for every artifact.

By default the export's ``pipeline.config`` names them: its ``eval_input_reader``
TFRecords, decoded by the OD API's own ``TfExampleDecoder`` (with the reader's label
map), as the run's own evaluation reads them.  Records given by path are read the
same way.  A COCO annotation file and an image directory are the other source.

Every problem with the data is refused before any artifact runs: a record that is
not an OD API tf.Example, an image without boxes, a class id outside the config's
classes, an image that does not decode.
"""
from __future__ import annotations

import glob
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from od_export import compat
from od_export.errors import InputError, option
from od_export.source.proto_text import find_named_path
from od_export.verify import samples

#: The tf.Example keys without which a record cannot be evaluated.
REQUIRED_KEYS = ("image/encoded", "image/object/bbox/ymin", "image/object/bbox/xmin",
                 "image/object/bbox/ymax", "image/object/bbox/xmax")


@dataclass
class EvalImage:
    """One evaluation image: its pixels, its encoded bytes, and its boxes (normalised) and classes."""

    image_id: str | int  # the record's source_id, or the COCO file's id (the evaluator orders ties by it)
    pixels: np.ndarray
    encoded: bytes
    boxes: np.ndarray  # [N, 4] ymin, xmin, ymax, xmax in [0, 1]
    classes: np.ndarray  # [N] label map ids

    @property
    def absolute_boxes(self) -> np.ndarray:
        height, width = self.pixels.shape[:2]
        return (self.boxes * np.array([height, width, height, width], np.float32)).astype(np.float32)


@dataclass(frozen=True)
class DataSource:
    """Where the images come from, and how many to read (0: all)."""

    records: tuple[str, ...] = ()
    coco_annotations: Path | None = None
    coco_images: Path | None = None
    max_images: int = 0
    label_map: Path | None = None


def records_from_config(config: Any, bases: list[Path]) -> tuple[tuple[str, ...], Path | None]:
    """The eval reader's record patterns and label map, found as written or beside the configs."""
    readers = list(config.eval_input_reader)
    if not readers or not readers[0].HasField("tf_record_input_reader") or not readers[0].tf_record_input_reader.input_path:
        raise InputError(f"the pipeline.config has no eval_input_reader with TFRecords; give the evaluation data with "
                         f"{option('data')} PATTERN.record or {option('coco')} ANNOTATIONS.json")
    reader = readers[0]
    patterns = tuple(str(find_named_path(p, bases)) for p in reader.tf_record_input_reader.input_path)
    label_map = find_named_path(reader.label_map_path, bases) if reader.label_map_path else None
    return patterns, label_map if label_map is not None and label_map.is_file() else None


def _record_files(patterns: tuple[str, ...]) -> list[str]:
    files = []
    for pattern in patterns:
        matched = sorted(glob.glob(pattern))
        if not matched:
            raise InputError(f"no evaluation record matches {pattern}; give the path of the eval TFRecord")
        files += matched
    return files


def read_records(patterns: tuple[str, ...], label_map: Path | None, num_classes: int, limit: int) -> list[EvalImage]:
    """OD API tf.Examples → images, decoded by the OD API's TfExampleDecoder (in a tf.data map, as its input
    pipeline runs it: decoding one example at a time eagerly takes ~25 ms of small ops)."""
    tf = compat.import_tensorflow()
    compat.import_object_detection()  # the compatibility fixes, before any object_detection module
    from object_detection.core import standard_fields as fields
    from object_detection.data_decoders import tf_example_decoder

    decoder = tf_example_decoder.TfExampleDecoder(label_map_proto_file=str(label_map) if label_map else None)
    keys = (fields.InputDataFields.source_id, fields.InputDataFields.image, fields.InputDataFields.groundtruth_boxes,
            fields.InputDataFields.groundtruth_classes)
    images: list[EvalImage] = []
    for path in _record_files(patterns):
        wanted = limit - len(images) if limit else -1
        encoded = _checked_examples(path, wanted)
        dataset = tf.data.TFRecordDataset(path).take(len(encoded)).map(
            lambda serialized: {k: v for k, v in decoder.decode(serialized).items() if k in keys})
        iterator = iter(dataset)
        for index, data in enumerate(encoded):
            where = f"record {index} of {path}"
            try:
                decoded = next(iterator)
            except tf.errors.InvalidArgumentError as exc:
                raise InputError(f"{where}: the image cannot be decoded (image/encoded is not a readable JPEG or PNG); "
                                 "remove or re-encode it") from exc
            image = EvalImage(image_id=_image_id(decoded[keys[0]].numpy(), len(images)), pixels=decoded[keys[1]].numpy(),
                              encoded=data, boxes=decoded[keys[2]].numpy().astype(np.float32),
                              classes=decoded[keys[3]].numpy().astype(np.int64))
            _check_labels(image, num_classes, where)
            images.append(image)
        if limit and len(images) >= limit:
            break
    if not images:
        raise InputError(f"the evaluation records ({', '.join(patterns)}) hold no examples")
    return images


def _reason(exc: Exception) -> str:
    """TensorFlow's error text without its function-node prefix, on one short line."""
    text = re.sub(r"\{\{[^}]*\}\}", "", str(getattr(exc, "message", exc)))
    return " ".join(text.split())[:100]


def _checked_examples(path: str, count: int) -> list[bytes]:
    """The encoded image of the first ``count`` records (-1: all), each checked to be an OD API tf.Example."""
    tf = compat.import_tensorflow()
    found = []
    try:
        for index, serialized in enumerate(tf.data.TFRecordDataset(path).take(count)):
            found.append(_check_example(serialized.numpy(), f"record {index} of {path}"))
    except tf.errors.DataLossError as exc:
        raise InputError(f"{path} is not a TFRecord file ({_reason(exc)}); give the eval "
                         "TFRecord the OD API reads") from exc
    return found


def _image_id(source_id: bytes, index: int) -> str:
    text = source_id.decode("utf-8", "replace") if isinstance(source_id, bytes) else str(source_id)
    return text or f"image_{index:05d}"


def _check_example(serialized: bytes, where: str) -> bytes:
    """The example's encoded image; refused when it is not an OD API tf.Example with boxes."""
    tf = compat.import_tensorflow()
    try:
        example = tf.train.Example.FromString(serialized)
    except Exception as exc:  # protobuf's DecodeError
        raise InputError(f"{where} is not a tf.train.Example; give records written for the OD API") from exc
    features = example.features.feature
    missing = [key for key in REQUIRED_KEYS[:1] if not features[key].bytes_list.value]
    if missing:
        raise InputError(f"{where} is not an OD API tf.Example (no {missing[0]}); give records written for the OD API")
    if not features["image/object/bbox/ymin"].float_list.value:
        raise InputError(f"{where} has no boxes (image/object/bbox/*); evaluation needs every image's ground truth")
    return features["image/encoded"].bytes_list.value[0]


def _check_labels(image: EvalImage, num_classes: int, where: str) -> None:
    outside = sorted({int(c) for c in image.classes if not 1 <= c <= num_classes})
    if outside:
        raise InputError(f"{where} has class ids {outside} outside the config's 1..{num_classes}; "
                         "the label map and the records must use the ids the model was trained with")
    if len(image.classes) != len(image.boxes):
        raise InputError(f"{where} has {len(image.boxes)} boxes but {len(image.classes)} class ids; "
                         "give each box image/object/class/label")


def read_coco(annotations: Path, images_dir: Path, num_classes: int, limit: int) -> list[EvalImage]:
    """A COCO annotation file (category ids as the model's class ids) and its image directory."""
    try:
        document = json.loads(Path(annotations).read_text(encoding="utf-8"))
        entries, annotations_list = document["images"], document["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{annotations} is not a COCO annotation file ({type(exc).__name__}: {exc}); give an "
                         "instances JSON with images and annotations") from exc
    by_image: dict[Any, list[dict]] = {}
    for annotation in annotations_list:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    images = []
    for entry in entries:
        path = Path(images_dir) / entry["file_name"]
        where = f"image {path}"
        try:
            encoded = path.read_bytes()
        except OSError as exc:
            raise InputError(f"{where} cannot be read ({exc.strerror}); give the directory the annotations refer to") from exc
        pixels = samples.decode_image(encoded, where)
        height, width = pixels.shape[:2]
        found = by_image.get(entry["id"], [])
        boxes = np.array([[a["bbox"][1] / height, a["bbox"][0] / width, (a["bbox"][1] + a["bbox"][3]) / height,
                           (a["bbox"][0] + a["bbox"][2]) / width] for a in found], np.float32).reshape(-1, 4)
        image = EvalImage(entry["id"], pixels, encoded, boxes, np.array([a["category_id"] for a in found], np.int64))
        if not len(found):
            raise InputError(f"{where} has no annotations; evaluation needs every image's ground truth")
        _check_labels(image, num_classes, where)
        images.append(image)
        if limit and len(images) >= limit:
            break
    return images
