"""surgeon sanitize: folding (also shape sub-graphs) keeps outputs equal; cleanup, toposort, shape overrides."""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine_core.errors import TrtdbgError
from engine_core.model.demo import build_demo_model, demo_inputs
from engine_core.surgeon.graph import cleanup, toposort
from engine_core.surgeon.sanitize import SanitizeOptions, fold_constants, override_input_shapes, sanitize
from engine_core.surgeon.verify import compare_models
from tests.conftest import SHARED_MODELS, run_cli, shared_model, surgeon_ok


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _model(nodes, inputs, outputs, inits=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_demo_folds_constants_and_shape_subgraphs_and_stays_equal() -> None:
    model = build_demo_model()
    result = sanitize(model, SanitizeOptions(fold_constants=True))
    ops = _ops(result.model)
    assert "Constant" not in ops and "Shape" not in ops and "Concat" not in ops  # image is static: shapes fold
    assert result.changes.nodes_before == 251 and result.changes.nodes_after < 150
    assert any(n.startswith("fold pass 1:") for n in result.changes.notes)
    feeds = [demo_inputs(0), demo_inputs(1)]
    diffs = compare_models(model, None, result.model, feeds)
    assert [d.name for d in diffs] == ["logits", "probs"] and all(d.equal for d in diffs), diffs
    onnx.checker.check_model(result.model)


def test_shape_subgraph_folds_only_after_input_shape_override() -> None:
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], "shape"),
        helper.make_node("Gather", ["s", "one"], ["d"], "gather", axis=0),
        helper.make_node("Concat", ["minus1", "d"], ["target"], "concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["r"], "reshape"),
        helper.make_node("Relu", ["r"], ["y"], "relu"),
    ]
    inits = [
        numpy_helper.from_array(np.array([1], np.int64), "one"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "c"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    dynamic = sanitize(model, SanitizeOptions(fold_constants=True))
    assert _ops(dynamic.model) == _ops(model)  # nothing is constant while x is dynamic
    fixed = sanitize(model, SanitizeOptions(fold_constants=True, override_input_shapes={"x": (2, 6)}))
    assert _ops(fixed.model) == ["Reshape", "Relu"]
    target = next(t for t in fixed.model.graph.initializer if t.name == "target")
    assert numpy_helper.to_array(target).tolist() == [-1, 6]
    feed = {"x": np.arange(-6, 6, dtype=np.float32).reshape(2, 6)}
    assert all(d.equal for d in compare_models(model, None, fixed.model, [feed]))


def test_size_threshold_keeps_big_constants_unfolded() -> None:
    nodes = [
        helper.make_node(
            "ConstantOfShape", ["shape"], ["big"], "fill", value=numpy_helper.from_array(np.array([0.5], np.float32))
        ),
        helper.make_node("Add", ["x", "big"], ["y"], "add"),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [256, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [256, 256])],
        [numpy_helper.from_array(np.array([256, 256], np.int64), "shape")],
    )
    assert _ops(fold_constants(model)[0]) == ["Add"]
    assert _ops(fold_constants(model, size_threshold=1024)[0]) == ["ConstantOfShape", "Add"]


def test_node_onnx_runtime_cannot_fold_is_kept_with_a_note() -> None:
    nodes = [
        helper.make_node("Add", ["a", "a"], ["a2"], "good"),
        helper.make_node("Reshape", ["a", "bad_shape"], ["r"], "bad"),
        helper.make_node("Add", ["x", "a2"], ["y1"], "use_good"),
        helper.make_node("Add", ["x", "r"], ["y2"], "use_bad"),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])],
        [
            helper.make_tensor_value_info("y1", TensorProto.FLOAT, [6]),
            helper.make_tensor_value_info("y2", TensorProto.FLOAT, [6]),
        ],
        [
            numpy_helper.from_array(np.ones(6, np.float32), "a"),
            numpy_helper.from_array(np.array([4], np.int64), "bad_shape"),
        ],
    )
    folded, notes = fold_constants(model)
    assert [n.name for n in folded.graph.node] == ["bad", "use_good", "use_bad"]
    assert any("not folded: node 'bad' (Reshape)" in n for n in notes)


def test_cleanup_and_toposort() -> None:
    nodes = [
        helper.make_node("Relu", ["h"], ["y"], "second"),
        helper.make_node("Neg", ["x"], ["h"], "first"),
        helper.make_node("Sigmoid", ["x"], ["dead"], "dead"),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        [numpy_helper.from_array(np.ones(3, np.float32), "unused")],
    )
    assert [n.name for n in toposort(model).graph.node] == ["first", "second", "dead"]
    cleaned = cleanup(model)
    assert [n.name for n in cleaned.graph.node] == ["first", "second"]  # kept nodes come out in index order
    assert not cleaned.graph.initializer
    result = sanitize(model, SanitizeOptions(cleanup=True, toposort=True))
    assert [n.name for n in result.model.graph.node] == ["first", "second"]
    assert result.changes.removed == ("dead",)


def test_override_errors_are_one_line() -> None:
    model = build_demo_model()
    for shapes, pattern in (
        ({"nope": (1,)}, "'nope' is not an input"),
        ({"image": (1, 3, 64)}, "contradicts the model shape"),
        ({"image": (1, 3, 32, 32)}, "contradicts the model shape"),
    ):
        with pytest.raises(TrtdbgError, match=pattern) as info:
            override_input_shapes(model, shapes)
        assert "\n" not in str(info.value)


def test_override_contradicting_the_graph_is_an_error() -> None:
    path = shared_model("ppocrv4_det.onnx")
    with pytest.raises(TrtdbgError, match="contradict the graph.*Incompatible dimensions"):
        override_input_shapes(onnx.load(path), {"x": (1, 3, 47, 33)}, str(path))


def _real_feeds(stem: str, n: int) -> list[dict[str, np.ndarray]]:
    sys.path.insert(0, str(SHARED_MODELS))
    try:
        from inputs import make_inputs  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(SHARED_MODELS))
    return [make_inputs(stem, seed) for seed in range(n)]


def test_real_rec_model_folds_shape_subgraphs_and_stays_equal() -> None:
    path = shared_model("ppocrv4_rec.onnx")
    model = onnx.load(path)
    plain = sanitize(model, SanitizeOptions(fold_constants=True))
    fixed = sanitize(model, SanitizeOptions(fold_constants=True, override_input_shapes={"x": (1, 3, 48, 320)}))
    assert plain.changes.nodes_after < 450 and fixed.changes.nodes_after < plain.changes.nodes_after
    assert _ops(plain.model).count("Shape") > _ops(fixed.model).count("Shape")
    passes = [n for n in fixed.changes.notes if n.startswith("fold pass")]
    assert len(passes) >= 2  # folding repeats until nothing changes
    feeds = _real_feeds("ppocrv4_rec", 2)
    for result in (plain, fixed):
        diffs = compare_models(model, str(path), result.model, feeds)
        assert all(d.equal for d in diffs), diffs


def test_cli_sanitize_real_model_verifies_and_refuses_to_overwrite(tmp_path) -> None:
    path = shared_model("ppocrv4_det.onnx")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    out = tmp_path / "det.onnx"
    proc = surgeon_ok(
        "sanitize",
        path,
        out,
        "--fold-constants",
        "--override-input-shapes",
        "x:1x3x64x64",
        "--iterations",
        "2",
        "--json",
    )
    doc = json.loads(proc.stdout)
    assert doc["changes"]["nodes_before"] == 672 and doc["changes"]["nodes_after"] < 340
    assert doc["verify"]["samples"] == 2 and all(o["max_abs"] == 0.0 for o in doc["verify"]["outputs"])
    assert "Constant" not in _ops(onnx.load(out))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    clash = run_cli("surgeon", "sanitize", str(path), "--fold-constants", "-o", str(path))
    assert clash.returncode == 2 and "refusing to overwrite input file" in clash.stderr
    bad = run_cli(
        "surgeon", "sanitize", str(path), "--override-input-shapes", "x:1x3x47x33", "-o", str(tmp_path / "b.onnx")
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "contradict the graph" in bad.stderr


def test_cli_sanitize_verifies_on_default_shapes_that_run(tmp_path) -> None:
    """ppocrv4_rec (anonymous height) without --override-input-shapes: the equal-outputs check runs on the default
    shapes compare chooses (checked by running the model), not on a first guess that fails in a Reshape."""
    path = shared_model("ppocrv4_rec.onnx")
    proc = surgeon_ok("sanitize", path, tmp_path / "rec.onnx", "--fold-constants", "--json")
    doc = json.loads(proc.stdout)
    assert doc["verify"]["samples"] == 1 and all(o["max_abs"] == 0.0 for o in doc["verify"]["outputs"])
    assert "x:1x3x224x224" not in doc["verify"]["data"]
