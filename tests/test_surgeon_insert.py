"""surgeon insert: valid models, sub-graph replacement, in-place wrapping, schema checks, cycles."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from engine_core.errors import TrtdbgError
from engine_core.model.synthetic import small_cnn_model
from engine_core.surgeon.insert import insert_node, parse_attrs
from engine_core.surgeon.verify import compare_models
from tests.conftest import run_cli, shared_model, surgeon_ok


def _outputs(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feed)


FEED = {"input": np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)}


def test_identity_wraps_a_tensor_in_place_and_changes_nothing() -> None:
    model = small_cnn_model()
    result = insert_node(model, "Identity", ["/relu1/Relu_output_0"], ["/relu1/Relu_output_0"])
    new = result.model
    assert result.changes.added == ("trtdbg_insert_Identity",) and not result.changes.removed
    node = next(n for n in new.graph.node if n.op_type == "Identity")
    assert list(node.input) == ["/relu1/Relu_output_0__before_insert"] and list(node.output) == ["/relu1/Relu_output_0"]
    assert all(d.equal for d in compare_models(model, None, new, [FEED]))
    on_input = insert_node(model, "Identity", ["input"], ["input"]).model
    assert [vi.name for vi in on_input.graph.input] == ["input"]
    assert all(d.equal for d in compare_models(model, None, on_input, [FEED]))


def test_insert_replaces_the_subgraph_between_tensors() -> None:
    model = small_cnn_model()
    result = insert_node(model, "Clip", ["/relu1/Relu_output_0"], ["/Add_output_0"], name="/clip")
    assert set(result.changes.removed) == {"/conv2/Conv", "/relu2/Relu", "/skip/Conv", "/Add"}
    assert result.changes.added == ("/clip",)
    names = [n.name for n in result.model.graph.node]
    assert names.index("/relu1/Relu") < names.index("/clip") < names.index("/pool/GlobalAveragePool")
    assert {t.name for t in result.model.graph.initializer}.isdisjoint({"conv2.weight", "skip.weight"})
    _outputs(result.model, FEED)  # runs


def test_attributes_are_checked_and_converted() -> None:
    model = small_cnn_model()
    leaky = insert_node(model, "LeakyRelu", ["/Add_output_0"], ["/leaky"], attrs=parse_attrs(["alpha=1"]))
    attr = next(n for n in leaky.model.graph.node if n.op_type == "LeakyRelu").attribute[0]
    assert attr.type == onnx.AttributeProto.FLOAT and attr.f == 1.0
    assert leaky.changes.outputs[-1] == "/leaky [float32, (1, 8, 32, 32)]"  # a new name becomes a typed graph output
    assert parse_attrs(["perm=[0,2,1],mode='nearest'", "axis=-1"]) == {"perm": [0, 2, 1], "mode": "nearest", "axis": -1}
    cases = [
        (dict(op="LeakyRelu", inputs=["/Add_output_0"], outputs=["o"], attrs={"beta": 1}), "has no attribute 'beta'"),
        (dict(op="Transpose", inputs=["features"], outputs=["o"], attrs={"perm": [1.5, 0]}), "needs ints"),
        (dict(op="Transpose", inputs=["features"], outputs=["o"], attrs={"perm": [1, 0, 2]}), "Invalid attribute perm"),
        (dict(op="Relux", inputs=["features"], outputs=["o"]), "no op 'Relux'"),
        (dict(op="Add", inputs=["features"], outputs=["o"]), "takes 2..2 inputs"),
        (dict(op="Relu", inputs=["nope"], outputs=["o"]), "tensor 'nope' does not exist"),
        (dict(op="Relu", inputs=["features"], outputs=["input"]), "is a graph input or initializer"),
        (dict(op="Relu", inputs=["/Add_output_0"], outputs=["/relu1/Relu_output_0"]), "would create a cycle"),
        (dict(op="Relu", inputs=["features"], outputs=["o"], name="/Add"), "already exists"),
    ]
    for kwargs, pattern in cases:
        with pytest.raises(TrtdbgError, match=pattern) as info:
            insert_node(model, **kwargs)
        assert "\n" not in str(info.value)


def test_cli_insert_cycle_exits_2_and_real_model_insert_is_valid(tmp_path, save_model) -> None:
    path = save_model(small_cnn_model())
    cyc = run_cli(
        "surgeon",
        "insert",
        str(path),
        "--op",
        "Relu",
        "--inputs",
        "/Add_output_0",
        "--outputs",
        "/relu1/Relu_output_0",
        "-o",
        str(tmp_path / "c.onnx"),
    )
    assert cyc.returncode == 2 and cyc.stderr.count("\n") == 1 and "cycle" in cyc.stderr
    real = shared_model("ppocrv4_rec.onnx")
    model = onnx.load(real)
    tensor = next(n for n in model.graph.node if n.op_type == "Softmax").output[0]
    out = tmp_path / "rec_clip.onnx"
    proc = surgeon_ok(
        "insert", real, out, "--op", "Clip", "--inputs", tensor, "--outputs", tensor, "--name", "/debug/clip"
    )
    assert "added: /debug/clip" in proc.stdout
    new = onnx.load(out)
    onnx.checker.check_model(new)
    feed = {"x": np.random.default_rng(0).uniform(-1, 1, (1, 3, 48, 320)).astype(np.float32)}
    np.testing.assert_array_equal(_outputs(new, feed)[0], _outputs(model, feed)[0])  # Clip without bounds = identity
