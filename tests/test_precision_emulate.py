"""The CPU FP16/BF16 emulation matches numpy low-precision storage arithmetic tensor by tensor (overflow to inf,
underflow to 0, rounding at every boundary), and shows the demo's planted failures that ORT CPU's own FP16 hides."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine_core.backend.ort import OrtRunner
from engine_core.model import weights
from engine_core.model.demo import DEMO_SITES, build_demo_model, demo_inputs
from engine_core.precision.emulate import emulate
from engine_core.precision.plan import PrecisionPlan
from engine_core.precision.rewrite import rewrite
from engine_core.precision.rules import Analysis

F32 = TensorProto.FLOAT
LOW = {"fp16": np.float16, "bf16": ml_dtypes.bfloat16}
_NP = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Max": np.maximum, "Min": np.minimum}
_UNARY = {"Relu": lambda a: np.maximum(a, np.float32(0)), "Neg": np.negative, "Abs": np.abs}


def _exact_model() -> onnx.ModelProto:
    """Ops that are exact in IEEE float32 (so only storage rounding can differ): a chain that overflows FP16
    (x * 300), underflows it (tiny products), a fan-out read by several consumers, and a low-precision output."""
    spec = [
        ("m300", "Mul", "x", 300.0),
        ("a", "Add", "m300", 0.1),
        ("d", "Div", "a", 3.0e4),
        ("r", "Relu", "d", None),
        ("t", "Mul", "r", 1e-4),
        ("t2", "Mul", "t", 1e-3),
        ("back", "Mul", "t2", 1e4),
        ("s", "Sub", "x", 0.5),
        ("n", "Neg", "s", None),
        ("mx", "Max", "n", -0.25),
        ("mn", "Min", "m300", 6.0e4),
        ("ab", "Abs", "mn", None),
        ("sum", "Add", "back", "mx"),
        ("out", "Add", "sum", "ab"),
    ]
    nodes, inits = [], []
    for out, op, a, b in spec:
        ins = [a]
        if isinstance(b, float):
            inits.append(numpy_helper.from_array(np.array(b, np.float32), f"{out}_c"))
            ins.append(f"{out}_c")
        elif isinstance(b, str):
            ins.append(b)
        nodes.append(helper.make_node(op, ins, [out], f"/{out}"))
    g = helper.make_graph(
        nodes,
        "exact",
        [helper.make_tensor_value_info("x", F32, [4, 64])],
        [helper.make_tensor_value_info("out", F32, [4, 64]), helper.make_tensor_value_info("d", F32, [4, 64])],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _numpy_storage(model: onnx.ModelProto, feed: dict[str, np.ndarray], low: dict[str, str]) -> dict[str, np.ndarray]:
    """Every tensor as a low-precision engine would store it: float32 math on values read in the node's precision,
    results rounded to the node's precision."""
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    values = {k: v.astype(np.float32) for k, v in feed.items()}
    stored: dict[str, str | None] = {k: None for k in values}
    for node in model.graph.node:
        p = low.get(node.name)
        args = []
        for x in node.input:
            v = consts[x] if x in consts else values[x]
            if p is not None and stored.get(x) != p:
                with np.errstate(over="ignore"):
                    v = v.astype(LOW[p]).astype(np.float32)
            args.append(v)
        with np.errstate(all="ignore"):
            y = (_NP[node.op_type](*args) if node.op_type in _NP else _UNARY[node.op_type](*args)).astype(np.float32)
            if p is not None:
                y = y.astype(LOW[p]).astype(np.float32)
        values[node.output[0]] = y
        stored[node.output[0]] = p
    return values


def _run_all(
    model: onnx.ModelProto, feed: dict[str, np.ndarray], names: list[str], level: str = "ORT_DISABLE_ALL"
) -> dict[str, np.ndarray]:
    marked = onnx.ModelProto()
    marked.CopyFrom(model)
    have = {o.name for o in marked.graph.output}
    marked.graph.output.extend(helper.make_tensor_value_info(n, F32, None) for n in names if n not in have)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    sess = ort.InferenceSession(marked.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return dict(zip(names, sess.run(names, feed)))


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_emulation_matches_numpy_per_tensor(precision: str) -> None:
    model = _exact_model()
    analysis = Analysis(model)
    names = [n.output[0] for n in model.graph.node]
    rng = np.random.default_rng(5)
    x = rng.uniform(-300, 300, (4, 64)).astype(np.float32)
    x[0, :8] = [0.0, 1e-3, -1e-3, 250.0, 299.9, 2e-4, 6.1e-5, 65504 / 300]
    feed = {"x": x}
    cands = analysis.candidates(precision)
    assert len(cands) == len(names)
    subsets = [cands, cands[::2], cands[1::3]] + [[c for c in cands if rng.random() < 0.5] for _ in range(3)]
    hit_inf = hit_zero = False
    for subset in subsets:
        low = {c: precision for c in subset}
        res = PrecisionPlan("fp32", low).resolve(analysis)
        got = _run_all(emulate(analysis, res.float_low), feed, names)
        want = _numpy_storage(model, feed, low)
        for name in names:
            assert np.array_equal(got[name], want[name], equal_nan=True), (precision, subset, name)
        hit_inf |= any(np.isinf(want[n]).any() for n in names)
        hit_zero |= bool(((want["t2"] == 0) & (want["r"] != 0)).any())
    if precision == "fp16":
        assert hit_inf and hit_zero  # the cases exercised really overflow and underflow


def test_emulation_is_kept_at_every_ort_level() -> None:
    """ONNX Runtime keeps explicit Cast pairs even at ORT_ENABLE_ALL (the emulation's rounding survives)."""
    model = _exact_model()
    analysis = Analysis(model)
    emu = emulate(analysis, PrecisionPlan("fp16").resolve(analysis).float_low)
    feed = {"x": np.linspace(-300, 300, 256, dtype=np.float32).reshape(4, 64)}
    names = ["m300", "out"]
    a = _run_all(emu, feed, names, "ORT_DISABLE_ALL")
    b = _run_all(emu, feed, names, "ORT_ENABLE_ALL")
    assert np.isinf(a["m300"]).any()
    for n in names:
        assert np.array_equal(a[n], b[n], equal_nan=True)


def test_demo_fp16_fails_emulated_but_not_in_ort_cpu_fp16() -> None:
    """ORT CPU's own FP16 under-reports (the demo's NaN disappears); the emulation shows it; keeping the planted
    nodes in FP32 repairs it."""
    model = build_demo_model()
    analysis = Analysis(model)
    feed = demo_inputs()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL

    def probs(m: onnx.ModelProto) -> np.ndarray:
        return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(["probs"], feed)[
            0
        ]

    ref = probs(model)
    res = PrecisionPlan("fp16").resolve(analysis)
    assert np.isnan(probs(emulate(analysis, res.float_low))).all()
    assert np.isfinite(probs(rewrite(analysis, res.float_low))).all()  # ORT CPU drops the intermediate rounding
    keep = {n: "fp32" for site in DEMO_SITES.values() for n in site.keep_fp32}
    fixed = probs(emulate(analysis, PrecisionPlan("fp16", keep).resolve(analysis).float_low))
    assert np.abs(fixed - ref).max() < 0.01 and fixed.argmax() == ref.argmax()


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_small_weights_are_rounded_initializers_large_ones_cast(precision: str) -> None:
    """Small weights become rounded FP32 initializers (no Cast that reads only an initializer: ONNX Runtime's
    session creation is quadratic in those), a weight of LARGE_BYTES or more stays one shared low-type copy read
    through Cast; both give numpy's storage arithmetic exactly."""
    rng = np.random.default_rng(3)
    big = rng.uniform(-6e4, 6e4, (512, 512)).astype(np.float32)  # 1 MiB; x * big overflows fp16 in places
    small = rng.uniform(-1, 1, (512,)).astype(np.float32)
    small[:3] = [1e-9, 60001.0, 1 / 3]  # underflows in fp16, rounds
    g = helper.make_graph(
        [helper.make_node("Mul", ["x", "big"], ["m"], "/m"), helper.make_node("Add", ["m", "small"], ["y"], "/y")],
        "weights",
        [helper.make_tensor_value_info("x", F32, [512, 512])],
        [helper.make_tensor_value_info("y", F32, [512, 512])],
        [numpy_helper.from_array(big, "big"), numpy_helper.from_array(small, "small")],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    analysis = Analysis(model)
    emu = emulate(analysis, PrecisionPlan(precision).resolve(analysis).float_low)
    inits = {t.name: t for t in emu.graph.initializer}
    casts = {n.input[0]: n for n in emu.graph.node if n.op_type == "Cast"}
    assert "small" not in casts and not any(x.startswith("small") and x in inits for x in casts)
    (rounded,) = [t for name, t in inits.items() if name.startswith("small__as_")]
    assert rounded.data_type == F32
    assert np.array_equal(numpy_helper.to_array(rounded), small.astype(LOW[precision]).astype(np.float32))
    held = [x for x in casts if x.startswith("big__") and x in inits]
    assert len(held) == 1 and inits[held[0]].data_type != F32  # the shared low-type copy, cast where read
    x = rng.uniform(-2, 2, (512, 512)).astype(np.float32)
    emu.graph.output.add().name = "m"
    sess = weights.open_session(emu, None, _disabled())
    got = dict(zip(["m", "y"], sess.run(["m", "y"], {"x": x})))
    want = _numpy_storage(model, {"x": x}, {"/m": precision, "/y": precision})
    for name in ("m", "y"):
        assert np.array_equal(got[name], want[name], equal_nan=True), name


def _disabled() -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return so


def test_emulation_types_original_tensors_and_ort_declares_extra_outputs_typed() -> None:
    """Every original tensor of the emulated model has its type in value_info (an int64 shape tensor included), and
    the ORT runner declares the extra outputs it adds with that type (ORT loads thousands of untyped outputs far more
    slowly); the values are those of the untyped session."""
    g = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"], "/r"),
            helper.make_node("Shape", ["r"], ["s"], "/s"),
            helper.make_node("Reshape", ["r", "s"], ["y"], "/y"),
        ],
        "typed",
        [helper.make_tensor_value_info("x", F32, [2, 3])],
        [helper.make_tensor_value_info("y", F32, [2, 3])],
    )
    analysis = Analysis(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    emu = emulate(analysis, PrecisionPlan("fp16").resolve(analysis).float_low)
    assert {vi.name: vi.type.tensor_type.elem_type for vi in emu.graph.value_info} == {"r": F32, "s": TensorProto.INT64}
    runner = OrtRunner(emu, opt_level="disable")
    marked = runner._model_with_outputs(("r", "s"))
    assert [(o.name, o.type.tensor_type.elem_type) for o in marked.graph.output] == [
        ("y", F32),
        ("r", F32),
        ("s", TensorProto.INT64),
    ]
    x = {"x": np.array([[1e-9, -1.0, 1 / 3], [7e4, 2.0, 0.1]], np.float32)}
    got = runner.infer(x, ["r", "s", "y"])
    del emu.graph.value_info[:]
    plain = OrtRunner(emu, opt_level="disable").infer(x, ["r", "s", "y"])
    for name in ("r", "s", "y"):
        assert got[name].dtype == plain[name].dtype and np.array_equal(got[name], plain[name]), name
