"""``trtdbg convert``: rewritten FP16/INT8/plan ONNX and engines built for real with the TensorRT that imports here
(TensorRT-RTX in CI, no GPU needed)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine_core.model.synthetic import small_cnn_model


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def cnn(save_model) -> Path:
    return save_model(small_cnn_model(), "cnn.onnx")


def test_onnx_fp16_and_int8(cnn: Path, tmp_path: Path, cli) -> None:
    before = _sha(cnn)
    rc, out, _ = cli("convert", cnn, "-o", tmp_path / "h.onnx", "--precision", "fp16", "--json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["kind"] == "onnx" and doc["precision"]["fp16"] > 0 and doc["precision"]["fp32"] == 0
    m = onnx.load(tmp_path / "h.onnx")
    assert any(t.data_type == TensorProto.FLOAT16 for t in m.graph.initializer)
    assert m.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT  # outputs keep their dtype
    rc, out, _ = cli("convert", cnn, "-o", tmp_path / "q.onnx", "--precision", "int8", "--iterations", "2")
    assert rc == 0 and "int8" in out
    ops = {n.op_type for n in onnx.load(tmp_path / "q.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert _sha(cnn) == before


def test_plan_file(cnn: Path, tmp_path: Path, cli) -> None:
    from engine_core.precision.plan import PrecisionPlan

    node = small_cnn_model().graph.node[0].name
    PrecisionPlan("fp16", nodes={node: "fp32"}).save(tmp_path / "p.json")
    rc, out, _ = cli("convert", cnn, "-o", tmp_path / "p.onnx", "--plan", tmp_path / "p.json", "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["precision"]["fp32"] == 1 and doc["precision"]["fp16"] > 0


def test_engine_fp16_and_int8(trt_flavour, cnn: Path, tmp_path: Path, cli) -> None:
    for prec in ("fp16", "int8"):
        out_path = tmp_path / f"e-{prec}.plan"
        rc, out, _ = cli("convert", cnn, "-o", out_path, "--precision", prec, "--json")
        assert rc == 0
        doc = json.loads(out)
        assert doc["kind"] == "engine" and doc["engine"]["version"] and doc["bytes"] == out_path.stat().st_size > 1000


def test_engine_dynamic_shapes(trt_flavour, tmp_path: Path, cli) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "W")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["m"], name="mm"), helper.make_node("Relu", ["m"], ["y"], name="r")],
        "g",
        [x],
        [y],
        [w],
    )
    path = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    rc, _, err = cli("convert", path, "-o", tmp_path / "d0.plan", "--precision", "fp16")
    assert rc == 0, err  # no --shapes: the shapes compare would use (x:1x4), as in every command
    rc, _, err = cli("convert", path, "-o", tmp_path / "d.plan", "--precision", "fp16", "--shapes", "x:2x4")
    assert rc == 0, err
    rc, _, err = cli(
        "convert", path, "-o", tmp_path / "d2.plan", "--trt-min-shapes", "x:1x4", "--trt-max-shapes", "x:8x4"
    )
    assert rc == 0, err


@pytest.mark.parametrize("case", ["suffix", "same_file", "missing", "both", "fallback", "cache"])
def test_bad_input_exit_2(cnn: Path, tmp_path: Path, cli, case: str) -> None:
    args = {
        "suffix": [cnn, "-o", tmp_path / "x.txt"],
        "same_file": [cnn, "-o", cnn],
        "missing": [tmp_path / "nope.onnx", "-o", tmp_path / "x.onnx"],
        "both": [cnn, "-o", tmp_path / "x.onnx", "--plan", "p.json", "--precision", "fp16"],
        # INT8-only options with another precision were accepted and ignored
        "fallback": [cnn, "-o", tmp_path / "x.onnx", "--precision", "fp16", "--fallback", "fp16"],
        "cache": [cnn, "-o", tmp_path / "x.onnx", "--precision", "bf16", "--calibration-cache", cnn],
    }[case]
    before = _sha(cnn)
    rc, _, err = cli("convert", *args)
    prefix = "trtdbg convert: error: " if case == "both" else "trtdbg: error: "  # both: argparse's exclusive group
    assert rc == 2 and err.startswith(prefix) and err.count("\n") == 1
    assert not (tmp_path / "x.onnx").exists()
    assert _sha(cnn) == before
