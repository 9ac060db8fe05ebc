"""TensorRT build side, run for real with whatever TensorRT imports here (TensorRT-RTX in CI, no GPU needed):
flavour detection, parser errors naming the node, strongly typed FP32/FP16/Q-DQ builds, profiles, marking,
engine cache hits and keys."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine_core.backend.trt import build
from engine_core.backend.trt import flavour as flavour_mod
from engine_core.errors import TrtdbgError
from engine_core.model.synthetic import fp16_copy, small_cnn_model


def _model(nodes, inits=(), shape=("N", 4), opsets=None, outputs=("y",)):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    ys = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    graph = helper.make_graph(nodes, "g", [x], ys, list(inits))
    ops = [helper.make_opsetid(d, v) for d, v in (opsets or {"": 17}).items()]
    return helper.make_model(graph, opset_imports=ops)


def _dyn_model():
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "W")
    return _model(
        [
            helper.make_node("MatMul", ["x", "W"], ["m"], name="mm"),
            helper.make_node("Relu", ["m"], ["r"], name="relu1"),
            helper.make_node("Sigmoid", ["r"], ["y"]),
        ],
        [w],
    )


def _qdq_model():
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
        numpy_helper.from_array(np.array(0, np.int8), "xz"),
        numpy_helper.from_array(rng.integers(-100, 100, (8, 4, 3, 3)).astype(np.int8), "wq"),
        numpy_helper.from_array(np.full(8, 0.01, np.float32), "ws"),
        numpy_helper.from_array(np.zeros(8, np.int8), "wz"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q_x"),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq_x"),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dq_w", axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    return helper.make_model(
        helper.make_graph(nodes, "qdq", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)]
    )


def test_flavour_features(trt_flavour) -> None:
    assert trt_flavour.name in ("tensorrt", "tensorrt_rtx") and trt_flavour.version
    feats = trt_flavour.features()
    assert set(feats) >= {"weak_typing", "int8_calibration", "debug_tensors", "timing_cache"}
    if trt_flavour.is_rtx:  # TensorRT-RTX: strongly typed only, no calibrators, timing cache is a no-op
        assert not feats["weak_typing"] and not feats["int8_calibration"] and not feats["timing_cache"]
        assert feats["debug_tensors"] and feats["unfused_debug_tensors"]
    assert trt_flavour.enum("MemoryPoolType", "WORKSPACE") is not None
    with pytest.raises(TrtdbgError, match="has no BuilderFlag.NOT_A_FLAG"):
        trt_flavour.enum("BuilderFlag", "NOT_A_FLAG")
    with pytest.raises(TrtdbgError, match="unknown TensorRT module"):
        flavour_mod.load_flavour("tensorrt9")


def test_missing_module_says_how_to_install(trt_flavour) -> None:
    other = "tensorrt" if trt_flavour.is_rtx else "tensorrt_rtx"
    try:
        flavour_mod.load_flavour(other)
    except TrtdbgError as exc:
        assert f"cannot import {other}" in str(exc) and "pip install trtdbg[trt" in str(exc)
    else:
        pytest.skip(f"{other} is installed too")


@pytest.mark.parametrize("case", ["custom_op", "unknown_op", "bad_attr", "garbage"])
def test_parse_errors_name_the_node(trt_flavour, case: str) -> None:
    if case == "custom_op":
        data = _model(
            [helper.make_node("MyCustomOp", ["x"], ["y"], name="custom0", domain="my.dom")],
            opsets={"": 17, "my.dom": 1},
        )
        expect = ["node 'custom0' (MyCustomOp, #0)", "plugin"]
    elif case == "unknown_op":
        data = _model(
            [helper.make_node("Relu", ["x"], ["a"], name="r0"), helper.make_node("FooBarOp", ["a"], ["y"], name="foo1")]
        )
        expect = ["node 'foo1' (FooBarOp, #1)"]
    elif case == "bad_attr":
        data = _model([helper.make_node("Transpose", ["x"], ["y"], name="tr", perm=[0, 5])])
        expect = ["node 'tr' (Transpose, #0)", "Axis must be in the range"]
    else:
        data = b"\x08garbage" * 10
        expect = ["not a valid ONNX model"]
    with pytest.raises(build.TrtParseError) as info:
        build.parse_onnx(trt_flavour, data, "m.onnx")
    msg = str(info.value)
    assert msg.startswith(f"{trt_flavour.label} cannot parse m.onnx") and "\n" not in msg
    for part in expect:
        assert part in msg
    assert info.value.issues


def test_parse_good_model_keeps_onnx_names(trt_flavour) -> None:
    parsed = build.parse_onnx(trt_flavour, small_cnn_model())
    names = [layer.name for layer in parsed.layers()]
    assert "/conv1/Conv" in names and "/Softmax" in names
    tensors = parsed.tensors()
    assert "/relu1/Relu_output_0" in tensors and "probs" in tensors
    assert "/Constant_output_0" not in tensors  # a Constant node becomes weights (<name>_output)
    assert parsed.strongly_typed


def test_build_cache_hit_and_keys(trt_flavour, tmp_path) -> None:
    model = small_cnn_model()
    cache = build.EngineCache(tmp_path / "engines")
    digest = build.model_digest(model)
    parsed = build.parse_onnx(trt_flavour, model)
    first = build.build_engine(parsed, build.BuildOptions(), digest=digest, cache=cache)
    assert not first.cached and first.path is not None and first.path.is_file() and len(first.plan) > 1000
    assert first.meta["layers_text"] is None or "Layers:" in first.meta["layers_text"]

    class NoBuilder:
        def __getattr__(self, name):
            raise AssertionError("an identical engine must come from the cache")

    parsed2 = build.parse_onnx(trt_flavour, model)
    parsed2.builder = NoBuilder()
    again = build.build_engine(parsed2, build.BuildOptions(), digest=digest, cache=cache)
    assert again.cached and again.plan == first.plan and again.key == first.key
    # Anything that changes the engine changes the key.
    base = build.EngineCache.key(digest, trt_flavour, build.BuildOptions())
    assert build.EngineCache.key(digest, trt_flavour, build.BuildOptions(marks=("/relu1/Relu_output_0",))) != base
    assert build.EngineCache.key(digest, trt_flavour, build.BuildOptions(opt_level=1)) != base
    assert build.EngineCache.key(digest, trt_flavour, build.BuildOptions(tf32=True)) != base
    assert build.EngineCache.key(digest, trt_flavour, build.BuildOptions(timing_cache="t.cache")) == base
    assert build.EngineCache.key(digest, trt_flavour, build.BuildOptions(marks=("b", "a"))) == build.EngineCache.key(
        digest, trt_flavour, build.BuildOptions(marks=("a", "b"))
    )
    other = onnx.ModelProto()
    other.CopyFrom(model)
    other.graph.initializer[0].raw_data = bytes(len(other.graph.initializer[0].raw_data))
    assert build.model_digest(other) != digest
    # A truncated plan is not a hit.
    first.path.write_bytes(first.plan[:100])
    assert cache.load(first.key) is None


def test_cache_prunes_oldest(trt_flavour, tmp_path) -> None:
    cache = build.EngineCache(tmp_path, max_entries=2)
    for i in range(3):
        cache.store(f"k{i}", b"plan%d" % i, {"i": i})
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == ["k1", "k2"]


def test_dynamic_input_needs_profile(trt_flavour) -> None:
    parsed = build.parse_onnx(trt_flavour, _dyn_model())
    assert build.dynamic_inputs(parsed) == {"x": (-1, 4)}
    with pytest.raises(TrtdbgError, match=r"input 'x' of dyn.onnx has a dynamic shape \(-1, 4\).*--shapes x:1x"):
        build.build_engine(parsed, build.BuildOptions(), digest="d", where="dyn.onnx")
    prof = build.BuildOptions.make_profiles([{"x": ((1, 4), (2, 4), (8, 4))}])
    built = build.build_engine(parsed, build.BuildOptions(profiles=prof), digest="d")
    assert built.plan
    if built.meta["layers_text"]:
        from engine_core.backend.trt.inspector import from_layer_text

        x = next(t for t in from_layer_text(built.meta["layers_text"]).io if t.name == "x")
        assert x.profiles[0]["MinShape"] == [1, 4] and x.profiles[0]["MaxShape"] == [8, 4]
    with pytest.raises(TrtdbgError, match="'nope', which is not an input"):
        build.build_engine(
            parsed,
            build.BuildOptions(profiles=build.BuildOptions.make_profiles([{"x": ((1, 4),) * 3, "nope": ((1,),) * 3}])),
            digest="d",
        )


def test_marking_outputs_and_refusals(trt_flavour) -> None:
    from engine_core.backend.trt.inspector import from_layer_text

    parsed = build.parse_onnx(trt_flavour, small_cnn_model())
    opts = build.BuildOptions(marks=("/relu1/Relu_output_0", "/Constant_output_0", "probs"))
    built = build.build_engine(parsed, opts, digest="cnn")
    assert built.meta["refused_marks"] == {
        "/Constant_output_0": "not in the TensorRT network (folded by the ONNX parser)"
    }
    assert parsed.network.num_outputs == 2  # marks are undone after the build
    if built.meta["layers_text"]:
        outs = [t.name for t in from_layer_text(built.meta["layers_text"]).io if t.mode == "Output"]
        assert "/relu1/Relu_output_0" in outs
    if trt_flavour.debug_tensors:
        dbg = build.build_engine(
            parsed, build.BuildOptions(marks=("/relu1/Relu_output_0",), mark_mode="debug"), digest="cnn"
        )
        assert dbg.plan and dbg.key != built.key
    with pytest.raises(TrtdbgError, match="unknown mark mode"):
        build.mark_tensors(parsed, ["probs"], "bogus")


def test_strongly_typed_fp16_and_qdq_build(trt_flavour) -> None:
    from engine_core.backend.trt.inspector import from_layer_text

    half = build.build_engine(
        build.parse_onnx(trt_flavour, fp16_copy(small_cnn_model())), build.BuildOptions(precision="fp16"), digest="fp16"
    )
    qdq = build.build_engine(
        build.parse_onnx(trt_flavour, _qdq_model()), build.BuildOptions(precision="int8"), digest="qdq"
    )
    assert half.plan and qdq.plan
    if half.meta["layers_text"]:
        dtypes = {t.dtype for layer in from_layer_text(half.meta["layers_text"]).layers for t in layer.outputs}
        assert "Half" in dtypes
    if qdq.meta["layers_text"]:
        dtypes = {
            t.dtype
            for layer in from_layer_text(qdq.meta["layers_text"]).layers
            for t in (*layer.inputs, *layer.outputs)
        }
        assert "Int8" in dtypes


def test_build_options_validation(trt_flavour, tmp_path) -> None:
    parsed = build.parse_onnx(trt_flavour, small_cnn_model())
    with pytest.raises(TrtdbgError, match="optimization level 9 is out of range"):
        build.build_engine(parsed, build.BuildOptions(opt_level=9), digest="x")
    built = build.build_engine(
        parsed, build.BuildOptions(opt_level=0, pool_limit=64 << 20, timing_cache=str(tmp_path / "t.cache")), digest="x"
    )
    if trt_flavour.timing_cache:
        assert (tmp_path / "t.cache").is_file()
    else:
        assert "no timing cache" in built.meta["notes"][0] and not (tmp_path / "t.cache").exists()
