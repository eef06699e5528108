"""Run an ONNX file with TensorRT plugin nodes on a CPU: onnxruntime between the plugins, references for them.

onnxruntime has no ``EfficientNMS_TRT`` or ``CropAndResize``.  The graph is cut at each
plugin node, in graph order: the part that computes a plugin's inputs (from the graph's
inputs and the outputs of the plugins before it) runs in onnxruntime, the plugin itself
is :func:`od_export.verify.efficient_nms.efficient_nms` or
:func:`od_export.verify.crop_and_resize.crop_and_resize` with the node's own
attributes, and a last part computes the graph's outputs.  Every tensor on the way is
kept, so a check can read intermediate results (the proposals, the second stage's
scores) as well as the outputs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from od_export.verify.crop_and_resize import crop_and_resize
from od_export.verify.efficient_nms import EfficientNmsAttributes, efficient_nms

NMS_OP, CROP_OP = "EfficientNMS_TRT", "CropAndResize"
PLUGINS = (NMS_OP, CROP_OP)


def _run_plugin(node: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    if node.op == NMS_OP:
        return list(efficient_nms(inputs[0], inputs[1], EfficientNmsAttributes.from_node(node.attrs)).values())
    return [crop_and_resize(inputs[0], inputs[1], int(node.attrs["crop_height"]), int(node.attrs["crop_width"]))]


class PluginGraph:
    """``run(feeds)`` → every tensor computed on the way to the graph's outputs (and to ``extra`` names)."""

    def __init__(self, model: Any) -> None:
        import onnx_graphsurgeon as gs

        self.model = model
        graph = gs.import_onnx(model)
        graph.toposort()
        self.plugins = [n for n in graph.nodes if n.op in PLUGINS]
        self.outputs = [t.name for t in graph.outputs]
        self._segments: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}

    def run(self, feeds: dict[str, np.ndarray], extra: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        import onnx_graphsurgeon as gs

        values = dict(feeds)
        for node in self.plugins:
            needed = tuple(t.name for t in node.inputs if not isinstance(t, gs.Constant) and t.name not in values)
            if needed:
                values.update(self._segment(tuple(values), needed).run(values))
            inputs = [t.values if isinstance(t, gs.Constant) else values[t.name] for t in node.inputs]
            values.update(zip((t.name for t in node.outputs), _run_plugin(node, inputs)))
        remaining = tuple(name for name in (*self.outputs, *extra) if name not in values)
        if remaining:
            values.update(self._segment(tuple(values), remaining).run(values))
        return values

    def _segment(self, available: tuple[str, ...], wanted: tuple[str, ...]) -> Any:
        """An onnxruntime session for the part of the graph from ``available`` tensors to ``wanted`` ones."""
        key = (available, wanted)
        if key not in self._segments:
            self._segments[key] = _Segment(self.model, available, wanted)
        return self._segments[key]


class _Segment:
    def __init__(self, model: Any, available: tuple[str, ...], wanted: tuple[str, ...]) -> None:
        import onnx_graphsurgeon as gs

        from od_export.targets.onnx import OnnxRunner

        graph = gs.import_onnx(model)
        for node in graph.nodes:
            if node.op in PLUGINS:
                node.outputs.clear()  # its outputs are computed already: they become this part's inputs
        tensors = graph.tensors()
        graph.inputs = [tensors[name] for name in available if name in tensors]
        graph.outputs = [tensors[name] for name in wanted]
        graph.cleanup(remove_unused_graph_inputs=True).toposort()
        self.runner = OnnxRunner(gs.export_onnx(graph).SerializeToString())
        self.inputs = [i.name for i in self.runner.session.get_inputs()]

    def run(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runner.run({name: values[name] for name in self.inputs})
