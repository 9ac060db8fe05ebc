"""reduce: delta debugging to a minimal failing model, judged over every sample, with compare or command judges."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine_core.check import CheckCommand
from engine_core.data.store import save_inputs
from engine_core.errors import TrtdbgError
from engine_core.model.demo import DEMO_SITES, build_demo_model, demo_inputs
from engine_core.model.synthetic import branchy_model, fp16_copy
from engine_core.options import ToleranceOptions
from engine_core.surgeon.reduce import CommandJudge, CompareJudge, Reducer
from tests.conftest import run_cli, shared_model

PLANTED = {node for site in DEMO_SITES.values() for node in (site.node, *site.keep_fp32)}


def _reduce_to(path: Path, out: Path, needle: str, *options: str) -> subprocess.CompletedProcess[str]:
    """``trtdbg reduce PATH -o OUT`` on 2 samples with a --check that fails (exit 1) while the candidate file
    contains ``needle`` (a node name)."""
    code = f"import sys; sys.exit(1 if {needle.encode()!r} in open(sys.argv[1], 'rb').read() else 0)"
    check = ["--check", sys.executable, "-c", code, "{model}"]
    return run_cli("reduce", str(path), "-o", str(out), "--iterations", "2", *options, "--quiet", *check)


def _model(nodes, inputs, outputs) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("mode", ["bisect", "linear"])
def test_check_command_reduces_to_the_one_node_it_looks_for(tmp_path: Path, save_model, mode: str) -> None:
    path = save_model(branchy_model(), "branchy.onnx")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    out = tmp_path / "min.onnx"
    proc = _reduce_to(path, out, "/merge/Softmax", "--mode", mode)
    assert proc.returncode == 0, proc.stderr
    assert "reduce: 16 -> 1 node(s)" in proc.stdout
    reduced = onnx.load(out)
    assert [n.name for n in reduced.graph.node] == ["/merge/Softmax"]
    assert [vi.name for vi in reduced.graph.input] == ["/merge/Add_output_0"]
    report = json.loads((tmp_path / "min.reduce.json").read_text())
    assert report["samples"] == 2 and report["nodes"] == ["/merge/Softmax"] and "/out/MatMul" in report["removed"]
    assert report["steps"][0]["phase"] == "whole model" and report["steps"][0]["fails"]
    feeds = json.loads((tmp_path / "min.inputs.json").read_text())
    assert len(feeds) == 2  # one feed per sample, for the reduced model's inputs
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_demo_with_fp16_subject_model_ends_at_a_planted_site(tmp_path: Path) -> None:
    model = build_demo_model()
    model_path, fp16_path, inputs = tmp_path / "demo.onnx", tmp_path / "demo_fp16.onnx", tmp_path / "inputs.json"
    onnx.save(model, model_path)
    onnx.save(fp16_copy(model, rename=False), fp16_path)
    save_inputs(inputs, [demo_inputs(seed) for seed in range(3)])
    out = tmp_path / "min.onnx"
    tol = ["--atol", "1e-2", "--rtol", "1e-2"]
    proc = run_cli(
        "reduce",
        str(model_path),
        "--subject-model",
        str(fp16_path),
        *tol,
        "--load-inputs",
        str(inputs),
        "-o",
        str(out),
        "--json",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    print(f"demo reduce: {doc['original_nodes']} -> {doc['nodes']} in {len(doc['steps'])} candidates")
    assert 1 <= len(doc["nodes"]) <= 4 and set(doc["nodes"]) & PLANTED
    assert doc["samples"] == 3
    # The written pair still fails on the written inputs.
    again = run_cli(
        "compare",
        str(out),
        "--subject-model",
        str(tmp_path / "min.subject.onnx"),
        *tol,
        "--load-inputs",
        str(tmp_path / "min.inputs.json"),
        "--quiet",
    )
    assert again.returncode == 1, again.stdout + again.stderr


def _make_fp16_subject_or_skip() -> None:
    from engine_core.runners import make_runner

    try:
        make_runner("ort:fp16", build_demo_model(), None)
    except TrtdbgError as exc:
        pytest.skip(f"precision subject ort:fp16 is not in engine_core.runners.make_runner yet ({exc})")


def test_demo_with_fp16_precision_subject_ends_at_a_planted_site(tmp_path: Path) -> None:
    _make_fp16_subject_or_skip()
    model_path, inputs = tmp_path / "demo.onnx", tmp_path / "inputs.json"
    onnx.save(build_demo_model(), model_path)
    save_inputs(inputs, [demo_inputs(seed) for seed in range(2)])
    proc = run_cli(
        "reduce",
        str(model_path),
        "--subject",
        "ort:fp16",
        "--atol",
        "1e-2",
        "--rtol",
        "1e-2",
        "--load-inputs",
        str(inputs),
        "-o",
        str(tmp_path / "min.onnx"),
        "--json",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert 1 <= len(doc["nodes"]) <= 4 and set(doc["nodes"]) & PLANTED


def _overflow_chain(fp16_storage: bool) -> onnx.ModelProto:
    """``x * 300 * 300 + 1``; with ``fp16_storage`` every product is rounded through float16 by explicit Cast pairs
    (which ONNX Runtime keeps), so the second product overflows (> 65504) where |x| > 0.73."""
    nodes = []
    for i, src in enumerate(("x", "m1"), start=1):
        raw = f"m{i}_raw" if fp16_storage else f"m{i}"
        nodes.append(helper.make_node("Mul", [src, "k"], [raw], f"/mul{i}"))
        if fp16_storage:
            nodes.append(helper.make_node("Cast", [raw], [f"m{i}_h"], f"/round{i}", to=TensorProto.FLOAT16))
            nodes.append(helper.make_node("Cast", [f"m{i}_h"], [f"m{i}"], f"/back{i}", to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Add", ["m2", "one"], ["y"], "/add"))
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
    )
    model.graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(300.0, np.float32), "k"),
            numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        ]
    )
    return model


def test_every_sample_is_judged(tmp_path: Path) -> None:
    """Sample 0 stays in FP16 range, sample 1 overflows: judged on sample 0 alone there is nothing to reduce."""
    model, subject = _overflow_chain(False), _overflow_chain(True)
    small = {"x": np.linspace(0, 0.5, 8, dtype=np.float32)[None]}
    large = {"x": np.linspace(0, 1.0, 8, dtype=np.float32)[None]}
    tolerances = ToleranceOptions(atol=("1e-2",), rtol=("1e-2",))

    def judge() -> CompareJudge:
        return CompareJudge(tmp_path, tolerances, subject_model=subject, subject_model_path="fp16.onnx")

    assert Reducer(model, None, [small], judge()).run().candidate is None
    result = Reducer(model, None, [small, large], judge()).run()
    cand = result.candidate
    assert cand is not None and cand.nodes == ("/mul2",) and cand.inputs == ("m1",)
    assert [float(f["m1"].max()) for f in cand.feeds] == [pytest.approx(150.0), pytest.approx(300.0)]
    assert "1 node(s)" in result.to_text() and "2 sample(s)" in result.to_text()
    cut = judge().subject_candidate(cand)
    assert [n.name for n in cut.graph.node] == ["/mul2", "/round2", "/back2"]


def test_other_branches_freeze_to_constants_or_feed_per_sample() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], "/relu"),
        helper.make_node("Sqrt", ["s"], ["b"], "/sqrt"),
        helper.make_node("Mul", ["a", "b"], ["c"], "/mul"),
        helper.make_node("Neg", ["c"], ["y"], "/neg"),
    ]
    model = _model(
        nodes,
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, [4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    rng = np.random.default_rng(0)
    same_s = [{"x": rng.standard_normal(4).astype(np.float32), "s": np.full(4, 4.0, np.float32)} for _ in range(2)]
    other_s = [same_s[0], {"x": same_s[1]["x"], "s": np.full(4, 9.0, np.float32)}]
    never = CommandJudge(CheckCommand((sys.executable, "-c", "pass")), Path("unused.onnx"))
    frozen = Reducer(model, None, same_s, never).candidate(["x"], ["y"])
    assert frozen is not None and frozen.nodes == ("/relu", "/mul", "/neg") and frozen.frozen == ("b",)
    assert numpy_helper.to_array(next(t for t in frozen.model.graph.initializer if t.name == "b")).tolist() == [2.0] * 4
    fed = Reducer(model, None, other_s, never).candidate(["x"], ["y"])
    assert fed is not None and fed.fed == ("b",) and [vi.name for vi in fed.model.graph.input] == ["x", "b"]
    sess = ort.InferenceSession(fed.model.SerializeToString(), providers=["CPUExecutionProvider"])
    for feed, orig in zip(fed.feeds, other_s):
        np.testing.assert_allclose(sess.run(None, feed)[0], -np.maximum(orig["x"], 0) * np.sqrt(orig["s"]), rtol=1e-6)


def test_real_model_reduce_with_check_command(tmp_path: Path) -> None:
    path = shared_model("magika_v3_3.onnx")
    target = next(n for n in onnx.load(path).graph.node if n.op_type == "MatMul").name
    out = tmp_path / "magika_min.onnx"
    proc = _reduce_to(path, out, target, "--workspace", str(tmp_path / "ws"))
    assert proc.returncode == 0, proc.stderr
    reduced = onnx.load(out)
    assert [n.name for n in reduced.graph.node] == [target]
    onnx.checker.check_model(reduced)


def test_bad_invocations_exit_2_with_one_line(tmp_path: Path, save_model) -> None:
    path = save_model(branchy_model(), "b.onnx")
    out = str(tmp_path / "o.onnx")
    cases = [
        ((str(path), "-o", out), "give exactly one of --subject"),
        ((str(path), "-o", out, "--subject", "ort", "--check", "true"), "give exactly one of --subject"),
        ((str(path), "-o", str(path), "--subject", "ort"), "refusing to overwrite input file"),
        ((str(path), "-o", out, "--subject", "nope"), "unknown backend 'nope'"),
        (
            (str(path), "-o", out, "--workspace", str(tmp_path / "ws"), "--check", "/no/such/command", "{model}"),
            "--check: '/no/such/command' does not exist",
        ),
    ]
    for args, message in cases:
        proc = run_cli("reduce", *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    passes = run_cli("reduce", str(path), "-o", out, "--subject", "ort", "--workspace", str(tmp_path / "ws"))
    assert passes.returncode == 1 and "nothing to reduce" in passes.stdout
    assert not Path(out).exists()
