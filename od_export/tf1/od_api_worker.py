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
    """Build the training graph, give it seeded weights (class biases near 0: varied scores), save it."""
    import numpy as np

    from od_export.source.demo import reinitialize_weights, training_forward
    from od_export.source.pipeline_config import model_input_size
    from object_detection.builders import model_builder
    import tensorflow.compat.v1 as tf

    tf.set_random_seed(request["seed"])
    model = model_builder.build(config.model, is_training=True)
    height, width = model_input_size(config)
    images = tf.placeholder(tf.float32, [1, height, width, 3])
    training_forward(model, config, images)
    step = tf.train.get_or_create_global_step()
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        reinitialize_weights([_SessionVariable(v, session) for v in tf.global_variables()], request["seed"])
        rng = np.random.default_rng(request["seed"])
        for variable in tf.global_variables():
            if "ClassPredictor/biases" in variable.name:
                variable.load(rng.normal(0.0, 1.0, variable.shape.as_list()).astype(np.float32), session)
        step.load(request["step"], session)
        tf.train.Saver(save_relative_paths=True).save(session, request["output_prefix"], global_step=step)
    return len(tf.global_variables())


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
