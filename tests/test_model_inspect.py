"""inspect_text matches Polygraphy's `inspect model` layout; inspect_json has stable keys."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine_core.errors import TrtdbgError
from engine_core.model.index import ModelIndex
from engine_core.model.inspect import inspect_json, inspect_text, parse_show

F = TensorProto.FLOAT


def _model() -> onnx.ModelProto:
    """Conv -> Relu -> Cast -> If(subgraphs) with a Constant, initializers, a doc string and an extra opset."""
    rng = np.random.default_rng(0)
    then_g = helper.make_graph(
        [helper.make_node("Add", ["h", "k"], ["t_out"], name="then_add")],
        "then_g",
        [],
        [helper.make_tensor_value_info("t_out", F, [1, 4, 3, 3])],
    )
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["h"], ["e_out"], name="else_neg")],
        "else_g",
        [],
        [helper.make_tensor_value_info("e_out", F, [1, 4, 3, 3])],
    )
    nodes = [
        helper.make_node("Constant", [], ["k"], name="const_k", value=numpy_helper.from_array(np.ones(1, np.float32))),
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv0", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("LeakyRelu", ["c"], ["h"], name="act", alpha=0.2),
        helper.make_node("Cast", ["h"], ["h64"], name="cast", to=TensorProto.DOUBLE),
        helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_g, else_branch=else_g),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [
            helper.make_tensor_value_info("x", F, ["n", 2, 3, 3]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("y", F, [1, 4, 3, 3]),
            helper.make_tensor_value_info("h64", TensorProto.DOUBLE, ["n", 4, 3, 3]),
        ],
        [
            numpy_helper.from_array(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), "W"),
            numpy_helper.from_array(np.arange(4, dtype=np.float32), "B"),
        ],
        doc_string="a test graph",
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])


@pytest.mark.parametrize("show", [[], ["layers"], ["layers", "attrs"], ["weights"], ["layers", "attrs", "weights"]])
def test_text_equals_polygraphy(show: list[str]) -> None:
    pytest.importorskip("polygraphy")
    from polygraphy.backend.onnx.util import str_from_onnx

    model = _model()
    ours = inspect_text(ModelIndex(model), show, shape_inference=False)
    theirs = str_from_onnx(
        model, show_layers="layers" in show, show_attrs="attrs" in show, show_weights="weights" in show
    )
    assert ours.startswith("==== ONNX Model ====\n")
    assert ours[len("==== ONNX Model ====\n") :].rstrip("\n") == theirs.rstrip("\n")


def test_text_layout_and_inferred_shapes() -> None:
    text = inspect_text(ModelIndex(_model()), ["layers,attrs"])
    assert "Name: small | ONNX Opset: 17 | Other Opsets: {'ai.onnx.ml': 3}" in text
    assert (
        "---- 2 Graph Input(s) ----\n{x [dtype=float32, shape=('n', 2, 3, 3)],\n cond [dtype=bool, shape=()]}" in text
    )
    assert "---- 2 Initializer(s) ----" in text and "---- 5 Node(s) ----" in text
    assert (
        "Node 1    | conv0 [Op: Conv]\n    {x [dtype=float32, shape=('n', 2, 3, 3)],\n"
        "     Initializer | W [dtype=float32, shape=(4, 2, 3, 3)],\n     Initializer | B [dtype=float32, shape=(4,)]}\n"
        "     -> {c [dtype=float32, shape=('n', 4, 3, 3)]}\n"
    ) in text  # c only known through inference
    assert "    conv0.pads = [1, 1, 1, 1]\n" in text and "    cast.to = float64\n" in text
    assert "    act.alpha = 0.20000000298023224\n" in text
    assert "    const_k.value = Tensor: [dtype=float32, shape=[1]]\n" in text
    assert "branch.else_branch = \n" in text and "---- 1 Subgraph Input(s) ----" not in text
    assert "            Node 0    | then_add [Op: Add]\n" in text  # subgraph nodes, indented 3 levels


def test_unnamed_nodes_and_unknown_rank() -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", F, [1])],
        [helper.make_tensor_value_info("y", F, None)],
    )
    index = ModelIndex(helper.make_model(graph))
    text = inspect_text(index, ["layers"], shape_inference=False)
    assert "Node 0    | Relu_0 [Op: Relu]\n    {x [dtype=float32, shape=(1,)]}\n     -> {y [dtype=float32]}" in text
    assert "---- 1 Graph Output(s) ----\n{y [dtype=float32]}" in text  # Polygraphy prints a wrong shape=()
    assert "-> {y [dtype=float32, shape=(1,)]}" in inspect_text(index, ["layers"])  # inferred


def test_json_keys_layers_attrs_weights() -> None:
    index = ModelIndex(_model())
    plain = inspect_json(index)
    assert list(plain) == [
        "path",
        "name",
        "opset",
        "opsets",
        "inputs",
        "outputs",
        "initializers",
        "nodes",
        "op_histogram",
        "subgraphs",
        "shape_inference_error",
    ]
    assert plain["opset"] == 17 and plain["opsets"] == {"ai.onnx": 17, "ai.onnx.ml": 3}
    assert plain["inputs"][0] == {"name": "x", "dtype": "float32", "shape": ["n", 2, 3, 3]}
    assert plain["outputs"][1] == {"name": "h64", "dtype": "float64", "shape": ["n", 4, 3, 3]}
    assert plain["initializers"] == {"count": 2, "total_bytes": 4 * 18 * 4 + 16}
    assert plain["nodes"] == {"count": 5, "total": 7}
    assert plain["op_histogram"]["Conv"] == 1 and sum(plain["op_histogram"].values()) == 7
    assert plain["subgraphs"] == [
        {"path": "/branch/else_branch", "node": "branch", "attr": "else_branch", "nodes": 1},
        {"path": "/branch/then_branch", "node": "branch", "attr": "then_branch", "nodes": 1},
    ]
    full = inspect_json(index, ["layers", "attrs", "weights"])
    json.dumps(full, allow_nan=False)
    layers = full["nodes"]["layers"]
    assert len(layers) == 7 and layers[1]["name"] == "conv0" and layers[1]["inputs"] == ["x", "W", "B"]
    assert layers[1]["attrs"] == {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    assert layers[3]["attrs"] == {"to": "float64"}
    assert layers[4]["attrs"]["then_branch"] == {"subgraph": "/branch/then_branch", "nodes": 1}
    assert layers[0]["attrs"]["value"] == {"tensor": {"dtype": "float32", "shape": [1]}}
    assert layers[6]["parent"] == "/branch/then_branch" and "parent" not in layers[0]
    assert full["tensors"]["c"] == {"dtype": "float32", "shape": ["n", 4, 3, 3]}
    weights = {w["name"]: w for w in full["initializers"]["items"]}
    assert weights["B"]["stats"]["max"] == 3.0 and weights["B"]["nbytes"] == 16
    assert full["shape_inference_error"] is None
    assert "tensors" not in inspect_json(index, ["attrs"])


def test_plain_attributes_read_one_way_by_inspect_and_the_detail_pane() -> None:
    """int/float/string attributes and their lists come straight from the protobuf (strings decoded, bad bytes
    replaced); other types are left to the caller. inspect's text and JSON and the app's detail pane show them."""
    from engine_core.model.proto import plain_attribute_value
    from tui.widgets.detail import attribute_text

    tensor = numpy_helper.from_array(np.ones(2, np.float32))
    node = helper.make_node(
        "Custom", ["x"], ["y"], "custom", domain="test.attrs", i=-3, f=0.25, s="nearest", ints=[1, 2],
        floats=[0.5, float("inf")], strings=["a", b"\xff"], to=TensorProto.DOUBLE, t=tensor,
    )  # fmt: skip
    node.attribute.append(helper.make_attribute("none", [], attr_type=onnx.AttributeProto.INTS))
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", F, [1])], [helper.make_tensor_value_info("y", F, [1])]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("test.attrs", 1)])
    index = ModelIndex(model)
    values = {a.name: plain_attribute_value(a) for a in index.node_proto(0).attribute}
    want = {"i": -3, "f": 0.25, "s": "nearest", "ints": [1, 2], "floats": [0.5, float("inf")]}
    assert values == {**want, "strings": ["a", "\ufffd"], "to": TensorProto.DOUBLE, "t": None, "none": []}
    for attr in node.attribute:  # what onnx reads, bytes decoded
        if attr.name in want:
            value = helper.get_attribute_value(attr)
            assert (value.decode() if isinstance(value, bytes) else value) == want[attr.name]
    attrs = inspect_json(index, ["layers", "attrs"], shape_inference=False)["nodes"]["layers"][0]["attrs"]
    assert attrs == {
        **want,
        "floats": [0.5, "inf"],
        "strings": ["a", "\ufffd"],
        "to": "float64",
        "t": {"tensor": {"dtype": "float32", "shape": [2]}},
        "none": [],
    }
    text = inspect_text(index, ["layers", "attrs"], shape_inference=False)
    for line in ("i = -3", "f = 0.25", "s = nearest", "ints = [1, 2]", "floats = [0.5, inf]", "to = float64"):
        assert f"    custom.{line}\n" in text
    assert "    custom.strings = ['a', '\ufffd']\n" in text
    shown = {a.name: attribute_text(a) for a in node.attribute}
    assert shown == {
        **{"i": "-3", "f": "0.25", "s": "nearest", "ints": "[1, 2]", "floats": "[0.5, inf]"},
        **{"strings": "['a', '\ufffd']", "to": "11", "t": "tensor float32[2] = [1.0, 1.0]", "none": "[]"},
    }


def test_parse_show() -> None:
    assert parse_show(["layers,attrs", "weights"]) == {"layers", "attrs", "weights"}
    assert parse_show(["LAYERS, "]) == {"layers"}
    with pytest.raises(TrtdbgError, match="unknown --show value 'nodes'"):
        parse_show(["layers,nodes"])
