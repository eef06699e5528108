"""The inference view of a TF1 graph: which placeholders are training switches, and which branches die."""
from __future__ import annotations

from od_export import compat
from od_export.inspect.graph_index import auto_named
from od_export.inspect.switches import fold, training_switches
from od_export.tf1.serving import case_distinct


def _graph(build):
    tf = compat.import_tensorflow()
    v1 = tf.compat.v1
    was_v2 = v1.control_flow_v2_enabled()
    v1.disable_control_flow_v2()
    try:
        graph = tf.Graph()
        with graph.as_default():
            build(tf, v1)
        return graph.as_graph_def()
    finally:
        if was_v2:
            v1.enable_control_flow_v2()


def _switches(graph_def):
    return {f.name: f.value for f in training_switches(graph_def, lambda name: False)}


def test_keep_probability_rate_and_is_training_are_told_apart():
    def build(tf, v1):
        x = v1.placeholder("float32", [None, 4], name="x")
        keep = v1.placeholder("float32", name="keep")
        rate = v1.placeholder("float32", [], name="rate")
        flag = v1.placeholder(tf.bool, [], name="is_training")
        scale = v1.placeholder("float32", [], name="scale")  # a plain setting: multiplies, meets no noise
        y = v1.nn.dropout(v1.nn.dropout(x, keep_prob=keep), rate=rate) * scale
        tf.cond(flag, lambda: y * 2.0, lambda: y)

    assert _switches(_graph(build)) == {"keep": 1.0, "rate": 0.0, "is_training": False}


def test_a_constant_switch_removes_the_untaken_branch_and_what_only_it_read():
    def build(tf, v1):
        x = v1.placeholder("float32", [None, 4], name="x")
        flag = v1.placeholder(tf.bool, [], name="is_training")
        counter = v1.get_variable("counter", [], use_resource=False)

        def training():
            with tf.control_dependencies([v1.assign_add(counter, 1.0, name="count")]):
                return tf.identity(x * 2.0, name="doubled")

        tf.identity(tf.cond(flag, training, lambda: tf.identity(x, name="as_is")), name="out")

    graph_def = _graph(build)
    view = fold(graph_def, training_switches(graph_def, lambda name: False))
    names = {n.name for n in view.node}
    assert "cond/as_is" in names and not {"cond/doubled", "cond/count"} & names
    assert not [n for n in view.node if n.op in ("Switch", "Merge")]
    merged = next(n for n in view.node if n.name == "cond/Merge")
    assert merged.op == "Identity" and [i for i in merged.input if not i.startswith("^")] == ["cond/as_is"]


def test_names_tensorflow_made_and_names_an_author_gave():
    tf = compat.import_tensorflow()
    node = tf.compat.v1.NodeDef
    assert auto_named(node(name="strided_slice_3", op="StridedSlice"))
    assert auto_named(node(name="ToFloat", op="Cast")) and auto_named(node(name="dense_2/BiasAdd", op="BiasAdd"))
    assert not auto_named(node(name="detection_boxes", op="Identity"))
    assert not auto_named(node(name="softmax_tensor", op="Softmax"))


def test_case_distinct_keeps_the_signature_names():
    tf = compat.import_tensorflow()
    graph_def = tf.compat.v1.GraphDef()
    graph_def.node.add(name="Add", op="Const")
    graph_def.node.add(name="add", op="Identity", input=["Add"])
    graph_def.node.add(name="out", op="Identity", input=["^add", "add:0"])
    renamed = case_distinct(graph_def, {"add"})
    assert [n.name for n in renamed.node] == ["Add_1", "add", "out"]
    assert list(renamed.node[1].input) == ["Add_1"] and list(renamed.node[2].input) == ["^add", "add:0"]
