"""INT8: TensorRT calibration caches (format, errors, round trip into Q/DQ scales) and Q/DQ models with the settings
TensorRT's explicit quantization accepts."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from engine_core.errors import TrtdbgError
from engine_core.model.synthetic import small_cnn_model
from engine_core.precision.build import PlanBuilder
from engine_core.precision.calib_cache import (
    format_trt_cache,
    match_cache,
    parse_trt_cache,
    read_trt_cache,
    scales_from_ranges,
    write_trt_cache,
)
from engine_core.precision.plan import PrecisionPlan
from engine_core.precision.rewrite import validate
from tests.conftest import run_cli


def test_trt_cache_format_and_errors(tmp_path: Path) -> None:
    header, scales = parse_trt_cache(
        "TRT-8600-EntropyCalibration2\ninput: 3c010204\nweird:name:with:colons: 4000890a\n"
    )
    assert header == "TRT-8600-EntropyCalibration2"
    assert scales["input"] * 127 == pytest.approx(1.0, rel=1e-6)  # 3c010204 -> 0.0078740 -> range 1.0
    assert scales["weird:name:with:colons"] * 127 == pytest.approx(255.06, rel=1e-4)
    text = format_trt_cache(scales, header)
    assert text == "TRT-8600-EntropyCalibration2\ninput: 3c010204\nweird:name:with:colons: 4000890a\n"
    path = write_trt_cache(tmp_path / "c.cache", {"x": 0.5, "(Unnamed Layer* 4) [Fully Connected]_output": 1.25})
    assert read_trt_cache(path)[1] == {"x": 0.5, "(Unnamed Layer* 4) [Fully Connected]_output": 1.25}
    with pytest.raises(TrtdbgError, match="first line 'calib' does not start with 'TRT-'"):
        parse_trt_cache("calib\nx: 3c010204\n")
    with pytest.raises(TrtdbgError, match="line 3: cannot read 'y: zz'"):
        parse_trt_cache("TRT-100300-MinMaxCalibration\nx: 3c010204\ny: zz\n")
    with pytest.raises(TrtdbgError, match="does not exist"):
        read_trt_cache(tmp_path / "missing.cache")
    with pytest.raises(TrtdbgError, match="must look like"):
        format_trt_cache({"x": 1.0}, "8600")
    hits, warnings = match_cache({"x": 0.1, "(Unnamed Layer* 4)": 0.2}, ["x", "y"], "c.cache", "m.onnx")
    assert hits == {"x": 0.1} and "1 of 2 entries name no tensor" in warnings[0]
    with pytest.raises(TrtdbgError, match="names no tensor of m.onnx .*written for another model"):
        match_cache({"a": 0.1}, ["x"], "c.cache", "m.onnx")
    with pytest.raises(TrtdbgError, match="scales must be positive"):
        match_cache({"x": -0.1}, ["x"], "c.cache", "m.onnx")


def _feeds(n: int = 3) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(2)
    return [{"input": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)} for _ in range(n)]


def _dq_scales(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Scale of every DequantizeLinear, keyed by the tensor it reconstructs (Q's input)."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    q_input = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    out = {}
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear":
            src = q_input.get(n.input[0], n.input[0])
            out[src] = inits[n.input[1]]
    return out


def test_qdq_model_follows_tensorrt_rules(tmp_path: Path) -> None:
    model = small_cnn_model()
    builder = PlanBuilder(model, None, tmp_path)
    builder.calibrate(_feeds())
    plan = PrecisionPlan("int8", {"/fc/Gemm": "fp32"})
    q, res = builder.build(plan, emulated=False)
    assert res.int8 == ["/conv1/Conv", "/conv2/Conv", "/skip/Conv"]
    validate(q, "int8 model")
    inits = {t.name: t for t in q.graph.initializer}
    nodes = list(q.graph.node)
    qdq = [n for n in nodes if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for n in qdq:
        zp = inits[n.input[2]]
        assert zp.data_type == TensorProto.INT8 and not numpy_helper.to_array(zp).any()  # symmetric
        assert (numpy_helper.to_array(inits[n.input[1]]) > 0).all()
    assert not any(t.data_type == TensorProto.INT32 for t in q.graph.initializer)  # no INT32 bias quantization
    conv1 = next(n for n in nodes if n.name == "/conv1/Conv")
    assert conv1.input[2] == "conv1.bias"  # the FP32 bias, untouched
    scales = _dq_scales(q)
    assert scales["conv1.weight"].shape == (8,) and scales["conv2.weight"].shape == (8,)  # per output channel
    assert scales["input"].shape == () and scales["/relu1/Relu_output_0"].shape == ()  # activations per tensor
    quantized_inputs = {n.input[0] for n in nodes if n.op_type == "QuantizeLinear"}
    assert "/conv1/Conv_output_0" not in quantized_inputs  # no output quantization
    assert "features" not in quantized_inputs and "fc.weight" not in quantized_inputs  # /fc/Gemm stays FP32
    consumers = {x for n in nodes if n.name in res.int8 for x in n.input}
    assert all(x.endswith(("DequantizeLinear_Output", ".bias")) for x in consumers)


def test_calibration_cache_round_trip_gives_the_same_scales(tmp_path: Path) -> None:
    model = small_cnn_model()
    onnx.save(model, tmp_path / "cnn.onnx")
    first = PlanBuilder(model, tmp_path / "cnn.onnx", tmp_path / "a")
    first.calibrate(_feeds())
    ranges = first.quantizer.ranges()
    cache = write_trt_cache(tmp_path / "cnn.cache", scales_from_ranges(ranges))
    second = PlanBuilder(model, tmp_path / "cnn.onnx", tmp_path / "b")
    second.import_cache(cache)
    imported = second.quantizer.ranges()
    assert set(imported) == set(ranges)
    for name, (lo, hi) in ranges.items():
        amax = max(abs(lo), abs(hi))
        assert imported[name] == pytest.approx((-amax, amax), rel=1e-6)
    # written back, the imported ranges give the same cache text (the hex scales survive bit for bit)
    again = write_trt_cache(tmp_path / "again.cache", scales_from_ranges(imported))
    assert again.read_text() == cache.read_text()
    plan = PrecisionPlan("int8")
    a, _ = first.build(plan, emulated=False)
    b, _ = second.build(plan, emulated=False)
    sa, sb = _dq_scales(a), _dq_scales(b)
    assert set(sa) == set(sb)
    for name in sa:
        np.testing.assert_allclose(sa[name], sb[name], rtol=1e-6)


def test_cli_int8_with_a_cache_and_bad_caches(tmp_path: Path) -> None:
    model = small_cnn_model()
    path = tmp_path / "cnn.onnx"
    onnx.save(model, path)
    builder = PlanBuilder(model, path, tmp_path / "w")
    builder.calibrate(_feeds())
    scales = scales_from_ranges(builder.quantizer.ranges())
    scales["(Unnamed Layer* 9) [Shuffle]_output"] = 0.5
    cache = write_trt_cache(tmp_path / "cnn.cache", scales)
    proc = run_cli(
        "bisect",
        str(path),
        "--precision",
        "int8",
        "--calibration-cache",
        str(cache),
        "--json",
        "--val-range=[-1,1]",
        "--iterations",
        "3",
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert "1 of" in proc.stderr and "TensorRT-internal names cannot be mapped" in proc.stderr
    other = tmp_path / "other.cache"
    other.write_text("TRT-8600-EntropyCalibration2\nimages: 3c010204\n/backbone/conv/Conv_output_0: 3c010204\n")
    proc = run_cli("bisect", str(path), "--precision", "int8", "--calibration-cache", str(other))
    assert proc.returncode == 2 and "written for another model" in proc.stderr and proc.stderr.count("\n") == 1
    broken = tmp_path / "broken.cache"
    broken.write_bytes(struct.pack(">f", 1.0) * 4)
    proc = run_cli("bisect", str(path), "--precision", "int8", "--calibration-cache", str(broken))
    assert proc.returncode == 2 and "expected a TensorRT text cache" in proc.stderr
    proc = run_cli("bisect", str(path), "--precision", "fp16", "--calibration-cache", str(cache))
    assert proc.returncode == 2 and "--calibration-cache applies to --precision int8 only" in proc.stderr


def test_calibration_finds_the_ranges_of_onnx_runtimes_minmax_calibrator(tmp_path: Path) -> None:
    """Ranges are computed in one session over the shared weights (not by ONNX Runtime's calibrator, which holds
    copies of the model): the same ranges, tensor for tensor."""
    from onnxruntime.quantization.calibrate import CalibrationDataReader, create_calibrator

    from engine_core.precision.int8 import minmax_ranges
    from engine_core.precision.rules import QUANTIZABLE

    model = small_cnn_model()
    onnx.save(model, tmp_path / "cnn.onnx")
    feeds = _feeds()

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    calibrator = create_calibrator(
        tmp_path / "cnn.onnx", list(QUANTIZABLE), augmented_model_path=str(tmp_path / "augmented.onnx")
    )
    calibrator.collect_data(Reader())
    want = {k: v.range_value for k, v in calibrator.compute_data().data.items()}
    got = minmax_ranges(model, None, feeds)
    assert len(want) >= 5 and set(want) <= set(got)
    for name, (lo, hi) in want.items():
        assert got[name] == (float(np.asarray(lo).reshape(-1)[0]), float(np.asarray(hi).reshape(-1)[0])), name


def test_tensor_named_like_a_quantizer_scale_keeps_its_values(tmp_path: Path) -> None:
    """Exported dynamically quantized weights (minilm_l6_int8w): ``w = w_f * w_scale`` feeds a MatMul. The quantizer
    names the scale it adds for ``w`` ``w_scale`` too; the built model must run and keep the model's ``w_scale``."""
    from onnx import helper

    from engine_core.backend.ort import OrtRunner

    rng = np.random.default_rng(0)
    w_scale = rng.uniform(0.5, 1.5, (1, 8)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["w_f", "w_scale"], ["w"], name="/w/Mul"),
            helper.make_node("MatMul", ["x", "w"], ["y"], name="/fc/MatMul"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])],
        [
            numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w_f"),
            numpy_helper.from_array(w_scale, "w_scale"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    feeds = [{"x": rng.standard_normal((1, 4, 8)).astype(np.float32)} for _ in range(2)]
    builder = PlanBuilder(model, None, tmp_path)
    builder.calibrate(feeds)
    q, res = builder.build(PrecisionPlan("int8", {}), emulated=False)
    assert res.int8 == ["/fc/MatMul"]
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    np.testing.assert_array_equal(inits["w_scale"], w_scale)  # the model's tensor, under its own name
    assert any(n.op_type == "QuantizeLinear" and n.input[0] == "w" for n in q.graph.node)
    with OrtRunner(q, None) as runner:
        y = runner.infer(feeds[0], ["y"])["y"]
    ref = feeds[0]["x"] @ (numpy_helper.to_array(graph.initializer[0]) * w_scale)
    np.testing.assert_allclose(y, ref, atol=0.1 * np.abs(ref).max())
