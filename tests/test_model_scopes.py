"""ScopeTree: lazy grouping of nodes by name scopes (`/`-separated, or `.`-separated module paths), subgraphs under their node."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from engine_core.errors import TrtdbgError
from engine_core.model.index import ModelIndex
from engine_core.model.scopes import ScopeTree
from tests.graphs import branch, if_model

F = TensorProto.FLOAT
NAMES = [
    "/model.30/heads.2/conv/Conv",
    "/model.30/heads.2/conv/Relu",
    "/model.30/heads.2/act",
    "/model.31/Add",
    "plain",
    "model/dense/MatMul",  # TensorFlow style: no leading slash
    "conv2d_12.tmp_0",  # Paddle style: no scopes
    "a//b/",  # empty parts are dropped
    "/model.30/tail",  # back in an already seen scope
]


def _chain(names: list[str]) -> onnx.ModelProto:
    nodes, prev = [], "x"
    for i, name in enumerate(names):
        out = f"t{i}" if i < len(names) - 1 else "y"
        nodes.append(helper.make_node("Relu", [prev], [out], name=name))
        prev = out
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", F, [2])], [helper.make_tensor_value_info("y", F, [2])]
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _summary(entries) -> list[tuple[str, str, int]]:
    return [(e.kind, e.label, e.node_count) for e in entries]


def test_root_and_nested_levels() -> None:
    tree = ScopeTree(ModelIndex(_chain(NAMES)))
    root = tree.children()
    assert _summary(root) == [
        ("scope", "model.30", 4),
        ("scope", "model.31", 1),
        ("node", "plain", 1),
        ("scope", "model", 1),
        ("node", "conv2d_12.tmp_0", 1),
        ("scope", "a", 1),
    ]
    assert root[2].node_index == 4 and root[2].path == (4,) and not root[2].has_children
    m30 = tree.children(root[0].path)
    assert _summary(m30) == [("scope", "heads.2", 3), ("node", "tail", 1)]
    heads = tree.children(m30[0].path)
    assert _summary(heads) == [("scope", "conv", 2), ("node", "act", 1)]
    conv = tree.children(("model.30", "heads.2", "conv"))
    assert [(e.label, e.node_index) for e in conv] == [("Conv", 0), ("Relu", 1)]
    assert _summary(tree.children(("model", "dense"))) == [("node", "MatMul", 1)]
    assert _summary(tree.children(("a",))) == [("node", "b", 1)]
    assert tree.children(("no", "such")) == []


def test_locate_returns_the_listing_scope() -> None:
    tree = ScopeTree(ModelIndex(_chain(NAMES)))
    assert tree.locate(1) == ("model.30", "heads.2", "conv")
    assert tree.locate(4) == ()
    assert 1 in [e.node_index for e in tree.children(tree.locate(1))]
    with pytest.raises(TrtdbgError):
        tree.locate(99)


def _if_model() -> onnx.ModelProto:
    then_nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="/then/inner/Relu"),
        helper.make_node("Neg", ["a"], ["t_out"], name="neg"),
    ]
    then_g = branch("then", then_nodes, "t_out")
    else_g = branch("else", [helper.make_node("Identity", ["x"], ["e_out"], name="id")], "e_out")
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="/pre/Relu")]
    return if_model(nodes, "/blk/cond_if", then_g, else_g, "r")


def test_subgraph_nodes_sit_under_their_parent_node() -> None:
    index = ModelIndex(_if_model())
    tree = ScopeTree(index)
    assert _summary(tree.children()) == [("scope", "pre", 1), ("scope", "blk", 1)]
    (if_entry,) = tree.children(("blk",))
    assert (if_entry.kind, if_entry.label, if_entry.has_children) == ("node", "cond_if", True)
    subs = tree.children(if_entry.path)
    assert [(e.kind, e.label, e.node_count) for e in subs] == [
        ("subgraph", "else_branch", 1),
        ("subgraph", "then_branch", 2),
    ]
    then_level = tree.children(subs[1].path)
    assert _summary(then_level) == [("scope", "then", 1), ("node", "neg", 1)]
    inner = tree.children(then_level[0].path + ("inner",))
    assert [(e.label, index.name(e.node_index)) for e in inner] == [("Relu", "/then/inner/Relu")]
    relu = index.find("/then/inner/Relu")
    assert tree.locate(relu) == ("blk", 1, "then_branch", "then", "inner")
    with pytest.raises(TrtdbgError, match="followed by a graph attribute"):
        tree.children((1, 2))
    with pytest.raises(TrtdbgError, match="no subgraph attribute"):
        tree.children((1, "body"))


def test_100k_root_level_groups_blocks() -> None:
    graph = onnx.GraphProto(name="chain")
    prev = "x"
    for i in range(100_000):
        node = graph.node.add()
        node.op_type, node.name = "Relu", f"/blk.{i // 30}/layer.{(i // 3) % 10}/Relu_{i % 3}"
        node.input.append(prev)
        prev = f"t{i}"
        node.output.append(prev)
    tree = ScopeTree(ModelIndex(helper.make_model(graph)))
    root = tree.children()
    assert len(root) == 3334 and root[0].label == "blk.0" and root[-1].node_count == 10
    assert sum(e.node_count for e in root) == 100_000
    layer = tree.children(("blk.7", "layer.3"))
    assert [e.node_index for e in layer] == [7 * 30 + 9, 7 * 30 + 10, 7 * 30 + 11]


# ---------------------------------------------------------------------- scopes from '.' names
@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("bert.encoder.layer.0.attention.self.query", ("bert", "encoder", "layer.0", "attention", "self", "query")),
        ("encoder.dense.weight", ("encoder", "dense", "weight")),
        ("inner.embeddings.word_embeddings.weight_cast", ("inner", "embeddings", "word_embeddings", "weight_cast")),
        ("model.0.conv.weight", ("model.0", "conv", "weight")),
        ("/encoder/layer.0/attention/MatMul", ("encoder", "layer.0", "attention", "MatMul")),  # '/' wins
        ("p2o.Conv.0", ("p2o.Conv.0",)),  # Paddle: exporter, op, counter — one leaf
        ("conv2d_12.tmp_0", ("conv2d_12.tmp_0",)),
        ("model.0", ("model.0",)),
        ("1.5", ("1.5",)),
        ("a..b.c", ("a", "b", "c")),
        ("0.weight", ("0.weight",)),
    ],
)
def test_scope_parts_rule(name: str, parts: tuple[str, ...]) -> None:
    from engine_core.model.scopes import scope_parts

    assert scope_parts(name) == parts


def test_dotted_pytorch_names_give_scopes() -> None:
    names = [
        "bert.embeddings.LayerNorm",
        "bert.encoder.layer.0.attention.self.query",
        "bert.encoder.layer.0.attention.self.key",
        "bert.encoder.layer.0.output.dense",
        "bert.encoder.layer.1.attention.self.query",
        "p2o.Add.3",
        "Add_7",
    ]
    tree = ScopeTree(ModelIndex(_chain(names)))
    assert _summary(tree.children()) == [("scope", "bert", 5), ("node", "p2o.Add.3", 1), ("node", "Add_7", 1)]
    assert _summary(tree.children(("bert", "encoder"))) == [("scope", "layer.0", 3), ("scope", "layer.1", 1)]
    assert _summary(tree.children(("bert", "encoder", "layer.0", "attention", "self"))) == [
        ("node", "query", 1),
        ("node", "key", 1),
    ]
    assert tree.locate(3) == ("bert", "encoder", "layer.0", "output")


def test_real_models_dotted_names() -> None:
    """minilm (PyTorch dynamo export): only its weight-cast nodes carry a module path; Paddle's p2o names stay leaves."""
    from engine_core.model.scopes import scope_parts
    from tests.conftest import shared_model

    mini = ModelIndex.load(shared_model("minilm_l6_int8w.onnx"), load_external_data=False)
    dotted = [i for i, n in enumerate(mini.names()) if len(scope_parts(n)) > 1]
    assert len(dotted) == 4 and all(mini.names()[i].startswith("inner.embeddings.") for i in dotted)
    tree = ScopeTree(mini)
    root = tree.children()
    inner = [e for e in root if e.kind == "scope"]
    assert [(e.label, e.node_count) for e in inner] == [("inner", 4)]
    assert len(root) == len(mini) - 4 + 1
    assert [e.label for e in tree.children(("inner", "embeddings"))] == ["word_embeddings", "position_embeddings"]
    det = ModelIndex.load(shared_model("ppocrv4_det.onnx"), load_external_data=False)
    assert all(len(scope_parts(n)) == 1 for n in det.names())
