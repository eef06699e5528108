"""Synthetic TF1 training runs, one per pattern that users' checkpoints show (see ``tests/tf1_corpus.py``).

Each builds a small classifier the way a TF1 script of its era would, trains it for
one step and saves it with a ``Saver``.  What a person reading the graph takes as its
inference inputs and outputs is written beside each pattern.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from od_export import compat

SIZE = 8
CLASSES = 3


@dataclass(frozen=True)
class Pattern:
    name: str
    build: Callable[[Any], dict[str, Any]]
    #: The person's decision: the outputs (node names) and inputs (tensor or node names) of the inference graph.
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]
    #: Placeholders inference holds still, with their values (None: the placeholder's default).
    held: tuple[tuple[str, Any], ...] = ()
    control_flow_v2: bool = False
    #: What ``freeze`` must say instead of freezing, when the checkpoint cannot compute the outputs.
    freeze_error: str | None = None


def _tf() -> Any:
    return compat.import_tensorflow()


def _features(v1: Any, shape: list[int | None] | None = None) -> Any:
    return v1.placeholder("float32", [None, SIZE * SIZE] if shape is None else shape, name="features")


def _dense(v1: Any, x: Any, units: int, scope: str, resource: bool = False) -> Any:
    with v1.variable_scope(scope):
        weights = v1.get_variable("weights", [x.shape[-1], units], use_resource=resource)
        bias = v1.get_variable("bias", [units], initializer=v1.zeros_initializer(), use_resource=resource)
    return v1.nn.bias_add(v1.matmul(x, weights), bias)


def _int_labels(v1: Any) -> Any:
    return v1.placeholder("int64", [None], name="labels")


def _train(v1: Any, loss: Any, learning_rate: Any = 0.1) -> Any:
    return v1.train.GradientDescentOptimizer(learning_rate).minimize(loss)


def dropout_with_default(v1: Any) -> dict[str, Any]:
    """TF 1.15 style: ``keep_prob = placeholder_with_default(1.0)`` and ``dropout(rate=1 - keep_prob)``."""
    x, labels = _features(v1), _int_labels(v1)
    keep = v1.placeholder_with_default(1.0, [], name="keep_prob")
    hidden = v1.nn.dropout(v1.nn.relu(_dense(v1, x, 8, "hidden")), rate=1 - keep)
    logits = _dense(v1, hidden, CLASSES, "out")
    v1.nn.softmax(logits)
    loss = v1.reduce_mean(v1.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    return {"train": _train(v1, loss), "feeds": {keep: 0.5}}


def dropout_keep_placeholder(v1: Any) -> dict[str, Any]:
    """2017 style: a plain ``keep_prob`` placeholder fed 0.5 in training, 1.0 for inference."""
    x, labels = _features(v1), _int_labels(v1)
    keep = v1.placeholder("float32")
    hidden = v1.nn.dropout(v1.nn.relu(_dense(v1, x, 8, "hidden")), keep_prob=keep)
    logits = _dense(v1, hidden, CLASSES, "out")
    v1.nn.softmax(logits)
    loss = v1.reduce_mean(v1.nn.softmax_cross_entropy_with_logits_v2(labels=v1.one_hot(labels, CLASSES), logits=logits))
    return {"train": _train(v1, loss), "feeds": {keep: 0.5}}


def dropout_rate_placeholder(v1: Any) -> dict[str, Any]:
    """``dropout(rate=rate)`` with the rate itself a placeholder: held at 0."""
    x, labels = _features(v1), _int_labels(v1)
    rate = v1.placeholder("float32", [], name="dropout_rate")
    logits = _dense(v1, v1.nn.dropout(x, rate=rate), CLASSES, "out")
    v1.nn.softmax(logits)
    loss = v1.reduce_mean(v1.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    return {"train": _train(v1, loss), "feeds": {rate: 0.3}}


def _batch_norm_on_a_switch(v1: Any, resource: bool) -> dict[str, Any]:
    """Batch norm written by hand: ``tf.cond(is_training, batch statistics + moving-average updates, averages)``."""
    tf = _tf()
    x, labels = _features(v1), _int_labels(v1)
    is_training = v1.placeholder(tf.bool, [], name="is_training")
    hidden = _dense(v1, x, 8, "hidden", resource)
    with v1.variable_scope("bn"):
        moving_mean = v1.get_variable("moving_mean", [8], initializer=v1.zeros_initializer(), trainable=False,
                                      use_resource=resource)
        moving_var = v1.get_variable("moving_variance", [8], initializer=v1.ones_initializer(), trainable=False,
                                     use_resource=resource)
    mean, variance = v1.nn.moments(hidden, [0])

    def training() -> Any:
        updates = [v1.assign(moving_mean, 0.9 * moving_mean + 0.1 * mean),
                   v1.assign(moving_var, 0.9 * moving_var + 0.1 * variance)]
        with tf.control_dependencies(updates):
            return tf.identity(mean), tf.identity(variance)

    use_mean, use_var = tf.cond(is_training, training, lambda: (tf.identity(moving_mean), tf.identity(moving_var)))
    normal = v1.nn.relu(v1.nn.batch_normalization(hidden, use_mean, use_var, None, None, 1e-3))
    logits = _dense(v1, normal, CLASSES, "out", resource)
    v1.nn.softmax(logits)
    loss = v1.reduce_mean(v1.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    return {"train": _train(v1, loss), "feeds": {is_training: True}}


def batch_norm_switch_v1(v1: Any) -> dict[str, Any]:
    """TF 1.x control flow (Switch/Merge), reference variables."""
    return _batch_norm_on_a_switch(v1, resource=False)


def batch_norm_switch_v1_resource(v1: Any) -> dict[str, Any]:
    """TF 1.x control flow with resource variables: the training branch's ``AssignVariableOp`` must not survive."""
    return _batch_norm_on_a_switch(v1, resource=True)


def batch_norm_switch_v2(v1: Any) -> dict[str, Any]:
    """TF 1.15/2.x control flow (If), resource variables."""
    return _batch_norm_on_a_switch(v1, resource=True)


def losses_and_metrics(v1: Any) -> dict[str, Any]:
    """``tf.losses`` and ``tf.metrics.accuracy`` (local variables), a learning-rate placeholder, summaries."""
    x, labels = _features(v1), _int_labels(v1)
    learning_rate = v1.placeholder("float32", [], name="learning_rate")
    logits = _dense(v1, v1.nn.relu(_dense(v1, x, 8, "hidden")), CLASSES, "out")
    v1.nn.softmax(logits)
    loss = v1.losses.sparse_softmax_cross_entropy(labels, logits)
    _, update = v1.metrics.accuracy(labels, v1.argmax(logits, 1))
    v1.summary.scalar("loss", loss)
    return {"train": [_train(v1, loss, learning_rate), update], "feeds": {learning_rate: 0.1}}


def slim_classifier(v1: Any) -> dict[str, Any]:
    """tf-slim layers with ``slim.dropout(is_training=...)`` and ``slim.losses``."""
    import tf_slim as slim

    tf = _tf()
    images = v1.placeholder("float32", [None, SIZE, SIZE, 3], name="images")
    labels = _int_labels(v1)
    is_training = v1.placeholder(tf.bool, [], name="is_training")
    net = slim.conv2d(images, 4, [3, 3], scope="conv1")
    net = slim.dropout(slim.flatten(net), 0.5, is_training=is_training, scope="dropout")
    logits = slim.fully_connected(net, CLASSES, activation_fn=None, scope="logits")
    slim.softmax(logits, scope="predictions")
    loss = v1.losses.sparse_softmax_cross_entropy(labels, logits)
    return {"train": _train(v1, loss), "feeds": {is_training: True}}


def keras_layers_in_a_session(v1: Any) -> dict[str, Any]:
    """Keras layers called on TF1 placeholders, trained in a ``Session``."""
    tf = _tf()
    x, labels = _features(v1), _int_labels(v1)
    hidden = tf.keras.layers.Dense(8, activation="relu", name="hidden")(x)
    probabilities = tf.keras.layers.Dense(CLASSES, activation="softmax", name="probabilities")(hidden)
    loss = v1.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, probabilities))
    return {"train": _train(v1, loss), "feeds": {}}


def dataset_iterator(v1: Any) -> dict[str, Any]:
    """A ``tf.data`` one-shot iterator feeds features and labels; nothing is fed by hand."""
    tf = _tf()
    rng = np.random.default_rng(0)
    data = tf.data.Dataset.from_tensor_slices((rng.normal(size=(8, SIZE * SIZE)).astype("float32"),
                                               rng.integers(0, CLASSES, 8))).repeat().batch(4, drop_remainder=True)
    features, labels = v1.data.make_one_shot_iterator(data).get_next()
    logits = _dense(v1, features, CLASSES, "out")
    v1.nn.softmax(logits)
    loss = v1.reduce_mean(v1.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    return {"train": _train(v1, loss), "feeds": {}, "fed": False}


def queue_input(v1: Any) -> dict[str, Any]:
    """A queue's ``dequeue_many`` feeds features and labels (what ``tf.train.batch`` and Estimators build)."""
    rng = np.random.default_rng(0)
    queue = v1.FIFOQueue(16, ["float32", "int64"], shapes=[[SIZE * SIZE], []])
    enqueue = queue.enqueue_many([rng.normal(size=(8, SIZE * SIZE)).astype("float32"), rng.integers(0, CLASSES, 8)])
    features, labels = queue.dequeue_many(4)
    logits = _dense(v1, features, CLASSES, "out")
    v1.nn.softmax(logits)
    loss = v1.reduce_mean(v1.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    return {"train": _train(v1, loss), "feeds": {}, "fed": False, "before": enqueue}


def constant_keep_probability(v1: Any) -> dict[str, Any]:
    """``tf.nn.dropout(h, 0.5)``: a keep probability written into the graph, which drops units at inference too.

    Under TF 2 the constant becomes the rate ``1 - 0.5`` compared with the noise, held at 0.
    """
    x, labels = _features(v1), _int_labels(v1)
    hidden = v1.nn.dropout(v1.nn.relu(_dense(v1, x, 8, "hidden")), keep_prob=0.5)
    logits = _dense(v1, hidden, CLASSES, "out")
    v1.nn.softmax(logits)
    loss = v1.reduce_mean(v1.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    return {"train": _train(v1, loss), "feeds": {}}


def old_shape_attributes(v1: Any) -> dict[str, Any]:
    """A graph as TF 1.1 and earlier wrote it: placeholders without a ``shape``, only ``_output_shapes``."""
    x, labels = _features(v1), v1.placeholder("float32", [None, CLASSES], name="labels")
    logits = _dense(v1, x, CLASSES, "out")
    v1.nn.softmax(logits)
    loss = v1.reduce_mean(v1.nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits))
    return {"train": _train(v1, loss), "feeds": {}, "old_shapes": True}


def cloudml_collections(v1: Any) -> dict[str, Any]:
    """CloudML-era: the inputs and outputs recorded as JSON in the ``inputs``/``outputs`` collections."""
    x, labels = _features(v1), _int_labels(v1)
    logits = _dense(v1, x, CLASSES, "out")
    scores = v1.nn.softmax(logits, name="scores")
    prediction = v1.argmax(logits, 1, name="prediction")
    loss = v1.reduce_mean(v1.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    v1.add_to_collection("inputs", json.dumps({"features": x.name}))
    v1.add_to_collection("outputs", json.dumps({"scores": scores.name, "prediction": prediction.name}))
    return {"train": _train(v1, loss), "feeds": {}}


def signature_in_the_meta(v1: Any) -> dict[str, Any]:
    """A ``.meta`` that carries a ``serving_default`` signature naming only the logits (the author's choice)."""
    x, labels = _features(v1), _int_labels(v1)
    logits = _dense(v1, x, CLASSES, "out")
    v1.nn.softmax(logits)
    loss = v1.reduce_mean(v1.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    signature = v1.saved_model.predict_signature_def({"x": x}, {"logits": logits})
    return {"train": _train(v1, loss), "feeds": {}, "signature": signature}


def built_twice(v1: Any) -> dict[str, Any]:
    """A notebook ran the model cell twice; the saver was made after the first, so it saves that copy only."""
    labels = _int_labels(v1)
    outputs = []
    for copy in ("first", "second"):
        x = v1.placeholder("float32", [None, SIZE * SIZE], name=f"features_{copy}")
        outputs.append((x, _dense(v1, x, CLASSES, f"out_{copy}")))
        v1.nn.softmax(outputs[-1][1])
        if copy == "first":
            saver = v1.train.Saver()
    loss = sum(v1.reduce_mean(v1.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
               for _, logits in outputs)
    return {"train": _train(v1, loss), "feeds": {outputs[1][0]: None}, "saver": saver}


def saver_missing_a_variable(v1: Any) -> dict[str, Any]:
    """The saver was given the weights only, so the checkpoint has no bias: the logits cannot be restored."""
    x, labels = _features(v1), _int_labels(v1)
    logits = _dense(v1, x, CLASSES, "out")
    v1.nn.softmax(logits)
    loss = v1.reduce_mean(v1.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    weights = [v for v in v1.global_variables() if v.op.name == "out/weights"]
    return {"train": _train(v1, loss), "feeds": {}, "saver": v1.train.Saver(var_list=weights)}


PATTERNS = (
    Pattern("dropout_with_default", dropout_with_default, ("Softmax",), ("features",), (("keep_prob", None),)),
    Pattern("dropout_keep_placeholder", dropout_keep_placeholder, ("Softmax",), ("features",), (("Placeholder", 1.0),)),
    Pattern("dropout_rate_placeholder", dropout_rate_placeholder, ("Softmax",), ("features",),
            (("dropout_rate", 0.0),)),
    Pattern("batch_norm_switch_v1", batch_norm_switch_v1, ("Softmax",), ("features",), (("is_training", False),)),
    Pattern("batch_norm_switch_v1_resource", batch_norm_switch_v1_resource, ("Softmax",), ("features",),
            (("is_training", False),)),
    Pattern("batch_norm_switch_v2", batch_norm_switch_v2, ("Softmax",), ("features",), (("is_training", False),),
            control_flow_v2=True),
    Pattern("losses_and_metrics", losses_and_metrics, ("Softmax",), ("features",)),
    Pattern("slim_classifier", slim_classifier, ("predictions/Reshape_1",), ("images",), (("is_training", False),)),
    Pattern("keras_layers_in_a_session", keras_layers_in_a_session, ("probabilities/Softmax",), ("features",)),
    Pattern("dataset_iterator", dataset_iterator, ("Softmax",), ("IteratorGetNext:0",)),
    Pattern("queue_input", queue_input, ("Softmax",), ("fifo_queue_DequeueMany:0",)),
    Pattern("constant_keep_probability", constant_keep_probability, ("Softmax",), ("features",),
            (("dropout/GreaterEqual/y", 0.0),)),
    Pattern("old_shape_attributes", old_shape_attributes, ("Softmax",), ("features",)),
    Pattern("cloudml_collections", cloudml_collections, ("prediction", "scores"), ("features",)),
    Pattern("signature_in_the_meta", signature_in_the_meta, ("BiasAdd",), ("features",)),
    Pattern("built_twice", built_twice, ("Softmax",), ("features_first",)),
    Pattern("saver_missing_a_variable", saver_missing_a_variable, ("Softmax",), ("features",),
            freeze_error="the checkpoint holds no value for 1 variable(s) the outputs Softmax read (out/bias)"),
)


def build(pattern: Pattern, directory: Path) -> Path:
    """Train ``pattern`` for one step and save it; returns the ``.meta`` path."""
    tf = _tf()
    v1 = tf.compat.v1
    was_v2 = v1.control_flow_v2_enabled()
    (v1.enable_control_flow_v2 if pattern.control_flow_v2 else v1.disable_control_flow_v2)()
    try:
        graph = tf.Graph()
        with graph.as_default():
            v1.set_random_seed(0)
            made = pattern.build(v1)
            saver = made.get("saver") or v1.train.Saver()
            rng = np.random.default_rng(0)
            with v1.Session() as session:
                session.run([v1.global_variables_initializer(), v1.local_variables_initializer()])
                feeds = {}
                if made.get("fed", True):
                    for placeholder in graph.get_operations():
                        if placeholder.type == "Placeholder":
                            feeds[placeholder.outputs[0]] = _sample(placeholder.outputs[0], rng)
                feeds.update({k: v for k, v in made["feeds"].items() if v is not None})
                if "before" in made:
                    session.run(made["before"])
                session.run(made["train"], feeds)
                prefix = saver.save(session, str(directory / "model.ckpt"), global_step=1)
    finally:
        (v1.enable_control_flow_v2 if was_v2 else v1.disable_control_flow_v2)()
    meta = Path(prefix + ".meta")
    meta_graph = v1.MetaGraphDef.FromString(meta.read_bytes())
    if "signature" in made:
        meta_graph.signature_def["serving_default"].CopyFrom(made["signature"])
    if made.get("old_shapes"):  # TF 1.1 wrote an empty shape, which graphs of producer version < 21 read as unknown
        meta_graph.graph_def.versions.producer = 20
        for node in meta_graph.graph_def.node:
            if node.op == "Placeholder":
                node.attr["_output_shapes"].list.shape.add().CopyFrom(node.attr["shape"].shape)
                node.attr["shape"].shape.Clear()
    meta.write_bytes(meta_graph.SerializeToString())
    return meta


def _sample(tensor: Any, rng: np.random.Generator) -> Any:
    shape = [4 if d is None else d for d in tensor.shape.as_list()] if tensor.shape.rank is not None else []
    if tensor.dtype.is_bool:
        return True
    if tensor.dtype.is_integer:
        return rng.integers(0, CLASSES, shape)
    return rng.normal(size=shape).astype("float32")
