"""engine_core.comparator.marks: mark node outputs / scopes / all / clear; persistence in the workspace."""

from __future__ import annotations

import fnmatch
import json

import onnx
import pytest
from onnx import TensorProto, helper

from engine_core.comparator.marks import MarkSet, nodes_under
from engine_core.comparator.request import resolve_marks
from engine_core.errors import TrtdbgError
from engine_core.model.index import ModelIndex
from engine_core.model.scopes import ScopeTree
from engine_core.model.synthetic import chain_model
from engine_core.workspace import Workspace
from tests.graphs import branch, if_model

F = TensorProto.FLOAT


def _model() -> onnx.ModelProto:
    """Scoped chain with a Constant, a bracketed name, and an If whose branches are unobservable."""
    then_g = branch("then", [helper.make_node("Relu", ["a"], ["t_out"], name="/then/Relu")], "t_out")
    else_g = branch("else", [helper.make_node("Neg", ["a"], ["e_out"], name="/else/Neg")], "e_out")
    nodes = [
        helper.make_node(
            "Constant", [], ["k"], name="/blk/Constant", value=helper.make_tensor("kv", F, [2], [1.0, 2.0])
        ),
        helper.make_node("Add", ["x", "k"], ["a"], name="/blk/Add"),
        helper.make_node("Mul", ["a", "k"], ["/attn[scale]/Mul_output_0"], name="/attn[scale]/Mul"),
    ]
    return if_model(nodes, "/head/If", then_g, else_g, "/attn[scale]/Mul_output_0")


@pytest.fixture
def setup(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_model(), path)
    index = ModelIndex.load(path)
    ws = Workspace.for_model(path, str(tmp_path / "ws"))
    return index, ws, path


def test_toggle_node_and_states(setup) -> None:
    index, ws, path = setup
    marks = MarkSet(index, ws)
    add = index.find("/blk/Add")
    assert marks.node_state(add) == "unmarked"
    change = marks.toggle_node(add)
    assert change.added == 1 and "a" in marks and marks.node_state(add) == "marked"
    change = marks.toggle_node(add)
    assert change.removed == 1 and len(marks) == 0
    const = index.find("/blk/Constant")
    assert marks.node_state(const) == "not-markable"
    change = marks.toggle_node(const)
    assert not change.changed and "Constant" in change.describe()
    then_relu = index.find("/then/Relu")
    assert marks.node_state(then_relu) == "unobservable"
    assert "inside subgraph" in marks.why_not_markable(then_relu)
    assert marks.unobservable() == {"t_out": marks.unobservable()["t_out"], "e_out": marks.unobservable()["e_out"]}


def test_scope_all_clear_and_persist(setup) -> None:
    index, ws, path = setup
    scopes = ScopeTree(index)
    marks = MarkSet(index, ws)
    assert nodes_under(scopes, ("blk",)) == [index.find("/blk/Constant"), index.find("/blk/Add")]
    change = marks.mark_scope(scopes, ("blk",))
    assert change.added == 1 and marks.ordered() == ["a"]
    assert "Constant" in change.describe()
    # the If node's subtree: the If itself (observable output y) + both branches (unobservable)
    if_node = index.find("/head/If")
    under_if = nodes_under(scopes, ("head", if_node))
    assert sorted(under_if) == sorted([if_node, index.find("/then/Relu"), index.find("/else/Neg")])
    change = marks.mark_scope(scopes, ("head", if_node))
    assert change.added == 1 and "not observable" in change.describe()
    assert marks.mark_scope(scopes, ("blk",)).removed == 1  # toggles off when all marked
    marks.mark_all()
    assert marks.is_all() and marks.request_marks() == ["all"]
    marks.save()
    saved = json.loads((ws.root / "marks" / "m.onnx.json").read_text())
    assert saved["tensors"] == index.markable() and saved["model"] == str(path)
    again = MarkSet.load(index, ws)
    assert again.ordered() == index.markable() and again.dropped == []
    assert again.clear().removed == len(index.markable())
    again.save()
    assert len(MarkSet.load(index, ws)) == 0


def test_load_drops_names_the_model_lost_and_rejects_junk(setup) -> None:
    index, ws, path = setup
    ws.write_json("marks/m.onnx.json", {"version": 1, "tensors": ["a", "gone", "t_out"]})
    marks = MarkSet.load(index, ws)
    assert marks.ordered() == ["a"] and marks.dropped == ["gone", "t_out"]
    ws.write_json("marks/m.onnx.json", [1, 2])
    with pytest.raises(TrtdbgError, match="not a marks file"):
        MarkSet.load(index, ws)
    assert len(MarkSet.load(index, None)) == 0


def test_request_marks_are_literal_for_glob_characters(setup) -> None:
    index, ws, _ = setup
    marks = MarkSet(index, ws)
    marks.toggle_node(index.find("/attn[scale]/Mul"))
    items = marks.request_marks()
    assert items != ["/attn[scale]/Mul_output_0"]  # escaped: the compare request treats [..] as a pattern
    assert fnmatch.fnmatchcase("/attn[scale]/Mul_output_0", items[0])
    chosen, _ = resolve_marks(index, items, [], [])
    assert chosen == ["/attn[scale]/Mul_output_0"]


def test_100k_mark_all_and_scope_are_cheap(tmp_path) -> None:
    index = ModelIndex(chain_model(100_000), tmp_path / "chain.onnx")
    scopes = ScopeTree(index)
    marks = MarkSet(index, Workspace(tmp_path / "ws"))
    assert marks.mark_scope(scopes, ("blk.7",)).added == 100
    assert marks.mark_all().added == 100_000 - 100
    marks.save()
    assert len(MarkSet.load(index, marks.workspace)) == 100_000
