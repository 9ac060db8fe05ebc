"""Synthetic models: validity, sizes, names, ORT CPU execution, and the fp16_copy fixture."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from engine_core.errors import TrtdbgError
from engine_core.model.demo import build_demo_model, demo_inputs
from engine_core.model.synthetic import (
    MAX_TENSOR_BYTES,
    branchy_model,
    chain_model,
    fp16_copy,
    small_cnn_model,
    wide_activation_model,
)


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feed)


def _feed(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        v.name: rng.standard_normal([d.dim_value for d in v.type.tensor_type.shape.dim]).astype(np.float32)
        for v in model.graph.input
    }


def _check(model: onnx.ModelProto) -> None:
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


def test_chain_100k_builds_fast() -> None:
    t0 = time.perf_counter()
    model = chain_model(100_000)
    dt = time.perf_counter() - t0
    print(f"chain_model(100_000): {dt:.3f} s, {model.ByteSize() / 1e6:.1f} MB")
    assert len(model.graph.node) == 100_000
    last = model.graph.node[-1]
    assert last.name == "/blk.999/layer.99/Add" and model.graph.output[0].name == "/blk.999/layer.99/Add_output_0"
    assert model.graph.node[1].input[0] == "/blk.0/layer.0/Add_output_0"
    onnx.checker.check_model(model)


def test_chain_runs_and_matches_numpy() -> None:
    model = chain_model(301)
    _check(model)
    assert Counter(n.op_type for n in model.graph.node) == {"Add": 101, "Mul": 100, "Relu": 100}
    x = _feed(model)["input"]
    (y,) = _run(model, {"input": x})
    ref = x
    for i in range(301):
        ref = [ref + np.float32(0.01), ref * np.float32(0.999), np.maximum(ref, 0)][i % 3]
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


def test_chain_unscoped_and_other_ops() -> None:
    ops = ("Sub", "Tanh", "Div", "Sigmoid", "Max", "Min", "Abs", "Neg", "Identity", "Erf", "Softsign")
    model = chain_model(22, shape=(2, 8), ops=ops, scoped=False)
    _check(model)
    assert [n.name for n in model.graph.node[:2]] == ["Sub_0", "Tanh_1"] and model.graph.output[0].name == "t21"
    (y,) = _run(model, _feed(model))
    assert y.shape == (2, 8) and np.isfinite(y).all()


@pytest.mark.parametrize("kwargs", [dict(n_nodes=0), dict(n_nodes=3, ops=("Conv",)), dict(n_nodes=3, ops=())])
def test_chain_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(TrtdbgError):
        chain_model(**kwargs)


def test_wide_activation_model_small_runs() -> None:
    shape, total = (1, 16, 64, 64), 5 << 20
    model = wide_activation_model(total, shape=shape)
    _check(model)
    outs = {y for n in model.graph.node for y in n.output} - {model.graph.output[0].name}
    tensor_bytes = 4 * int(np.prod(shape))
    assert len(outs) * tensor_bytes >= total > (len(outs) - 1) * tensor_bytes
    (y,) = _run(model, _feed(model))
    assert y.shape == shape and np.isfinite(y).all()


def test_wide_activation_model_3gib_is_cheap_to_build() -> None:
    t0 = time.perf_counter()
    model = wide_activation_model(3 << 30)
    n = len(model.graph.node)
    print(f"wide_activation_model(3 GiB): {n} nodes of 16 MiB, built in {1e3 * (time.perf_counter() - t0):.1f} ms")
    assert (n - 1) * (16 << 20) >= 3 << 30 and model.ByteSize() < 100_000
    with pytest.raises(TrtdbgError):
        wide_activation_model(1 << 30, shape=(1, 64, 512, 513))
    assert 4 * 64 * 512 * 513 > MAX_TENSOR_BYTES


@pytest.mark.parametrize("build", [small_cnn_model, branchy_model])
def test_small_models_are_branchy_and_run(build) -> None:
    model = build()
    _check(model)
    assert len(model.graph.node) < 30
    assert build().SerializeToString() == model.SerializeToString()
    uses = Counter(x for n in model.graph.node for x in n.input)
    assert max(uses[y] for n in model.graph.node for y in n.output) >= 2  # a tensor feeds two branches
    assert {"Add", "Softmax"} <= {n.op_type for n in model.graph.node}
    outs = _run(model, _feed(model))
    assert len(outs) == 2 and all(np.isfinite(o).all() for o in outs)
    assert {"Conv", "MatMul"} & {n.op_type for n in model.graph.node}


@pytest.mark.parametrize("build", [small_cnn_model, branchy_model])
def test_fp16_copy_valid_close_and_partially_renamed(build) -> None:
    model = build()
    half = fp16_copy(model)
    _check(half)
    assert [(v.name, v.type) for v in half.graph.input] == [(v.name, v.type) for v in model.graph.input]
    assert [(v.name, v.type) for v in half.graph.output] == [(v.name, v.type) for v in model.graph.output]
    assert all(t.data_type == TensorProto.FLOAT for t in half.graph.initializer)
    # Every original float node now computes in fp16: its float inputs are fp16.
    inferred = onnx.shape_inference.infer_shapes(half)
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.input)}
    originals = {n.name for n in model.graph.node if n.op_type != "Constant"}
    for n in half.graph.node:
        if n.name in originals:
            assert {types[x] for x in n.input if x in types} <= {TensorProto.FLOAT16, TensorProto.INT64}, n.name
    feed = _feed(model)
    for ref, got in zip(_run(model, feed), _run(half, feed)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref, atol=2e-2, rtol=2e-2)
    names = {y for n in model.graph.node for y in n.output}
    kept = names & {y for n in half.graph.node for y in n.output}
    assert 0 < len(kept) < len(names) // 2  # graph outputs and the Constant keep names, fp16 tensors get "_fp16"
    assert {f"{y}_fp16" for y in names - kept} <= {y for n in half.graph.node for y in n.output}
    plain = fp16_copy(model, rename=False)
    assert names <= {y for n in plain.graph.node for y in n.output}  # onnxconverter-common style: all names kept
    for ref, got in zip(_run(model, feed), _run(plain, feed)):
        np.testing.assert_allclose(got, ref, atol=2e-2, rtol=2e-2)
    assert any(n.name == "graph_input_cast0" for n in half.graph.node)
    assert "graph_output_cast_0" in {y for n in half.graph.node for y in n.output}


def test_fp16_copy_of_demo_shows_the_underflow_nan() -> None:
    model = build_demo_model()
    half = fp16_copy(model)
    _check(half)
    _, probs = _run(half, demo_inputs())
    assert np.isnan(probs).all()  # eps 1e-10 cast to fp16 is 0 -> 0/0 on padding tokens
    cast_eps = next(n for n in half.graph.node if n.input and n.input[0] == "/patch_embed/norm/Constant_1_output_0")
    assert cast_eps.op_type == "Cast"


def test_fp16_copy_keeps_fp32_only_inputs_and_rejects_subgraphs() -> None:
    g = helper.make_graph(
        [
            helper.make_node("Resize", ["x", "", "scales"], ["y"], "/up/Resize", mode="nearest"),
            helper.make_node("Relu", ["y"], ["z"], "/act/Relu"),
        ],
        "resize",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 1, 4, 4])],
        [onnx.numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    half = fp16_copy(model)
    _check(half)
    resize = next(n for n in half.graph.node if n.op_type == "Resize")
    assert resize.input[2] == "scales" and resize.input[0] == "graph_input_cast_0"
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(_run(half, {"x": x})[0], _run(model, {"x": x})[0])

    branch = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["o"])],
        "b",
        [],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)],
    )
    g2 = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], "/if", then_branch=branch, else_branch=branch)],
        "cf",
        [
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    with pytest.raises(TrtdbgError, match="sub-graphs"):
        fp16_copy(helper.make_model(g2, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
