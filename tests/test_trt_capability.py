"""``trtdbg inspect capability``: the TensorRT ONNX parser's verdict per node, run for real with the TensorRT module
that imports here (TensorRT-RTX in CI, no GPU needed)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from engine_core.model.synthetic import small_cnn_model
from tui.cli.main import main


def _custom_model(c_known: bool) -> onnx.ModelProto:
    """r0, s0, custom0 (a custom-domain op: no importer), r1, tr (Transpose with a bad perm), r2."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="r0"),
        helper.make_node("Sigmoid", ["a"], ["b"], name="s0"),
        helper.make_node("MyCustomOp", ["b"], ["c"], name="custom0", domain="my.dom"),
        helper.make_node("Relu", ["c"], ["d"], name="r1"),
        helper.make_node("Transpose", ["d"], ["e"], name="tr", perm=[0, 5]),
        helper.make_node("Relu", ["e"], ["y"], name="r2"),
    ]
    vi = [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 4])] if c_known else []
    g = helper.make_graph(nodes, "g", [x], [y], value_info=vi)
    return helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.dom", 1)], ir_version=8
    )


def test_custom_op_needs_plugin_and_ranges(trt_flavour, save_model, capsys) -> None:
    path = save_model(_custom_model(c_known=True), "custom.onnx")
    assert main(["inspect", "capability", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] in ("supports_model_v2", "supports_model", "parse")
    assert not doc["fully_supported"] and doc["node_count"] == 6
    bad = {u["name"]: u for u in doc["unsupported_nodes"]}
    assert bad["custom0"]["needs_plugin"] and doc["needs_plugins"] == ["my.dom:MyCustomOp"]
    if doc["method"] != "parse":
        # tr passed in the whole model (its input came from the failed node); parsed alone it is rejected
        assert not bad["tr"]["needs_plugin"] and "Axis" in bad["tr"]["reason"]
        assert [(s["start"], s["end"]) for s in doc["supported_subgraphs"]] == [(0, 1), (3, 3), (5, 5)]
        assert [s["nodes"] for s in doc["unsupported_subgraphs"]] == [["custom0"], ["tr"]]
    assert doc["plugins_possible"] == (not trt_flavour.is_rtx)
    assert main(["inspect", "capability", str(path)]) == 0
    text = capsys.readouterr().out
    assert (
        "#2 'custom0' (my.dom:MyCustomOp): needs a plugin" in text and "Plugins needed for: my.dom:MyCustomOp" in text
    )


def test_unknown_boundary_is_said(trt_flavour, save_model, capsys) -> None:
    path = save_model(_custom_model(c_known=False), "custom.onnx")
    assert main(["inspect", "capability", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    if doc["method"] == "parse":
        pytest.skip("this TensorRT has no supports_model")
    after = [s for s in doc["supported_subgraphs"] if s["start"] == 3]
    assert after and "input 'c' has no known type and rank" in after[0]["note"]


def test_supported_model(trt_flavour, save_model, capsys) -> None:
    path = save_model(small_cnn_model(), "cnn.onnx")
    assert main(["inspect", "capability", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fully_supported"] and doc["supported_nodes"] == 12 and not doc["unsupported_nodes"]
    assert len(doc["supported_subgraphs"]) == 1
    # parser support is not a build: TensorRT-RTX parses all of minilm_l6_int8w but its builder refuses the INT8
    # weights that reach Cast without DequantizeLinear; the text must not read as "it will build"
    assert main(["inspect", "capability", str(path)]) == 0
    out = capsys.readouterr().out
    assert "The whole model is supported" in out and "(by the parser: the builder can still refuse a layer" in out


def test_bad_input(trt_flavour, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08garbage" * 10)
    for args in (
        ["inspect", "capability", str(bad)],
        ["inspect", "capability", str(tmp_path / "no.onnx")],
        ["inspect", "capability", str(bad), str(bad)],
    ):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("trtdbg: error: ") and err.count("\n") == 1
