"""`trtdbg inspect MODEL --display-as trt [--engine-layers]` and `trtdbg inspect engine FILE` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from onnx import TensorProto, helper

from engine_core.errors import TrtdbgError
from engine_core.model.synthetic import small_cnn_model


@pytest.fixture(autouse=True)
def _trt(trt_flavour):
    """Every test here needs TensorRT."""


def test_display_as_trt_text_and_json(save_model, cli) -> None:
    path = save_model(small_cnn_model(), "cnn.onnx")
    rc, out, _ = cli("inspect", str(path), "--display-as", "trt")
    assert rc == 0 and "==== TensorRT Network (" in out and "strongly typed" in out
    assert "Layer 0    | /conv1/Conv [Op: CONVOLUTION]" in out and "ONNX: /conv1/Conv" in out
    assert "(added by the parser)" in out  # ONNXTRT_* shuffles and initializer constants
    rc, out, _ = cli("inspect", str(path), "--display-as", "trt", "--json")
    doc = json.loads(out)
    layer = next(x for x in doc["network"]["layers"] if x["name"] == "/relu1/Relu")
    assert layer["onnx_nodes"] == ["/relu1/Relu"] and layer["outputs"][0]["dtype"] == "FLOAT"


def test_engine_layers_and_engine_file(save_model, cli, tmp_path: Path) -> None:
    path = save_model(small_cnn_model(), "cnn.onnx")
    rc, out, _ = cli("inspect", str(path), "--display-as", "trt", "--engine-layers", "--json")
    assert rc == 0
    doc = json.loads(out)
    plan = Path(doc["engine"]["path"])
    assert plan.is_file() and plan.parent == tmp_path / ".trtdbg" / "engines" and not doc["engine"]["cached"]
    if "fusion" not in doc:
        pytest.skip("this TensorRT logs no layer listing at build time")
    assert doc["fusion"]["tensors"]["probs"] == "materialized"
    rc, out, _ = cli("inspect", str(path), "--display-as", "trt", "--engine-layers")
    assert rc == 0 and "(cached engine)" in out and "---- Fusion:" in out and "/Flatten" in out
    # The engine file: loaded on a GPU, else trtdbg's own build listing with a note saying why.
    rc, out, err = cli("inspect", "engine", str(plan))
    assert rc == 0, err
    assert "==== TensorRT Engine" in out and "ONNX: /conv1/Conv" in out
    copy = tmp_path / "copy.plan"
    copy.write_bytes(plan.read_bytes())
    rc, out, err = cli("inspect", str(copy))
    assert (rc == 0 and "==== TensorRT Engine" in out) or (
        rc == 2 and err.count("\n") == 1 and "cannot load engine" in err
    )


def test_inspector_json_file(tmp_path: Path, cli) -> None:
    from tests.test_trt_mapping import V10

    f = tmp_path / "layers.json"
    f.write_text(json.dumps(V10))
    rc, out, _ = cli("inspect", "engine", str(f))
    assert rc == 0 and "(10.x schema" in out and "ONNX: conv1, relu1" in out
    rc, out, _ = cli("inspect", "engine", str(f), "--json")
    assert json.loads(out)["layers"][1]["onnx_nodes"] == ["conv1", "relu1"]


@pytest.mark.parametrize("case", ["missing", "bad_json", "custom_op", "weak"])
def test_bad_inputs_exit_2(save_model, tmp_path: Path, cli, case: str) -> None:
    if case == "missing":
        args = ["inspect", "engine", str(tmp_path / "nope.plan")]
        expect = "does not exist"
    elif case == "bad_json":
        (tmp_path / "x.json").write_text("[1, 2]")
        args = ["inspect", "engine", str(tmp_path / "x.json")]
        expect = "engine-inspector JSON"
    elif case == "custom_op":
        g = helper.make_graph(
            [
                helper.make_node("Relu", ["x"], ["a"], name="r0"),
                helper.make_node("Frobnicate", ["a"], ["y"], name="frob1", domain="acme"),
            ],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("acme", 1)])
        args = ["inspect", str(save_model(m, "c.onnx")), "--display-as", "trt", "--allow-unsupported"]
        expect = "node 'frob1' (Frobnicate, #1)"
    else:
        args = ["inspect", str(save_model(small_cnn_model())), "--display-as", "trt", "--weak-typing"]
        expect = "weak typing"
    rc, out, err = cli(*args)
    if case == "weak" and rc == 0:
        pytest.skip("this TensorRT has weak typing")
    assert rc == 2 and out == "" and err.count("\n") == 1 and expect in err, err


def test_compare_accepts_trt_specs_and_options(save_model, cli) -> None:
    from engine_core.backend.trt.devmem import open_device_memory

    path = str(save_model(small_cnn_model()))
    rc, out, err = cli("compare", path, "--subject", "trt-rtx", "--weak-typing")
    assert rc == 2 and "has no weak typing" in err and err.count("\n") == 1
    rc, out, err = cli("compare", path, "--subject", "trt:int8", "--trt-opt-level", "1")
    assert rc == 2 and "Q/DQ" in err
    try:
        open_device_memory().close()
    except TrtdbgError:
        rc, out, err = cli("compare", path, "--subject", "trt", "--trt-opt-shapes", "input:1x3x32x32")
        assert rc == 2 and out == "" and err.count("\n") == 1 and "GPU" in err
    else:
        pytest.skip("a GPU is present; TensorRT runs are checked on GPU machines")
