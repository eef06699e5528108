"""Deterministic sample inputs per input type, and runners for each artifact kind.

The same image feeds every artifact: a uint8 batch for ``image_tensor``, the same
values as float32 for ``float_image_tensor``, its JPEG encoding (what clients send)
for ``encoded_image_string_tensor`` and a serialized ``tf.train.Example`` holding
that JPEG for ``tf_example``.  Every artifact receives the very same bytes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from od_export import compat
from od_export.errors import InputError
from od_export.storage.reading import check_protobuf_file


def sample_image(height: int = 150, width: int = 170, seed: int = 0) -> np.ndarray:
    """A smooth random image (not constant, not pure noise) of shape [H, W, 3], uint8."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(height // 10 + 2, width // 10 + 2, 3)).astype(np.float32)
    rows = np.linspace(0, coarse.shape[0] - 1.001, height)
    cols = np.linspace(0, coarse.shape[1] - 1.001, width)
    image = coarse[rows.astype(int)][:, cols.astype(int)]
    noise = rng.normal(0, 12, size=image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` at a fixed input size, as uint8, so that the SavedModel and the artifact see identical pixels."""
    tf = compat.import_tensorflow()
    if image.shape[:2] == (height, width):
        return image
    return np.clip(np.round(tf.image.resize(image, (height, width)).numpy()), 0, 255).astype(np.uint8)


def read_image(path: Path, what: str) -> np.ndarray:
    """The image file at ``path``, decoded; an unreadable or undecodable file is one line naming ``what``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{what} cannot be read ({exc.strerror}); remove it or make it readable") from exc
    return decode_image(data, what)


def decode_image(data: bytes, what: str) -> np.ndarray:
    """JPEG, PNG, BMP or GIF bytes → [H, W, 3] uint8; ``what`` names the image in the one-line error."""
    tf = compat.import_tensorflow()
    try:
        return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    except (tf.errors.OpError, ValueError) as exc:
        raise InputError(f"{what} cannot be decoded as an image ({type(exc).__name__}); remove it or replace it "
                         "with a JPEG, PNG, BMP or GIF file") from exc


def encode_jpeg(image: np.ndarray) -> bytes:
    tf = compat.import_tensorflow()
    return bytes(tf.io.encode_jpeg(image, quality=95).numpy())


def tf_example_bytes(image: np.ndarray) -> bytes:
    return tf_example_of_encoded(encode_jpeg(image), image.shape)


def tf_example_of_encoded(encoded: bytes, shape: tuple[int, ...]) -> bytes:
    """A serialized tf.Example holding one encoded JPEG image of ``shape`` (H, W, C)."""
    tf = compat.import_tensorflow()
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
        "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"jpeg"])),
        "image/height": tf.train.Feature(int64_list=tf.train.Int64List(value=[shape[0]])),
        "image/width": tf.train.Feature(int64_list=tf.train.Int64List(value=[shape[1]])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def input_batch(input_type: str, image: np.ndarray) -> np.ndarray:
    """The ``input_tensor`` value for ``input_type`` holding ``image`` (batch of one)."""
    if input_type == "image_tensor":
        return image[np.newaxis]
    if input_type == "float_image_tensor":
        return image[np.newaxis].astype(np.float32)
    if input_type == "encoded_image_string_tensor":
        return np.array([encode_jpeg(image)], dtype=object)
    if input_type == "tf_example":
        return np.array([tf_example_bytes(image)], dtype=object)
    raise ValueError(f"no sample input for input type {input_type}")


def run_saved_model(directory: Path, inputs: dict[str, np.ndarray], signature_key: str = "serving_default") -> dict[str, np.ndarray]:
    tf = compat.import_tensorflow()
    loaded = tf.saved_model.load(str(directory))
    function = loaded.signatures[signature_key]
    outputs = function(**{name: tf.constant(value) for name, value in inputs.items()})
    return {key: value.numpy() for key, value in outputs.items()}


def _plain_session_config() -> Any:
    """A session without grappler: it would spend a second rewriting a graph we run once."""
    tf = compat.import_tensorflow()
    from tensorflow.core.protobuf import rewriter_config_pb2

    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    config.graph_options.rewrite_options.constant_folding = rewriter_config_pb2.RewriterConfig.OFF
    return config


class FrozenGraphRunner:
    """A GraphDef imported once into a TF1 session, run as often as needed.

    ``optimize=False`` (checks) skips grappler, which would spend a second rewriting
    a graph run once or twice; ``optimize=True`` runs it as users do (benchmarks).
    """

    def __init__(self, graph_def: Any, optimize: bool = False) -> None:
        tf = compat.import_tensorflow()
        self._graph = tf.Graph()
        with self._graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        config = None if optimize else _plain_session_config()
        self._session = tf.compat.v1.Session(graph=self._graph, config=config)

    def run(self, feeds: dict[str, Any], fetches: dict[str, str]) -> dict[str, np.ndarray]:
        """``feeds`` and ``fetches`` are tensor names (``input_tensor:0``)."""
        return dict(self._session.run(fetches, feed_dict=feeds))

    def close(self) -> None:
        self._session.close()


def run_frozen_graph(graph_def: Any, feeds: dict[str, np.ndarray], fetches: dict[str, str]) -> dict[str, np.ndarray]:
    """Run a GraphDef once: ``feeds`` and ``fetches`` are tensor names."""
    runner = FrozenGraphRunner(graph_def)
    try:
        return runner.run(feeds, fetches)
    finally:
        runner.close()


def load_graph_def(path: Path) -> Any:
    tf = compat.import_tensorflow()
    from google.protobuf import text_format

    check_protobuf_file(path, "graph", "give a frozen graph file")
    graph_def = tf.compat.v1.GraphDef()
    if path.suffix == ".pbtxt":
        text_format.Merge(path.read_text(encoding="utf-8"), graph_def)
    else:
        graph_def.ParseFromString(path.read_bytes())
    return graph_def
