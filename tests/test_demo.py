"""The built-in demo model: validity, PyTorch-like names, and the planted FP16 overflow/underflow sites, checked with
real numbers (FP32 in ORT CPU, FP16 emulated in numpy or by explicit fp16 storage rounding in ORT)."""

from __future__ import annotations

import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine_core.model.demo import DEMO_SITES, UNDERFLOW_EPS, build_demo_model, demo_inputs

FP16_MAX = 65504.0


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return build_demo_model()


@pytest.fixture(scope="module")
def fp32_all(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every float tensor of the FP32 model on ``demo_inputs()``, via ORT with all tensors marked as outputs."""
    inferred = onnx.shape_inference.infer_shapes(model)
    marked = onnx.ModelProto()
    marked.CopyFrom(model)
    known = {o.name for o in marked.graph.output}
    marked.graph.output.extend(
        v
        for v in inferred.graph.value_info
        if v.name not in known and v.type.tensor_type.elem_type == TensorProto.FLOAT
    )
    sess = _session(marked)
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, demo_inputs())))


def _fp16_storage(model: onnx.ModelProto, keep: tuple[str, ...] = ()) -> onnx.ModelProto:
    """Round every float tensor made by a node outside ``keep`` through float16 (explicit Cast pairs, which ORT keeps):
    inf above 65504, 0 below 6e-8 -- FP16 storage without FP16 accumulation (docs/precision.md §8)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    is_float = {
        v.name
        for v in (*inferred.graph.value_info, *inferred.graph.output)
        if v.type.tensor_type.elem_type == TensorProto.FLOAT
    }
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = []
    for node in out.graph.node:
        nodes.append(node)
        float_const = node.op_type == "Constant" and node.attribute[0].t.data_type == TensorProto.FLOAT
        if node.name in keep:
            continue
        for i, y in enumerate(node.output):
            if y in is_float or float_const:
                node.output[i] = f"{y}__raw"
                nodes.append(helper.make_node("Cast", [f"{y}__raw"], [f"{y}__h"], f"{y}__c16", to=TensorProto.FLOAT16))
                nodes.append(helper.make_node("Cast", [f"{y}__h"], [y], f"{y}__c32", to=TensorProto.FLOAT))
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def test_valid_sized_and_fast_to_build(model: onnx.ModelProto) -> None:
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert 200 <= len(model.graph.node) <= 500
    t0 = time.perf_counter()
    again = build_demo_model()
    print(f"demo: {len(model.graph.node)} nodes, built in {1e3 * (time.perf_counter() - t0):.1f} ms")
    assert again.SerializeToString() == model.SerializeToString()
    ops = {n.op_type for n in model.graph.node}
    assert {
        "Conv",
        "Relu",
        "Sigmoid",
        "ReduceMean",
        "Sub",
        "Pow",
        "Sqrt",
        "Div",
        "MatMul",
        "Reshape",
        "Transpose",
        "Softmax",
        "Erf",
        "Gemm",
        "Shape",
        "Gather",
        "Concat",
    } <= ops
    assert "LayerNormalization" not in ops


def test_names_are_scoped_like_a_pytorch_export(model: onnx.ModelProto) -> None:
    names = [n.name for n in model.graph.node]
    assert len(set(names)) == len(names)
    assert all(n.startswith("/") for n in names)
    for n in model.graph.node:
        for j, y in enumerate(n.output):
            assert y in ("logits", "probs") or y == f"{n.name}_output_{j}"
    for expected in (
        "/stem/conv1/Conv",
        "/blocks.0/attn/MatMul",
        "/blocks.0/attn/query/MatMul",
        "/head/fc/Gemm",
        "/blocks.1/norm1/ReduceMean_1",
        "/blocks.1/mlp/act/Erf",
    ):
        assert expected in names
    assert "/stem/conv1/Conv_output_0" in {y for n in model.graph.node for y in n.output}


def test_fp32_outputs_finite_and_fast(model: onnx.ModelProto) -> None:
    sess = _session(model)
    feed = demo_inputs()
    assert feed["image"].shape == (1, 3, 64, 64) and feed["image"].dtype == np.float32
    logits, probs = sess.run(None, feed)
    assert np.isfinite(logits).all() and np.isfinite(probs).all()
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    for seed in (1, 2):
        assert all(np.isfinite(o).all() for o in sess.run(None, demo_inputs(seed)))
    t0 = time.perf_counter()
    for _ in range(10):
        sess.run(None, feed)
    ms = 100 * (time.perf_counter() - t0)
    print(f"demo FP32 ORT CPU inference: {ms:.2f} ms; probs {' '.join(f'{p:.3f}' for p in probs.ravel())}")


def test_planted_sites_exist(model: onnx.ModelProto) -> None:
    nodes = {n.name: n for n in model.graph.node}
    for site in DEMO_SITES.values():
        assert site.tensor in nodes[site.node].output
        assert set(site.keep_fp32) <= set(nodes)
    assert numpy_helper.to_array(nodes["/patch_embed/norm/Constant_1"].attribute[0].t) == np.float32(UNDERFLOW_EPS)


def test_overflow_site_exceeds_fp16_only_there_and_only_with_the_highlight(
    fp32_all: dict[str, np.ndarray], model: onnx.ModelProto
) -> None:
    site = DEMO_SITES["overflow"]
    peak = float(np.abs(fp32_all[site.tensor]).max())
    print(f"overflow site {site.tensor}: FP32 max {peak:.0f}")
    assert peak > FP16_MAX
    assert [k for k, v in fp32_all.items() if np.abs(v).max() > FP16_MAX] == [site.tensor]
    plain = demo_inputs()["image"].clip(-1.5, 1.5)  # same picture, highlight no longer saturated
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(helper.make_tensor_value_info(site.tensor, TensorProto.FLOAT, None))
    assert np.abs(_session(probe).run([site.tensor], {"image": plain})[0]).max() < FP16_MAX / 10


def test_overflow_fp16_emulation(fp32_all: dict[str, np.ndarray]) -> None:
    """Final LayerNorm in true float16 from its FP32 input: (x - mean)^2 -> inf, var -> inf, tokens -> 0."""
    x = fp32_all["/blocks.1/Add_1_output_0"].astype(np.float16)
    mean = x.astype(np.float32).mean(-1, keepdims=True).astype(np.float16)
    d = x - mean
    with np.errstate(over="ignore"):
        sq = d * d
    assert np.isinf(sq).any()
    var = sq.astype(np.float32).mean(-1, keepdims=True).astype(np.float16)  # fp32 accumulation; inf stays inf
    y16 = d / np.sqrt(var + np.float16(1e-5))
    y32 = fp32_all["/norm/Div_output_0"]
    hot = np.isinf(var[..., 0])
    assert 1 <= hot.sum() < 16 and np.isfinite(y16).all()
    assert (y16[hot] == 0).all() and np.abs(y32[hot]).max() > 7  # the massive channel's signal is gone
    # Keeping the site's keep_fp32 nodes (Pow, variance ReduceMean) in FP32 repairs it.
    d32 = d.astype(np.float32)
    var_ok = (d32 * d32).mean(-1, keepdims=True).astype(np.float16)
    y_fixed = d / np.sqrt(var_ok + np.float16(1e-5))
    assert np.abs(y_fixed.astype(np.float32) - y32).max() < 0.05


def test_underflow_fp16_emulation(fp32_all: dict[str, np.ndarray]) -> None:
    """Patch RMS norm in float16: eps 1e-10 -> 0, so all-zero padding tokens give 0/0 = NaN (FP32 gives 0)."""
    assert np.float16(UNDERFLOW_EPS) == 0 and np.float32(UNDERFLOW_EPS) > 0
    x = fp32_all["/patch_embed/Transpose_output_0"]
    zero_rows = (x == 0).all(-1)[0]
    assert zero_rows.sum() == 24  # letterbox padding: token rows 0, 1 and 7
    x16 = x.astype(np.float16)
    ms = (x16.astype(np.float32) ** 2).mean(-1, keepdims=True).astype(np.float16)
    with np.errstate(invalid="ignore"):
        y16 = x16 / np.sqrt(ms + np.float16(UNDERFLOW_EPS))
    y32 = fp32_all["/patch_embed/norm/Div_output_0"]
    assert np.isnan(y16[0, zero_rows]).all() and np.isfinite(y16[0, ~zero_rows]).all()
    assert (y32[0, zero_rows] == 0).all() and np.isfinite(y32).all()
    # keep_fp32 (eps Constant, Add, Sqrt): sqrt(1e-10) = 1e-5 is a float16 subnormal, so 0 / 1e-5 = 0.
    rms = np.sqrt(ms.astype(np.float32) + np.float32(UNDERFLOW_EPS)).astype(np.float16)
    assert (rms > 0).all() and np.isfinite(x16 / rms).all()


def test_fp16_storage_end_to_end(model: onnx.ModelProto) -> None:
    """All tensors rounded to fp16 -> NaN; keeping the underflow site FP32 -> finite but wrong; both -> matches FP32."""
    feed = demo_inputs()
    ref = _session(model).run(None, feed)[1]
    under, over = DEMO_SITES["underflow"].keep_fp32, DEMO_SITES["overflow"].keep_fp32
    all16 = _session(_fp16_storage(model)).run(None, feed)[1]
    only_overflow = _session(_fp16_storage(model, under)).run(None, feed)[1]
    fixed = _session(_fp16_storage(model, under + over)).run(None, feed)[1]
    print(
        f"FP32 argmax {ref.argmax()} p={ref.max():.3f}; fp16 storage: all -> {all16.ravel()[:3]}, "
        f"underflow kept -> argmax {only_overflow.argmax()} (max |dp| {np.abs(only_overflow - ref).max():.3f}), "
        f"both kept -> max |dp| {np.abs(fixed - ref).max():.2e}"
    )
    assert np.isnan(all16).all()
    assert np.isfinite(only_overflow).all() and only_overflow.argmax() != ref.argmax()
    assert np.abs(fixed - ref).max() < 0.01 and fixed.argmax() == ref.argmax()
