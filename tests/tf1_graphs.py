"""TF1 training artifacts made with ``tf.compat.v1``, as a TF1 script or TensorBoard recipe would leave them.

The graph has what freezing must leave behind (a labels placeholder only the loss
reads, a loss, gradients, Adam's slots and update ops, a global step, summaries, an
assertion, a saver) and a dropout keep-prob ``placeholder_with_default``; one
variable is a TF1 reference variable and the others are resource variables, so both
kinds are folded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from od_export import compat

#: ``logits`` is named and no learned op follows it, so it is an output beside the two read from it.
INFERENCE_OUTPUTS = ["classes", "logits", "probabilities"]
IMAGE_SIZE = 16


def make_tf1_run(directory: Path, image_dtype: str = "uint8", steps: int = 3) -> Path:
    """Train a tiny classifier for ``steps`` steps; return the ``model.ckpt-N.meta`` path."""
    tf = compat.import_tensorflow()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        images = v1.placeholder(image_dtype, [None, IMAGE_SIZE, IMAGE_SIZE, 3], name="images")
        labels = v1.placeholder(tf.int64, [None], name="labels")
        keep_prob = v1.placeholder_with_default(1.0, [], name="keep_prob")
        x = tf.cast(images, tf.float32) / 255.0
        kernel = v1.get_variable("conv/kernel", [3, 3, 3, 4], use_resource=False)
        x = tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME")), axis=[1, 2])
        x = v1.nn.dropout(x, keep_prob=keep_prob)
        weights = v1.get_variable("dense/weights", [4, 5])
        bias = v1.get_variable("dense/bias", [5], initializer=v1.ones_initializer())
        logits = tf.add(tf.matmul(x, weights), bias, name="logits")
        tf.nn.softmax(logits, name="probabilities")
        tf.argmax(logits, axis=1, name="classes")
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits), name="loss")
        step = v1.train.get_or_create_global_step()
        with tf.control_dependencies([v1.assert_non_negative(labels, name="labels_check")]):
            train_op = v1.train.AdamOptimizer(0.05).minimize(loss, global_step=step, name="train_op")
        v1.summary.scalar("loss", loss)
        v1.summary.histogram("logits", logits)
        v1.summary.merge_all()
        saver = v1.train.Saver()
        rng = np.random.default_rng(0)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            for _ in range(steps):
                batch = rng.integers(0, 256, (4, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(image_dtype)
                session.run(train_op, {images: batch, labels: rng.integers(0, 5, 4), keep_prob: 0.5})
            prefix = saver.save(session, str(directory / "model.ckpt"), global_step=step)
    return Path(prefix + ".meta")


def negated_largest_constant(graph_def: Any) -> Any:
    """A copy of ``graph_def`` with its largest constant negated (a tampered frozen graph)."""
    tf = compat.import_tensorflow()
    graph_def = type(graph_def).FromString(graph_def.SerializeToString())
    node = max((n for n in graph_def.node if n.op == "Const"), key=lambda n: len(n.attr["value"].tensor.tensor_content))
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(-tf.make_ndarray(node.attr["value"].tensor)))
    return graph_def


def make_softmax_classifier(directory: Path, named: bool = False, unnamed_heads: bool = False) -> tuple[Path, Path]:
    """The seeds' TF1 recipe: ``Y = softmax(matmul(X, W) + b)``, cross-entropy against ``Y_``, a Saver.

    Returns the ``.meta`` saved during training and the final one, saved after the
    script adds ``accuracy = reduce_mean(cast(equal(argmax(Y, 1), argmax(Y_, 1))))``.
    ``named``: ``Y`` carries that name and ``prediction = argmax(Y, 1)`` is named too.
    ``unnamed_heads``: a second, unnamed sigmoid head beside the softmax (nobody can tell which is meant).
    """
    tf = compat.import_tensorflow()
    v1 = tf.compat.v1
    for stage in ("during", "final"):
        (directory / stage).mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        features = v1.placeholder(tf.float32, [None, 16])
        labels = v1.placeholder(tf.float32, [None, 4])
        weights, bias = tf.Variable(tf.zeros([16, 4])), tf.Variable(tf.zeros([4]))
        probabilities = tf.nn.softmax(tf.matmul(features, weights) + bias, name="Y" if named else None)
        if named:
            tf.argmax(probabilities, 1, name="prediction")
        loss = tf.reduce_mean(-tf.reduce_sum(labels * v1.log(probabilities), axis=1))
        if unnamed_heads:
            head = tf.nn.sigmoid(tf.matmul(features, tf.Variable(tf.ones([16, 2]))))
            loss += tf.reduce_mean(tf.square(head - labels[:, :2]))
        train_step = v1.train.GradientDescentOptimizer(0.5).minimize(loss)
        saver = v1.train.Saver()
        rng = np.random.default_rng(0)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            for step in range(3):
                classes = rng.integers(0, 4, 8)
                session.run(train_step, {features: rng.normal(size=(8, 16)) + classes[:, None],
                                         labels: np.eye(4)[classes]})
            during = saver.save(session, str(directory / "during" / "model.ckpt"), global_step=3)
            correct = tf.equal(tf.argmax(probabilities, 1), tf.argmax(labels, 1))
            tf.reduce_mean(tf.cast(correct, tf.float32))
            final = v1.train.Saver().save(session, str(directory / "final" / "model.ckpt"), global_step=3)
    return Path(during + ".meta"), Path(final + ".meta")
