"""`trtdbg check lint`: each check finds what it should on small broken models; real models pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engine_core.model.demo import DEMO_SITES, build_demo_model
from engine_core.model.lint import lint_model
from tests.conftest import run_cli, shared_model


def _model(nodes, inits=(), inputs=("x",), outputs=("y",)) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(i, TensorProto.FLOAT, [2, 2]) for i in inputs],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [2, 2]) for o in outputs],
        list(inits),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_structure_and_fp16_findings() -> None:
    big = numpy_helper.from_array(np.full((2, 2), 1e6, np.float32), "big")
    unused = numpy_helper.from_array(np.zeros(3, np.float32), "unused_w")
    nodes = [
        helper.make_node("Mul", ["x", "big"], ["m"], name="/scale"),
        helper.make_node("Relu", ["m"], ["y"]),  # unnamed
        helper.make_node("Neg", ["x"], ["dead_out"], name="/dead"),
        helper.make_node(
            "Constant", [], ["eps"], name="/eps", value=numpy_helper.from_array(np.array(1e-10, np.float32))
        ),
    ]
    report = lint_model(_model(nodes, [big, unused], inputs=("x", "z")), "m.onnx")
    checks = {(f.check, f.node or f.tensor) for f in report.findings}
    assert ("fp16-overflow", "big") in checks
    assert ("fp16-underflow", "/eps") in checks
    assert ("dead-node", "/dead") in checks
    assert ("unused-input", "z") in checks
    assert ("unused-initializer", "unused_w") in checks
    assert any(f.check == "unnamed-node" for f in report.findings)
    assert report.passed  # warnings only


def test_errors_fail_and_exit_1(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="/a"), helper.make_node("Neg", ["x"], ["y"], name="/b")]
    path = tmp_path / "dup.onnx"
    onnx.save(_model(nodes), path)
    proc = run_cli("check", "lint", str(path), "--json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert not doc["passed"] and doc["summary"]["error"] >= 1
    assert any(f["check"] == "duplicate-tensor" and f["tensor"] == "y" for f in doc["findings"])


def test_demo_epsilon_is_flagged_and_real_model_is_clean() -> None:
    report = lint_model(build_demo_model(), "demo.onnx")
    site = DEMO_SITES["underflow"].keep_fp32[0]
    assert any(f.check == "fp16-underflow" and f.node == site for f in report.findings)
    path = shared_model("magika_v3_3.onnx")
    proc = run_cli("check", "lint", str(path))
    assert proc.returncode == 0 and "PASSED" in proc.stdout, proc.stdout


def test_fp16_underflow_is_what_float16_rounds_to_zero() -> None:
    """Round to nearest even: |x| <= 2^-25 becomes 0, anything above rounds to at least 2^-24 (5.96e-8). Values in
    (2^-25, 6e-8) are not flushed (lint used to say they become 0), in initializers and in Constant nodes."""
    kept = np.array([[3e-8, 4e-8], [5.9e-8, 1.0]], np.float32)
    flushed = np.array([[2.9e-8, 2.0**-25], [1e-9, 1.0]], np.float32)
    assert np.all(kept.astype(np.float16)[kept > 0] != 0) and np.all(flushed.astype(np.float16)[:, 0] == 0)
    nodes = [
        helper.make_node("Add", ["x", "kept"], ["a"], name="/kept"),
        helper.make_node("Add", ["a", "flushed"], ["b"], name="/flushed"),
        helper.make_node("Constant", [], ["c_kept"], name="/c_kept", value=numpy_helper.from_array(np.float32(4e-8))),
        helper.make_node(
            "Constant", [], ["c_zero"], name="/c_zero", value=numpy_helper.from_array(np.float32(2.0**-25))
        ),
        helper.make_node("Add", ["b", "c_kept"], ["d"], name="/use_kept"),
        helper.make_node("Add", ["d", "c_zero"], ["y"], name="/use_zero"),
    ]
    inits = [numpy_helper.from_array(kept, "kept"), numpy_helper.from_array(flushed, "flushed")]
    report = lint_model(_model(nodes, inits), "m.onnx")
    under = {f.node or f.tensor: f.message for f in report.findings if f.check == "fp16-underflow"}
    assert set(under) == {"flushed", "/c_zero"}, under
    assert under["flushed"].startswith("3 nonzero value(s)")
