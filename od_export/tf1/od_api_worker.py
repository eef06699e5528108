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

import json
import sys
from pathlib import Path
from typing import Any


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

        from od_export import compat

        exporter = compat.import_tf1_exporter()
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
