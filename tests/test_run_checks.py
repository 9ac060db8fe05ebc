"""`polygraphy run` comparison features: --validate, --postprocess top-K + --compare-func indices,
--check-metric, --compare-func-script."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from engine_core.comparator.checks import MetricCheck, TopK, indices_match, parse_postprocess
from engine_core.data.store import save_runs
from engine_core.model.synthetic import fp16_copy, small_cnn_model
from tests.conftest import run_cli, shared_model_and_loader
from tests.graphs import eye, weighted_model

POLY = shutil.which("polygraphy", path=str(Path(sys.executable).parent))


def _json(proc) -> dict:
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


def _sqrt_model() -> onnx.ModelProto:
    """x → Sqrt → s → Relu → y: negative inputs give NaN (Polygraphy's own --validate example)."""
    g = helper.make_graph(
        [helper.make_node("Sqrt", ["x"], ["s"], name="/sqrt"), helper.make_node("Relu", ["s"], ["y"], name="/relu")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_validate_finds_nan_in_every_run_also_without_subject(save_model, tmp_path: Path) -> None:
    model = save_model(_sqrt_model(), "sqrt.onnx")
    ws = str(tmp_path / "ws")
    clean = run_cli("compare", str(model), "--validate", "--json", "--workspace", ws)
    assert clean.returncode == 0 and _json(clean)["validation"] == []
    bad = run_cli(
        "compare", str(model), "--validate", "--val-range", "[-1,0]", "--mark", "all", "--json", "--workspace", ws
    )
    doc = _json(bad)
    assert bad.returncode == 1 and doc["subject"].startswith("(none")
    assert [(v["side"], v["name"]) for v in doc["validation"]] == [("reference", "s"), ("reference", "y")]
    text = run_cli("compare", str(model), "--validate", "--val-range", "[-1,0]", "--subject", "ort", "--workspace", ws)
    assert text.returncode == 1 and "[E] Validation: NaN/Inf in 2 tensor(s): reference y it 0" in text.stdout
    no_flag = run_cli("compare", str(model), "--val-range", "[-1,0]", "--workspace", ws)
    assert no_flag.returncode == 0  # without --validate a reference-only run has nothing to judge


def test_topk_and_indices_follow_polygraphy() -> None:
    a = np.array([[0.1, 0.9, 0.3, 0.9, 0.0]], np.float32)
    assert TopK(3).apply(a).tolist() == [[1, 3, 2]]  # stable: equal values keep their order
    assert TopK(9).apply(a).shape == (1, 5)  # K is clamped
    assert TopK(1, axis=0).apply(a).tolist() == [[0, 0, 0, 0, 0]]
    assert parse_postprocess(["top-5", "logits:top-2,axis=1"]) == {"": TopK(5), "logits": TopK(2, 1, "logits")}
    ref = np.array([[4, 2, 7]])
    assert indices_match(np.array([[4, 2, 7]]), ref, 0) is None
    assert "moved 1 places" in indices_match(np.array([[2, 4, 7]]), ref, 0)
    assert indices_match(np.array([[2, 4, 7]]), ref, 1) is None
    assert indices_match(np.array([[4, 2, 9]]), ref, 1) is None  # the last `tolerance` entries are ignored
    assert "not found" in indices_match(np.array([[9, 2, 7]]), ref, 0)


def _logits_model() -> onnx.ModelProto:
    return weighted_model("MatMul", eye(10, "w"), [2, 10], out="logits", node="/fc")


@pytest.mark.skipif(POLY is None, reason="polygraphy is a test dependency; not installed here")
@pytest.mark.parametrize("tolerance", ["0", "1"])
def test_postprocess_indices_verdicts_equal_polygraphy(save_model, tmp_path: Path, tolerance: str) -> None:
    model = save_model(_logits_model(), "cls.onnx")
    rng = np.random.default_rng(0)
    ref = [rng.standard_normal((2, 10)).astype(np.float32) for _ in range(8)]
    sub = [r + rng.standard_normal((2, 10)).astype(np.float32) * s for r, s in zip(ref, [0, 0.05, 0.2, 0.4] * 2)]
    save_runs(tmp_path / "both.json", [("sub", [{"logits": s} for s in sub]), ("ref", [{"logits": r} for r in ref])])
    opts = ["--postprocess", "top-4", "--compare-func", "indices", "--index-tolerance", tolerance]
    theirs = subprocess.run(
        [POLY, "run", str(model), "--load-outputs", "both.json", *opts], capture_output=True, text=True, cwd=tmp_path
    )
    passed_theirs = int(re.search(r"Passed: (\d+)/8 iterations", theirs.stdout + theirs.stderr).group(1))
    doc = _json(run_cli("compare", str(model), "--load-outputs", str(tmp_path / "both.json"), *opts, "--json"))
    assert sum(t["passed"] for t in doc["tensors"]) == passed_theirs
    assert 0 < passed_theirs < 8  # the case really separates passing from failing samples
    assert doc["settings"]["postprocess"] == {"*": "top-4,axis=-1"} and doc["settings"]["compare_funcs"] == ["indices"]


def test_check_metric_thresholds(save_model, tmp_path: Path) -> None:
    assert MetricCheck.parse("logits:cosine >= 0.999") == MetricCheck("cosine", ">=", 0.999, "logits")
    model = save_model(small_cnn_model(), "m.onnx")
    sub = save_model(fp16_copy(small_cnn_model()), "m16.onnx")
    ws = str(tmp_path / "ws")
    base = [
        "compare",
        str(model),
        "--subject-model",
        str(sub),
        "--atol",
        "1",
        "--rtol",
        "1",
        "--json",
        "--workspace",
        ws,
    ]
    loose = _json(run_cli(*base))
    assert loose["passed"]
    worst_cos = min(t["cosine"] for t in loose["tensors"])
    worst_snr = min(t["snr_db"] for t in loose["tensors"])
    ok = run_cli(*base, "--check-metric", f"cosine>={worst_cos - 1e-9}", f"snr>={worst_snr - 1e-6}", "l2<=1")
    assert ok.returncode == 0, ok.stdout
    strict = run_cli(*base, "--check-metric", f"snr>={worst_snr + 1}")
    doc = _json(strict)
    assert strict.returncode == 1
    assert all("violates snr>=" in t["reason"] for t in doc["tensors"] if not t["passed"])
    l2 = _json(run_cli(*base, "--check-metric", "l2<=1e-12"))
    assert not l2["passed"] and "l2 " in l2["tensors"][0]["reason"]
    bad = run_cli(*base, "--check-metric", "cosine=0.9")
    assert bad.returncode == 2 and "--check-metric 'cosine=0.9'" in bad.stderr


def test_compare_func_script(save_model, tmp_path: Path) -> None:
    model = save_model(small_cnn_model(), "m.onnx")
    sub = save_model(fp16_copy(small_cnn_model()), "m16.onnx")
    (tmp_path / "cmp.py").write_text(
        "import numpy as np\n"
        "def compare_outputs(subject, reference):\n"
        "    return {n: np.allclose(subject[n], reference[n], atol=1e-2) for n in subject}\n"
        "def picky(subject, reference):\n"
        "    return {}\n"
        "def broken(subject, reference):\n"
        "    return 1 / 0\n"
    )
    ws = str(tmp_path / "ws")
    base = ["compare", str(model), "--subject-model", str(sub), "--mark", "all", "--json", "--workspace", ws]
    ours = _json(run_cli(*base, "--compare-func-script", str(tmp_path / "cmp.py")))
    assert ours["passed"] and len(ours["tensors"]) > 3  # atol 1e-2 holds where the default 1e-5 does not
    assert not _json(run_cli(*base))["passed"]
    picky = _json(run_cli(*base, "--compare-func-script", f"{tmp_path / 'cmp.py'}:picky"))
    assert not picky["passed"] and "returned no verdict" in picky["tensors"][0]["reason"]
    broken = run_cli(*base, "--compare-func-script", f"{tmp_path / 'cmp.py'}:broken")
    assert broken.returncode == 2 and "ZeroDivisionError" in broken.stderr and "cmp.py line 7" in broken.stderr
    missing = run_cli(*base, "--compare-func-script", f"{tmp_path / 'cmp.py'}:nope")
    assert missing.returncode == 2 and "compare-func script" in missing.stderr and "compare_outputs" in missing.stderr


def test_real_classifier_top_k(tmp_path: Path) -> None:
    """magika (a content-type classifier): its top-5 labels compared as indices, every run validated."""
    model, loader = shared_model_and_loader("magika_v3_3.onnx")
    same = run_cli(
        "compare",
        str(model),
        "--subject",
        "ort",
        "--data-loader-script",
        loader,
        "--postprocess",
        "top-5",
        "--compare-func",
        "indices",
        "--validate",
        "--json",
        "--workspace",
        str(tmp_path / "ws"),
    )
    doc = _json(same)
    assert same.returncode == 0 and doc["validation"] == [] and len(doc["tensors"]) == 4
    assert all(t["shape"] == [1, 5] and t["dtype"] == "int64" for t in doc["tensors"])  # compared as indices
