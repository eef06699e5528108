"""TF1 graphs as people trained them: discovery gives the person's decision, and freezing keeps the outputs.

Two corpora: the synthetic patterns of ``tests/tf1_patterns.py`` (always run) and the
real public checkpoints of ``tests/tf1_corpus.py`` (run where the corpus is on disk).
``freeze`` verifies each frozen graph and SavedModel against the restored checkpoint
on the same inputs itself; these tests check that it gets there, that the frozen
graph's placeholders are exactly the inference inputs, and that ``inspect`` agrees.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from od_export import compat
from od_export.cli import main
from od_export.verify import samples
from tests import tf1_corpus, tf1_patterns

pytestmark = pytest.mark.integration


def _meta_graph(meta: Path) -> object:
    tf = compat.import_tensorflow()
    return tf.compat.v1.MetaGraphDef.FromString(meta.read_bytes())


def _frozen(output: Path) -> tuple[dict, set[str]]:
    io_spec = json.loads((output / "frozen_graph" / "io_spec.json").read_text())
    graph_def = samples.load_graph_def(output / "frozen_graph" / "frozen_inference_graph.pb")
    return io_spec, {f"{n.name}:0" for n in graph_def.node if n.op == "Placeholder"}


@pytest.mark.parametrize("pattern", tf1_patterns.PATTERNS, ids=lambda p: p.name)
def test_pattern_outputs_inspect_and_freeze(pattern, tmp_path, capsys):
    from od_export.inspect.meta_discovery import discover_meta

    meta = tf1_patterns.build(pattern, tmp_path / "run")
    found = discover_meta(_meta_graph(meta))
    assert found.outputs == pattern.outputs and not found.ambiguous
    assert {f.name: f.value for f in found.folds} == dict(pattern.held)
    capsys.readouterr()
    assert main(["inspect", str(meta), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    listed = [o.get("name") or o["tensor"].split(":")[0] for o in report["likely_outputs"]]
    assert sorted(listed) == sorted(pattern.outputs)

    output = tmp_path / "out"
    code = main(["freeze", "--meta-graph", str(meta), "--output-dir", str(output), "--saved-model", "-q"])
    if pattern.freeze_error:
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and pattern.freeze_error in err, err
        assert not output.exists()
        return
    assert code == 0, capsys.readouterr().err
    io_spec, placeholders = _frozen(output)
    fed = {spec.get("stands_for", spec["tensor"]) for spec in io_spec["inputs"].values()}
    assert fed == {i if ":" in i else f"{i}:0" for i in pattern.inputs}
    assert placeholders == {spec["tensor"] for spec in io_spec["inputs"].values()}
    assert {spec["tensor"].split(":")[0] for spec in io_spec["outputs"].values()} == set(pattern.outputs)


def _entries() -> list:
    return [pytest.param(e, id=e.key, marks=pytest.mark.skipif(not tf1_corpus.present(e), reason=(
        f"the real TF1 corpus is not at {tf1_corpus.corpus_root()} (set OD_EXPORT_TF1_CORPUS)")))
        for e in tf1_corpus.ENTRIES]


@pytest.mark.parametrize("entry", _entries())
def test_real_checkpoint_discovery_is_the_persons_decision(entry):
    from od_export.inspect.meta_discovery import discover_meta

    found = discover_meta(_meta_graph(tf1_corpus.corpus_root() / entry.key))
    assert found.outputs == entry.outputs and found.ambiguous == entry.ambiguous
    assert {f.name: f.value for f in found.folds} == dict(entry.held)
    if entry.ambiguous:
        assert [c.name for c in found.ranked] == list(entry.outputs)
    else:
        assert set(entry.inputs) <= set(found.inputs)


@pytest.mark.parametrize("entry", _entries())
def test_real_checkpoint_freezes_to_the_same_outputs(entry, tmp_path, capsys):
    meta = tf1_corpus.corpus_root() / entry.key
    output = tmp_path / "out"
    args = ["freeze", "--meta-graph", str(meta), "--output-dir", str(output), "-q"]
    if entry.weights != "checkpoint":
        args += ["--checkpoint", str(tf1_corpus.standin_checkpoint(meta, tmp_path / "standin"))]
    if entry.saved_model:
        args.append("--saved-model")
    if entry.ambiguous:
        capsys.readouterr()
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "ambiguous" in err and "; ".join(entry.outputs[:1]) in err
        args += ["--output-nodes", entry.outputs[0]]
    code = main(args)
    err = capsys.readouterr().err.strip()
    if entry.freeze_error:
        assert code == 2 and len(err.splitlines()) == 1 and entry.freeze_error in err, err
        return
    assert code == 0, err
    io_spec, placeholders = _frozen(output)
    assert placeholders == {spec["tensor"] for spec in io_spec["inputs"].values()}
    if not entry.ambiguous:
        fed = {spec.get("stands_for", spec["tensor"]) for spec in io_spec["inputs"].values()}
        assert fed <= {i if ":" in i else f"{i}:0" for i in entry.inputs}
