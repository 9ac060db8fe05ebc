"""Precision rules, plans and the ONNX rewrite: valid models for every subset tried, the demotions the rules promise,
names that map onto the original, plan files and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from engine_core.errors import TrtdbgError
from engine_core.model.demo import build_demo_model
from engine_core.model.loader import load_model
from engine_core.model.synthetic import branchy_model, chain_model, small_cnn_model
from engine_core.precision.emulate import emulate
from engine_core.precision.plan import PrecisionPlan
from engine_core.precision.rewrite import rewrite, validate
from engine_core.precision.rules import Analysis
from tests.conftest import SHARED_MODELS
from tests.precision_models import pitfall_model

F32, F16, BF16 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16


def _types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    g = inferred.graph
    out = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.value_info, *g.output)}
    out.update({t.name: t.data_type for t in g.initializer})
    return out


def _models() -> list[tuple[str, onnx.ModelProto]]:
    models = [
        ("chain", chain_model(40, ops=("Add", "Mul", "Relu", "Sigmoid", "Div", "Tanh"))),
        ("cnn", small_cnn_model()),
        ("branchy", branchy_model()),
        ("pitfall", pitfall_model()),
        ("demo", build_demo_model()),
    ]
    real = SHARED_MODELS / "ppocrv4_rec.onnx"
    if real.exists():
        models.append(("ppocrv4_rec", load_model(real)))
    return models


@pytest.mark.slow
@pytest.mark.parametrize("name,model", _models(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_random_subset_gives_a_valid_model(name: str, model: onnx.ModelProto) -> None:
    """Property: for all/none/random subsets, the rewrite and the emulation pass the checker, strict type inference
    and an ORT load (BF16: checker and inference; ORT CPU has no BF16 kernels); nodes in the subset really compute
    in the low type; graph I/O and every other tensor keep name and meaning."""
    analysis = Analysis(model)
    orig = _types(model)
    rng = np.random.default_rng(len(name))
    for precision, elem in (("fp16", F16), ("bf16", BF16)):
        cands = analysis.candidates(precision)
        subsets = [cands, []] + [[c for c in cands if rng.random() < p] for p in (0.2, 0.5, 0.8)]
        if precision == "bf16" or name == "ppocrv4_rec":  # fewer for the slow ones
            subsets = subsets[:1] + subsets[3:4] if precision == "fp16" else subsets[3:4]
        for subset in subsets:
            plan = PrecisionPlan("fp32", {c: precision for c in subset})
            res = plan.resolve(analysis)
            assert set(res.float_low) == set(subset)
            real = rewrite(analysis, res.float_low)
            validate(real, f"{name} {precision} rewrite", session=precision == "fp16")
            validate(emulate(analysis, res.float_low), f"{name} {precision} emulation")
            types = _types(real)
            assert [(v.name, v.type.tensor_type.elem_type) for v in real.graph.output] == [
                (v.name, v.type.tensor_type.elem_type) for v in model.graph.output
            ]
            assert [v.name for v in real.graph.input] == [v.name for v in model.graph.input]
            for node in subset:
                facts = analysis.node(node)
                for j in facts.low_outputs:
                    y = analysis.protos[facts.pos].output[j]
                    if y not in analysis.protected:
                        assert types[y] == elem, (name, node, y)
            low_outputs = {
                analysis.protos[analysis.pos[n]].output[j] for n in subset for j in analysis.node(n).low_outputs
            }
            for tensor, t in orig.items():
                if tensor in types and tensor not in low_outputs and tensor not in analysis.initializers:
                    assert types[tensor] == t, (name, precision, tensor)


def test_pitfall_demotions_and_their_reasons() -> None:
    analysis = Analysis(pitfall_model())
    dem = analysis.demotions("fp16")
    assert "no float16 for input 'start'" in dem["range"]
    assert "70000 > 65504" in dem["add_big"] and "side_add" not in dem  # reads a computed tensor, not the constant
    assert "1e-12" in dem["add_eps"] and "which is 0 in fp16" in dem["add_eps"]
    assert "shape sub-graph" in dem["cast_hw"] and "shape sub-graph" in dem["mul_hw"]
    assert "shape sub-graph" in dem["cast_back"]
    assert "control flow" in dem["if_node"]
    assert "input 0 of Range 'range'" in dem["const_zero"]  # Range's start/limit/delta are shape-like parameters
    for ok in ("conv", "relu", "resize", "reducesum", "sqrt", "topk", "mul_range", "cos", "add_out", "softmax"):
        assert ok not in dem and ok in analysis.candidates("fp16"), ok
    for never in ("shape", "gather_hw", "concat_sizes"):  # integer-only: no precision applies
        assert not analysis.node(never).candidate
    assert analysis.candidates("int8") == ["conv"]
    # the Range node is legal in bf16? No: opset 17 Range has neither float16 nor bfloat16.
    assert "bfloat16" in analysis.demotions("bf16")["range"]


def test_pitfall_rewrite_details() -> None:
    model = pitfall_model()
    analysis = Analysis(model)
    real = rewrite(analysis, PrecisionPlan("fp16").resolve(analysis).float_low)
    nodes = {n.name: n for n in real.graph.node}
    casts = [n for n in real.graph.node if n.op_type == "Cast" and n.input[0] == "x"]
    assert len(casts) == 1 and casts[0].output[0] == "x__to_fp16"  # one shared cast for the graph input
    assert nodes["conv"].input[1] == "conv.w__fp16"
    assert "conv.w" not in {t.name for t in real.graph.initializer}  # replaced by its typed copy
    assert nodes["resize"].input[3] == "sizes"  # integer sizes untouched
    assert nodes["add_out"].output[0] == "y__fp16"  # graph output: producer renamed, Cast restores 'y'
    restore = next(n for n in real.graph.node if n.output[0] == "y")
    assert restore.op_type == "Cast" and restore.input[0] == "y__fp16"
    assert nodes["softmax"].input[0] == "y__fp16"  # fp16 consumers reuse the fp16 value
    assert nodes["if_node"].op_type == "If"
    assert nodes["relu"].output[0] == "relu__fp16"  # read by the If branches: protected, restored to fp32
    assert any(n.op_type == "Cast" and n.input[0] == "relu__fp16" and n.output[0] == "relu" for n in real.graph.node)
    value = next(a.t for a in nodes["cos"].attribute if a.name == "value")
    assert value.data_type == F16
    feed = {"x": np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    so = ort.SessionOptions()
    so.log_severity_level = 3
    outs = ort.InferenceSession(real.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feed)
    refs = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feed)
    for a, b in zip(outs, refs):
        assert a.dtype == np.float32 and np.allclose(a, b, rtol=2e-2, atol=2e-2)


def test_captured_outer_name_keeps_its_dtype() -> None:
    analysis = Analysis(pitfall_model())
    assert "relu" in analysis.protected
    real = rewrite(analysis, {"relu": F16})
    prod = next(n for n in real.graph.node if n.name == "relu")
    assert prod.output[0] == "relu__fp16"
    assert _types(real)["relu"] == F32
    validate(real, "pitfall relu-only")


def test_custom_domain_and_unknown_types_are_demoted() -> None:
    from onnx import helper

    nodes = [
        helper.make_node("Relu", ["x"], ["a"], "relu"),
        helper.make_node("MyPlugin", ["a"], ["b"], "plugin", domain="com.example"),
        helper.make_node("Add", ["b", "a"], ["y"], "add"),
    ]
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", F32, [2])], [helper.make_tensor_value_info("y", F32, [2])]
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    analysis = Analysis(model)
    dem = analysis.demotions("fp16")
    assert "custom domain 'com.example'" in dem["plugin"]
    assert "unknown type" in dem["add"]
    assert analysis.candidates("fp16") == ["relu"]


def test_plan_round_trip_errors_and_exports(tmp_path: Path) -> None:
    analysis = Analysis(pitfall_model())
    plan = PrecisionPlan("fp16", {"sqrt": "fp32", "range": "fp16"}, model="pitfall.onnx")
    warnings = plan.check(analysis)
    assert warnings == [
        ("plan: node 'range' cannot take fp16 (Range at opset 17 has no float16 for input 'start'); it runs in fp32")
    ]
    path = plan.save(tmp_path / "p.json", analysis)
    doc = json.loads(path.read_text())
    assert doc["format"] == "trtdbg-precision-plan" and doc["nodes"] == {"sqrt": "fp32", "range": "fp16"}
    assert "add_eps" in doc["demoted"]
    again = PrecisionPlan.load(path)
    assert again.key() == plan.key()
    line = plan.layer_precisions(analysis)
    assert line.startswith("--fp16 --precision-constraints obey --layer-precisions ")
    assert "sqrt:float32" in line and "add_big:float32" in line and "relu:" not in line

    with pytest.raises(TrtdbgError, match="'sqrtt', which does not exist.*did you mean sqrt"):
        PrecisionPlan("fp16", {"sqrtt": "fp32"}).resolve(analysis)
    with pytest.raises(TrtdbgError, match="inside a sub-graph"):
        PrecisionPlan("fp16", {"then_mul": "fp32"}).resolve(analysis)
    with pytest.raises(TrtdbgError, match="precision 'fp8'"):
        PrecisionPlan("fp16", {"sqrt": "fp8"})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TrtdbgError, match="cannot read plan"):
        PrecisionPlan.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(TrtdbgError, match="not a trtdbg precision plan"):
        PrecisionPlan.load(tmp_path / "other.json")
    with pytest.raises(TrtdbgError, match="does not exist"):
        PrecisionPlan.load(tmp_path / "missing.json")


def test_int8_resolution_uses_the_fallback() -> None:
    analysis = Analysis(small_cnn_model())
    res = PrecisionPlan("int8", {"/skip/Conv": "fp16"}, fallback="fp16").resolve(analysis)
    assert res.int8 == ["/conv1/Conv", "/conv2/Conv", "/fc/Gemm"]
    assert res.float_low["/skip/Conv"] == F16 and res.float_low["/relu1/Relu"] == F16  # not quantized -> fallback
    assert not res.demoted
    res32 = PrecisionPlan("int8").resolve(analysis)
    assert res32.precision["/relu1/Relu"] == "fp32" and not res32.float_low
