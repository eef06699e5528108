"""A seeded synthetic detection data set, written as the OD API's TFRecords, for a trained demo run.

Three classes of shapes (``circle``, ``square``, ``triangle``) on cluttered backgrounds:
each image has one to four objects of varied size, position and shade, which may
overlap a little; the background is noise crossed by thin strokes of every colour.
The class is told by the shape and, to give a small model the easy structure a demo
needs, by a hue family too (reds, greens, blues).  Each image is one ``tf.Example``
with the keys the OD API's ``TfExampleDecoder`` reads (``image/encoded`` JPEG at quality 90,
``image/format``, ``image/height``/``width``, ``image/source_id``,
``image/object/bbox/{ymin,xmin,ymax,xmax}`` normalised, ``image/object/class/label``
and ``/text``), and a ``label_map.pbtxt`` names the classes.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASSES = ("circle", "square", "triangle")
#: Hue families per class (RGB ranges), so colour marks the class as well as shape.
_HUES = (((170, 255), (0, 90), (0, 90)), ((0, 90), (150, 255), (0, 90)), ((0, 90), (0, 110), (160, 255)))
TRAIN_RECORD, EVAL_RECORD, LABEL_MAP = "train.record", "eval.record", "label_map.pbtxt"


@dataclass(frozen=True)
class DemoDataset:
    train_record: Path
    eval_record: Path
    label_map: Path
    train_images: int
    eval_images: int


def label_map_text() -> str:
    return "".join(f'item {{ id: {i + 1} name: "{name}" }}\n' for i, name in enumerate(CLASSES))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    image = rng.integers(60, 196, (1, 1, 3)) + rng.normal(0, 18, (size, size, 3))
    for _ in range(rng.integers(4, 10)):  # clutter of every colour: thin strokes, which no class resembles
        y, x = rng.integers(0, size, 2)
        length, width = int(rng.integers(size // 8, size // 2)), int(rng.integers(1, 4))
        colour = rng.integers(0, 256, 3)
        if rng.random() < 0.5:
            image[y:y + width, x:x + length] = colour
        else:
            image[y:y + length, x:x + width] = colour
    return np.clip(image, 0, 255)


def _mask(kind: int, size: int, y: int, x: int, side: int) -> np.ndarray:
    rows, cols = np.mgrid[0:size, 0:size]
    cy, cx, r = y + side / 2, x + side / 2, side / 2
    if kind == 0:
        return (rows - cy) ** 2 + (cols - cx) ** 2 <= r ** 2
    inside = (rows >= y) & (rows < y + side) & (cols >= x) & (cols < x + side)
    if kind == 1:
        return inside
    return inside & (np.abs(cols - cx) <= (rows - y) / 2)  # apex at the top, base at the bottom


def synthetic_image(rng: np.random.Generator, size: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image (uint8 HxWx3), its boxes ([N,4] ymin, xmin, ymax, xmax, normalised) and labels (1-based)."""
    image = _background(rng, size)
    boxes, labels = [], []
    for _ in range(rng.integers(1, 5)):
        kind, side = int(rng.integers(0, 3)), int(rng.integers(size * 3 // 16, size * 7 // 16))
        y, x = (int(v) for v in rng.integers(0, size - side, 2))
        box = np.array([y, x, y + side, x + side], np.float32) / size
        if any(_overlap(box, other) > 0.3 for other in boxes):
            continue
        colour = [rng.integers(low, high) for low, high in _HUES[kind]]
        image[_mask(kind, size, y, x, side)] = colour
        boxes.append(box)
        labels.append(kind + 1)
    return np.clip(image, 0, 255).astype(np.uint8), np.array(boxes, np.float32), np.array(labels, np.int64)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    return inter / min(float(np.prod(a[2:] - a[:2])), float(np.prod(b[2:] - b[:2])))


def tf_example(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, source_id: str) -> bytes:
    """The serialized ``tf.Example`` the OD API's decoder reads."""
    import tensorflow as tf
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)

    def floats(values: np.ndarray) -> tf.train.Feature:
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))

    def strings(*values: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))

    def ints(*values: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    feature = {
        "image/encoded": strings(buffer.getvalue()), "image/format": strings(b"jpeg"),
        "image/height": ints(image.shape[0]), "image/width": ints(image.shape[1]),
        "image/source_id": strings(source_id.encode()), "image/filename": strings(f"{source_id}.jpg".encode()),
        "image/object/bbox/ymin": floats(boxes[:, 0]), "image/object/bbox/xmin": floats(boxes[:, 1]),
        "image/object/bbox/ymax": floats(boxes[:, 2]), "image/object/bbox/xmax": floats(boxes[:, 3]),
        "image/object/class/label": ints(*(int(v) for v in labels)),
        "image/object/class/text": strings(*(CLASSES[int(v) - 1].encode() for v in labels)),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_demo_dataset(directory: Path, seed: int = 0, train_images: int = 2000, eval_images: int = 200,
                       size: int = 128) -> DemoDataset:
    """``train.record``, ``eval.record`` (held out: another seed stream) and ``label_map.pbtxt`` in ``directory``."""
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)
    for name, count, stream in ((TRAIN_RECORD, train_images, 0), (EVAL_RECORD, eval_images, 1)):
        rng = np.random.default_rng([seed, stream])
        with tf.io.TFRecordWriter(str(directory / name)) as writer:
            for index in range(count):
                writer.write(tf_example(*synthetic_image(rng, size), f"{name.split('.')[0]}-{index:05d}"))
    (directory / LABEL_MAP).write_text(label_map_text(), encoding="utf-8")
    return DemoDataset(directory / TRAIN_RECORD, directory / EVAL_RECORD, directory / LABEL_MAP, train_images,
                       eval_images)
