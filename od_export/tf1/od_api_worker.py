"""Child process of the TF1 OD API work: ``python -m od_export.tf1.od_api_worker REQUEST.json``.

TF1 behaviour (which the OD API's slim models and ``exporter.py`` need) is a
process-wide switch that would break every TF2 code path, so that work runs here,
alone.  ``"action": "export"`` names the pipeline config, the checkpoint prefix and
one output directory per input type; each gets ``exporter.export_inference_graph``'s
layout.  ``"action": "checkpoint"`` writes a seeded random TF1 training checkpoint
(``model.ckpt-N``, for demos and tests).  A failure is one JSON line on stdout
(``{"error": ...}``) and exit code 1.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from od_export import compat
from od_export.errors import EnvironmentProblem


def _alias_module(alias: str, target: str) -> None:
    if alias not in sys.modules:
        sys.modules[alias] = importlib.import_module(target)


@contextlib.contextmanager
def _numpy_aliases() -> Iterator[None]:
    """``np.int`` for the import only: slim's mobilenet_v3 (imported by the TF1 model builder) calls it at import."""
    import numpy as np

    added = [name for name, value in (("int", int), ("float", float), ("bool", bool)) if not hasattr(np, name)]
    for name in added:
        setattr(np, name, {"int": int, "float": float, "bool": bool}[name])
    try:
        yield
    finally:
        for name in added:
            delattr(np, name)


def import_tf1_exporter() -> Any:
    """The OD API's TF1 ``exporter`` module, with TF1 behaviour on.  Call it in a process of its own.

    * The model builder registers the slim (TF1) feature extractors only when TF2
      behaviour is off, so it is turned off before the OD API is imported.
    * The slim feature extractors import ``nets``, which this OD API package ships as
      ``object_detection.nets``: aliased.
    * ``tf.layers`` (slim's batch norm) lazily loads ``tf_keras.legacy_tf_layers``,
      which tf-keras 2.20 keeps under ``tf_keras.src``: aliased.
    * ``bipartite_matcher`` imports ``tensorflow.contrib`` (gone since TF 2.0) and is
      only used by configs that ask for it: replaced by a module that says so.
    * ``export_inference_graph`` prints a tfprof summary through ``tensorflow.contrib``:
      skipped (it only logs parameter counts).
    """
    tf = compat.import_tensorflow()
    tf.compat.v1.disable_v2_behavior()
    _alias_module("nets", "object_detection.nets")
    for suffix in ("", ".normalization", ".core", ".convolutional", ".pooling"):
        _alias_module("tf_keras.legacy_tf_layers" + suffix, "tf_keras.src.legacy_tf_layers" + suffix)
    bipartite = types.ModuleType("object_detection.matchers.bipartite_matcher")
    bipartite.__getattr__ = _bipartite_unavailable  # type: ignore[attr-defined]
    sys.modules.setdefault("object_detection.matchers.bipartite_matcher", bipartite)
    with _numpy_aliases():
        compat.import_object_detection()
        from object_detection import exporter
    exporter.profile_inference_graph = lambda graph: None
    return exporter


def _bipartite_unavailable(name: str) -> Any:
    if name.startswith("__"):  # the import machinery probing for __path__ and friends
        raise AttributeError(name)
    raise EnvironmentProblem("the bipartite matcher needs tensorflow.contrib, which TensorFlow 2 does not have; "
                             "use the argmax matcher in the config")


def _export(exporter: Any, config: Any, request: dict[str, Any]) -> int:
    for input_type, directory in request["units"].items():
        exporter.tf.reset_default_graph()
        exporter.export_inference_graph(input_type, config, request["checkpoint_prefix"], directory)
    return len(request["units"])


#: He-initialised heads predict logits that saturate every score at 0 or 1, and box offsets of
#: several units that ``exp`` turns into boxes far outside the image (or infinite, through a
#: second stage); scaled down, scores vary and boxes stay near their anchors.
HEAD_SCALE = {"class": 0.3, "box": 0.05}


class _SessionVariable:
    """A graph variable with the eager interface :func:`reinitialize_weights` uses."""

    def __init__(self, variable: Any, session: Any) -> None:
        self.variable, self.session = variable, session
        self.name, self.shape, self.dtype = variable.name, variable.shape, variable.dtype.base_dtype

    def numpy(self) -> Any:
        return self.session.run(self.variable)

    def assign(self, value: Any) -> None:
        self.variable.load(value, self.session)


def _checkpoint(config: Any, request: dict[str, Any]) -> int:
    """Build the training graph on sample images, give it seeded weights, save it.

    As for TF2 demo checkpoints, random kernels need batch-norm statistics that fit
    them (else activations explode through deep backbones), so each layer's moving
    mean and variance are set to the statistics of its input on the sample images,
    the class and box heads are scaled down and the class biases drawn near 0, so
    that scores vary and boxes stay near their anchors.
    """
    import numpy as np

    from od_export.source.demo import calibration_images, reinitialize_weights, training_forward
    from object_detection.builders import model_builder
    import tensorflow.compat.v1 as tf

    tf.set_random_seed(request["seed"])
    model = model_builder.build(config.model, is_training=True)
    training_forward(model, config, calibration_images(config, request["seed"]))
    step = tf.train.get_or_create_global_step()
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        reinitialize_weights([_SessionVariable(v, session) for v in tf.global_variables()], request["seed"])
        _batch_norm_from_batch_statistics(tf, session)
        rng = np.random.default_rng(request["seed"])
        for variable in tf.global_variables():
            if "ClassPredictor/biases" in variable.name:
                variable.load(rng.normal(0.0, 1.0, variable.shape.as_list()).astype(np.float32), session)
            elif "Predictor/weights" in variable.name:  # small logits and box offsets: varied scores, sane boxes
                scale = HEAD_SCALE["box" if "BoxEncoding" in variable.name else "class"]
                variable.load(session.run(variable) * np.float32(scale), session)
        step.load(request["step"], session)
        tf.train.Saver(save_relative_paths=True).save(session, request["output_prefix"], global_step=step)
    return len(tf.global_variables())


def _batch_norm_from_batch_statistics(tf: Any, session: Any) -> None:
    """Each fused batch norm's moving mean and variance → the statistics of its input, layer after layer.

    Layers in inference mode (a backbone whose batch norm is frozen) normalise with the
    moving statistics, so each layer's input depends on the layers before it: they are
    set in graph order, one forward pass per layer.
    """
    variables = {v.op.name: v for v in tf.global_variables()}
    for op in tf.get_default_graph().get_operations():
        if not op.type.startswith("FusedBatchNorm") or op.get_attr("data_format") not in (b"NHWC", "NHWC"):
            continue
        scope = op.name.rsplit("/", 1)[0]
        mean, variance = variables.get(f"{scope}/moving_mean"), variables.get(f"{scope}/moving_variance")
        if mean is None or variance is None:
            continue
        moments = tf.nn.moments(op.inputs[0], axes=[0, 1, 2])
        batch_mean, batch_variance = session.run(moments)
        mean.load(batch_mean, session)
        variance.load(batch_variance, session)


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        from google.protobuf import text_format

        exporter = import_tf1_exporter()
        from object_detection.protos import pipeline_pb2

        config = text_format.Parse(Path(request["pipeline_config"]).read_text(encoding="utf-8"),
                                   pipeline_pb2.TrainEvalPipelineConfig())
        count = _export(exporter, config, request) if request["action"] == "export" else _checkpoint(config, request)
    except Exception as exc:  # reported to the parent as one line
        print(json.dumps({"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"}), flush=True)
        return 1
    print(json.dumps({"ok": True, "count": count}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
