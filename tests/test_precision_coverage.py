"""Precision coverage (what a subject really runs in low precision), opset upgrade for BF16/FP16, control-flow bodies,
ONNX Runtime CUDA kernel availability and BF16 fetching."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engine_core.backend.ort import OrtRunner
from engine_core.model.synthetic import small_cnn_model
from engine_core.precision.coverage import BODY_KIND, coverage
from engine_core.precision.cuda_kernels import keep_without_kernel
from engine_core.precision.opset import analyse
from engine_core.precision.plan import PrecisionPlan
from engine_core.runners import make_runner
from tests.conftest import shared_model
from tui.cli.main import main


def _opset12(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph declared at opset 12 (every op of the small CNN means the same there)."""
    model.opset_import[0].version = 12
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


def _if_body_model() -> onnx.ModelProto:
    """The whole network (MatMul, Tanh) inside both branches of an If chosen by an input, as in exported
    voice-activity models (one branch per sample rate)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), "w")

    def branch(tag: str) -> onnx.GraphProto:
        return helper.make_graph(
            [
                helper.make_node("MatMul", ["x", "w"], [f"{tag}_mm"], f"{tag}/MatMul"),
                helper.make_node("Tanh", [f"{tag}_mm"], [f"{tag}_out"], f"{tag}/Tanh"),
            ],
            tag,
            [],
            [helper.make_tensor_value_info(f"{tag}_out", TensorProto.FLOAT, [1, 16])],
        )

    g = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], "branch", then_branch=branch("then"), else_branch=branch("else"))],
        "if_net",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        [w],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_coverage_counts_low_nodes_and_kept_reasons():
    model, analysis, notes = analyse(small_cnn_model(), None, ["fp16"])
    plan = PrecisionPlan("fp16", {"/Softmax": "fp32"})
    cov = coverage(analysis, plan.resolve(analysis), plan, notes)
    doc = cov.to_json()
    assert set(doc) == {"precision", "nodes_low", "nodes_total", "kept"}
    assert doc["precision"] == "fp16"
    assert doc["nodes_total"] == 12
    assert doc["nodes_low"] == 11
    assert doc["kept"] == {"fp32 in the plan": 1}
    assert cov.warning() is None
    assert cov.text().startswith("precision coverage: fp16 on 11 of 12 nodes; kept fp32: 1 fp32 in the plan")


def test_network_inside_if_bodies_says_it_stays_fp32(save_model, capsys):
    path = save_model(_if_body_model(), "if_net.onnx")
    rc = main(["compare", str(path), "--subject", "ort:fp16", "--json"])
    doc = json.loads(capsys.readouterr().out)
    cov = doc["precision_coverage"]
    assert rc == 0
    assert cov["nodes_low"] == 0
    assert cov["kept"][BODY_KIND] == 4
    assert cov["kept"]["control flow"] == 1
    assert any("runs no node in fp16" in w and "a pass means nothing" in w for w in doc["warnings"])


def test_opset_upgrade_makes_conv_legal_in_bf16():
    old = _opset12(small_cnn_model())
    model, analysis, notes = analyse(old, None, ["bf16"])
    assert model.opset_import[0].version == 22
    assert notes and "opset 12 -> 22" in notes[0] and "Conv (bf16)" in notes[0]
    assert {"/conv1/Conv", "/conv2/Conv", "/skip/Conv"} <= set(analysis.candidates("bf16"))
    kept_without, _, _ = analyse(old, None, ["fp16"])
    assert kept_without is old  # fp16 is legal at opset 12: no conversion


def test_bf16_subject_of_opset12_convnet_changes_numbers():
    old = _opset12(small_cnn_model())
    feed = {"input": np.random.default_rng(1).random((1, 3, 32, 32), dtype=np.float32)}
    ref = OrtRunner(old).infer(feed, ["/conv1/Conv_output_0"])["/conv1/Conv_output_0"]
    sub = make_runner("ort:bf16", old, None, observable=["/conv1/Conv_output_0"])
    out = sub.infer(feed, ["/conv1/Conv_output_0"])["/conv1/Conv_output_0"]
    assert sub.coverage.kept == {}
    assert 0 < np.abs(out - ref).max() < 0.1


def test_real_ppocrv4_det_opset12_bf16_changes_numbers(capsys):
    path = shared_model("ppocrv4_det.onnx")
    rc = main(
        ["compare", str(path), "--subject", "ort:bf16", "--shapes", "x:1x3x64x64", "--mark", "conv2d_450.tmp_0"]
        + ["--json"]
    )
    doc = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert doc["tensors"][0]["max_abs"] > 0
    cov = doc["precision_coverage"]
    assert cov["nodes_low"] > 600
    assert cov["kept"] == {"shape sub-graph": 12}


def test_ops_without_kernel_stay_fp32_with_reason():
    _, analysis, _ = analyse(small_cnn_model(), None, ["bf16"])

    def check(node, ins, outs, opset):
        return node.op_type != "Relu"

    blocked = keep_without_kernel(analysis, ["bf16"], check, "CUDA", "9.9")
    assert blocked == 2
    assert analysis.node("/relu1/Relu").why_not("bf16") == "onnxruntime 9.9 has no CUDA bf16 kernel for Relu"
    plan = PrecisionPlan("bf16")
    cov = coverage(analysis, plan.resolve(analysis), plan)
    assert cov.kept == {"no CUDA bf16 kernel for Relu": 2}
    assert analysis.node("/conv1/Conv").allows("bf16")


def test_session_probe_finds_missing_bf16_kernels_of_a_real_provider():
    """ONNX Runtime CPU has no bf16 MatMul/Softmax kernels: probing its provider keeps them fp32 and the rewritten
    model then loads (the same probe runs on the CUDA provider for ort-cuda plans)."""
    from engine_core.precision.cuda_kernels import session_probe
    from engine_core.precision.rewrite import rewrite

    _, analysis, _ = analyse(small_cnn_model(), None, ["bf16"])
    blocked = keep_without_kernel(analysis, ["bf16"], session_probe("CPUExecutionProvider"), "CPU")
    assert blocked > 0
    assert analysis.node("/Softmax").why_not("bf16") == "has no CPU bf16 kernel for Softmax"
    plan = PrecisionPlan("bf16")
    res = plan.resolve(analysis)
    import onnxruntime as ort

    model = rewrite(analysis, res.float_low)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"input": np.ones((1, 3, 32, 32), np.float32)})[0].shape == (1, 10)


def test_bf16_intermediates_are_fetched_as_exact_values():
    g = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["b"], "to_bf16", to=TensorProto.BFLOAT16),
            helper.make_node("Cast", ["b"], ["y"], "to_f32", to=TensorProto.FLOAT),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    x = np.array([[1.0001, 3.14159, -2.5], [1e-3, 65504.0, 7.0]], np.float32)
    out = OrtRunner(model, opt_level="disable").infer({"x": x}, ["b", "y"])
    import ml_dtypes

    expected = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    np.testing.assert_array_equal(out["b"], expected)
    np.testing.assert_array_equal(out["y"], expected)


def test_convert_and_reduce_report_coverage(save_model, capsys, tmp_path):
    path = save_model(_opset12(small_cnn_model()), "cnn12.onnx")
    assert main(["convert", str(path), "-o", str(tmp_path / "c.onnx"), "--precision", "bf16", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["precision_coverage"] == {"precision": "bf16", "nodes_low": 12, "nodes_total": 12, "kept": {}}
    assert onnx.load(tmp_path / "c.onnx").opset_import[0].version == 22
    rc = main(["reduce", str(path), "--subject", "ort:fp16", "-o", str(tmp_path / "r.onnx"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc in (0, 1)
    assert doc["precision_coverage"]["nodes_low"] == 12


def test_no_precision_asked_no_a_pass_means_nothing_warning(save_model, tmp_path, capsys):
    """`convert MODEL -o X.onnx` (and `debug build`) without --precision keep the model FP32 by request: no warning
    that "the fp32 subject runs no node in fp32", no "fp32 on 0 of N nodes"."""
    path = save_model(small_cnn_model(), "cnn.onnx")
    assert main(["convert", str(path), "-o", str(tmp_path / "out.onnx")]) == 0
    captured = capsys.readouterr()
    assert "a pass means nothing" not in captured.err
    assert "precision coverage: fp32 on every node (no lower precision asked for)" in captured.out
    assert "fp32 on 0 of" not in captured.out
