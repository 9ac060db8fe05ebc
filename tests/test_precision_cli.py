"""The done criteria on the demo model through the CLI: `trtdbg bisect --auto` finds exactly the planted nodes (FP16,
and INT8 with FP16 fallback), the --json contract, and compare's precision subjects and --plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine_core.model.demo import DEMO_SITES, DemoFiles, write_demo
from tests.conftest import run_cli

PLANTED = {n for site in DEMO_SITES.values() for n in site.keep_fp32}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFiles:
    return write_demo(str(tmp_path_factory.mktemp("demo")))


def _bisect(demo: DemoFiles, *args: str) -> dict:
    proc = run_cli("bisect", str(demo.model), "--load-inputs", str(demo.inputs), "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_fp16_bisection_finds_exactly_the_planted_nodes(demo: DemoFiles) -> None:
    doc = _bisect(demo, "--auto", "--precision", "fp16")
    for key, typ in (("culprits", list), ("evaluations", int), ("passed", bool), ("plan", str), ("steps", list)):
        assert isinstance(doc[key], typ), key
    found = set(doc["culprits"])
    auto = set(doc["demoted"])
    assert found | (auto & PLANTED) == PLANTED and found <= PLANTED, (found, auto)
    assert all(site.node in found | auto for site in DEMO_SITES.values())
    assert doc["passed"] and doc["finished"] and doc["problem"] is None
    assert doc["evaluations"] == sum(not s["cached"] for s in doc["steps"]) <= 30
    plan = json.loads(Path(doc["plan"]).read_text())
    assert plan["default"] == "fp16" and set(plan["nodes"]) == found and set(plan["nodes"].values()) == {"fp32"}
    split = next(s for s in doc["steps"] if s["kind"] == "split")
    assert len(split["halves"]) == 2 and split["fallback"] == split["halves"][split["choice"]]
    assert {"max_abs", "max_rel", "passed", "seconds"} <= set(split["evaluation"])
    assert doc["layer_precisions"].startswith("--fp16 --precision-constraints obey --layer-precisions ")
    assert all(f"{n}:float32" in doc["layer_precisions"] for n in PLANTED)

    # the saved plan repairs the FP16 subject in compare; the plain FP16 subject fails with NaN/Inf
    base = ["compare", str(demo.model), "--load-inputs", str(demo.inputs), "--atol", "2e-2", "--rtol", "2e-2"]
    bad = run_cli(*base, "--subject", "ort:fp16", "--json")
    assert bad.returncode == 1, bad.stderr
    assert json.loads(bad.stdout)["first_nonfinite"] is not None
    good = run_cli(*base, "--plan", doc["plan"])
    assert good.returncode == 0, good.stdout + good.stderr


@pytest.mark.slow
def test_int8_with_fp16_fallback_finds_the_planted_nodes(demo: DemoFiles) -> None:
    doc = _bisect(
        demo,
        "--auto",
        "--precision",
        "int8",
        "--fallback",
        "fp16",
        "--write-calibration-cache",
        str(Path(demo.workspace) / "demo.cache"),
    )
    prec = doc["culprit_precisions"]
    fp32 = {n for n, p in prec.items() if p == "fp32"}
    assert fp32 | (set(doc["demoted"]) & PLANTED) == PLANTED
    int8_culprits = {n for n, p in prec.items() if p == "fp16"}
    assert all(n.endswith(("Conv", "MatMul", "Gemm")) for n in int8_culprits)
    # block 1's fc2 holds the 30.0 weight that writes the massive activation: per-tensor INT8 cannot hold it
    assert "/blocks.1/mlp/fc2/MatMul" in int8_culprits
    assert doc["passed"] and doc["candidates"] == {"fp16->fp32": 146, "int8->fp16": 20}
    plan = json.loads(Path(doc["plan"]).read_text())
    assert plan["default"] == "int8" and plan["fallback"] == "fp16" and Path(plan["calibration"]).is_file()
    cache = Path(doc["calibration_cache"]).read_text().splitlines()
    assert cache[0] == "TRT-100300-MinMaxCalibration" and len(cache) > 20
    # the plan (with its saved calibration ranges) passes in compare as well
    proc = run_cli(
        "compare",
        str(demo.model),
        "--load-inputs",
        str(demo.inputs),
        "--plan",
        doc["plan"],
        "--atol",
        "1e-1",
        "--rtol",
        "1e-1",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compare_precision_errors_are_one_line(demo: DemoFiles, tmp_path: Path) -> None:
    plan = tmp_path / "p.json"
    plan.write_text(
        json.dumps(
            {"format": "trtdbg-precision-plan", "version": 1, "default": "fp16", "nodes": {"/norm/Poww": "fp32"}}
        )
    )
    proc = run_cli("compare", str(demo.model), "--load-inputs", str(demo.inputs), "--plan", str(plan))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "'/norm/Poww', which does not exist" in proc.stderr
    assert "did you mean /norm/Pow" in proc.stderr
    proc = run_cli("compare", str(demo.model), "--subject", "ort:fp16", "--plan", str(plan))
    assert proc.returncode == 2 and "not both" in proc.stderr
    plan.write_text(
        json.dumps(
            {
                "format": "trtdbg-precision-plan",
                "version": 1,
                "default": "fp16",
                "nodes": {"/patch_embed/norm/Add": "fp16"},
            }
        )
    )
    proc = run_cli("compare", str(demo.model), "--load-inputs", str(demo.inputs), "--plan", str(plan), "--json")
    assert "cannot take fp16" in proc.stderr and proc.returncode == 1


def test_failing_rewrite_is_named_as_the_subjects_not_the_original(save_model, monkeypatch) -> None:
    """When the rewritten model fails to run (as ort:int8 on minilm_l6_int8w did), the error names the subject's
    rewrite; ONNX Runtime's own message names the original file, which runs fine."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from engine_core.precision.build import PlanBuilder

    io = ([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],)
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])]
    good = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", *io, out)
    path = save_model(helper.make_model(good, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), "m.onnx")
    bad = helper.make_graph(
        [helper.make_node("Reshape", ["x", "s"], ["y"], name="relu")],
        "g",
        *io,
        out,
        [numpy_helper.from_array(np.array([3], np.int64), "s")],
    )
    broken = helper.make_model(bad, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    real_build = PlanBuilder.build

    def build(self, plan, *, emulated):
        _, res = real_build(self, plan, emulated=emulated)
        return onnx.ModelProto.FromString(broken.SerializeToString()), res

    monkeypatch.setattr(PlanBuilder, "build", build)
    proc = run_cli("compare", path, "--subject", "ort:fp16")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("trtdbg: error: ort:fp16, the model rewritten for this subject: ONNX Runtime")
