"""Saved-output files with several runners, saving both sides, and compatible-only fallback pairing."""

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
from onnx import TensorProto, helper, numpy_helper

from engine_core.data.store import load_runs, save_runs
from engine_core.model.synthetic import branchy_model, fp16_copy, small_cnn_model
from tests.conftest import run_cli, shared_model_and_loader

POLY = shutil.which("polygraphy", path=str(Path(sys.executable).parent))
needs_poly = pytest.mark.skipif(POLY is None, reason="polygraphy is a test dependency; not installed here")


def _poly(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([POLY, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def _json(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


@needs_poly
def test_two_runner_file_alone_is_compared_like_polygraphy(save_model, tmp_path: Path) -> None:
    model = save_model(branchy_model(), "b.onnx")
    made = _poly(
        "run", str(model), "--onnxrt", "--onnxrt", "--onnx-outputs", "*", "--save-outputs", "two.json", cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    names = [n for n, _ in load_runs(tmp_path / "two.json")]
    assert len(names) == 2
    proc = run_cli(
        "compare",
        str(model),
        "--load-outputs",
        str(tmp_path / "two.json"),
        "--json",
        "--workspace",
        str(tmp_path / "ws"),
    )
    assert proc.returncode == 0, proc.stderr
    doc = _json(proc)
    # runner 0 is the subject, runner 1 the reference (Polygraphy: relative error against the later runner)
    assert doc["subject"].startswith(names[0]) and doc["ref"].startswith(names[1])
    assert doc["data"] == "saved outputs on both sides"
    assert len(doc["tensors"]) > 5 and all(t["max_abs"] == 0 for t in doc["tensors"])
    assert doc["warnings"] == []  # the pair was chosen by the rule, not guessed

    # --ref-runner / --subject-runner by name and by index
    picked = run_cli(
        "compare",
        str(model),
        "--load-outputs",
        str(tmp_path / "two.json"),
        "--subject-runner",
        names[1],
        "--ref-runner",
        "0",
        "--json",
        "--workspace",
        str(tmp_path / "ws"),
    )
    doc = _json(picked)
    assert doc["subject"].startswith(names[1]) and doc["ref"].startswith(names[0])
    bad = run_cli("compare", str(model), "--load-outputs", str(tmp_path / "two.json"), "--ref-runner", "5")
    assert bad.returncode == 2 and "holds 2 runner(s) (0: " in bad.stderr and "Traceback" not in bad.stderr


def _three_runner_file(tmp_path: Path, model: Path) -> Path:
    """Runners a, b, c where b's outputs are off by 1e-2: a vs b and b vs c both fail."""
    made = _poly("run", str(model), "--onnxrt", "--save-outputs", "one.json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    ((_, its),) = load_runs(tmp_path / "one.json")
    off = [{k: v + np.float32(1e-2) for k, v in it.items()} for it in its]
    save_runs(tmp_path / "three.json", [("a", its), ("b", off), ("c", its)])
    return tmp_path / "three.json"


@needs_poly
def test_three_runner_file_alone_compares_consecutive_pairs(save_model, tmp_path: Path) -> None:
    model = save_model(small_cnn_model(), "m.onnx")
    three = _three_runner_file(tmp_path, model)
    proc = run_cli("compare", str(model), "--load-outputs", str(three), "--json", "--workspace", str(tmp_path / "ws"))
    assert proc.returncode == 1, proc.stderr
    doc = _json(proc)
    pairs = [(c["subject"].split(" ")[0], c["ref"].split(" ")[0]) for c in doc["comparisons"]]
    assert pairs == [("a", "b"), ("b", "c")] and doc["passed"] is False
    theirs = _poly("run", str(model), "--load-outputs", str(three), cwd=tmp_path)
    assert (
        theirs.returncode == 1
        and len(re.findall(r"Accuracy Summary \| a vs\. b|Accuracy Summary \| b vs\. c", theirs.stdout + theirs.stderr))
        == 2
    )
    text = run_cli("compare", str(model), "--load-outputs", str(three), "--workspace", str(tmp_path / "ws"))
    assert "FAILED | 0/2 runner pairs passed" in text.stdout
    one = run_cli(
        "compare", str(model), "--load-outputs", str(three), "--subject-runner", "a", "--ref-runner", "c", "--json"
    )
    assert one.returncode == 0 and _json(one)["subject"].startswith("a")


@needs_poly
def test_multi_runner_file_as_one_side_warns_which_runner(save_model, tmp_path: Path) -> None:
    model = save_model(small_cnn_model(), "m.onnx")
    three = _three_runner_file(tmp_path, model)
    _poly("run", str(model), "--onnxrt", "--save-inputs", "in.json", cwd=tmp_path)
    against = (
        "--subject",
        "ort",
        "--load-inputs",
        str(tmp_path / "in.json"),
        "--json",
        "--workspace",
        str(tmp_path / "ws"),
    )
    proc = run_cli("compare", str(model), "--ref-outputs", str(three), *against)
    doc = _json(proc)
    assert proc.returncode == 0 and doc["ref"].startswith("c ")  # the last runner is the reference by default
    assert any("holds 3 runners" in w and "--ref-runner" in w for w in doc["warnings"])
    chosen = run_cli("compare", str(model), "--ref-outputs", str(three), "--ref-runner", "b", *against)
    assert chosen.returncode == 1 and _json(chosen)["ref"].startswith("b ") and _json(chosen)["warnings"] == []


def test_saved_outputs_on_both_sides_with_loaded_inputs_real_model(tmp_path: Path) -> None:
    """`--ref-outputs A --load-outputs B --load-inputs I` on magika (input named `bytes`) used to exit 2."""
    model, loader = shared_model_and_loader("magika_v3_3.onnx")
    first = run_cli(
        "compare",
        str(model),
        "--data-loader-script",
        loader,
        "--save-inputs",
        str(tmp_path / "in.json"),
        "--save-outputs",
        str(tmp_path / "a.json"),
        "--workspace",
        str(tmp_path / str(tmp_path / "ws")),
    )
    assert first.returncode == 0, first.stderr
    shutil.copy(tmp_path / "a.json", tmp_path / "b.json")
    proc = run_cli(
        "compare",
        str(model),
        "--ref-outputs",
        str(tmp_path / "a.json"),
        "--load-outputs",
        str(tmp_path / "b.json"),
        "--load-inputs",
        str(tmp_path / "in.json"),
        "--json",
        "--workspace",
        str(tmp_path / str(tmp_path / "ws")),
    )
    assert proc.returncode == 0, proc.stderr
    doc = _json(proc)
    assert doc["iterations"] == 4 and doc["data"].startswith("loaded") and doc["summary"]["compared"] == 4


@needs_poly
def test_save_outputs_writes_both_sides_readable_by_polygraphy(save_model, tmp_path: Path) -> None:
    from polygraphy.comparator import RunResults

    model = save_model(small_cnn_model(), "m.onnx")
    sub = save_model(fp16_copy(small_cnn_model()), "m16.onnx")
    judged = ("--atol", "1e-3", "--rtol", "1e-3", "--json", "--workspace", str(tmp_path / str(tmp_path / "ws")))
    proc = run_cli(
        "compare",
        str(model),
        "--subject-model",
        str(sub),
        "--mark",
        "all",
        "--save-inputs",
        str(tmp_path / "in.json"),
        "--save-outputs",
        str(tmp_path / "both.json"),
        *judged,
    )
    doc = _json(proc)
    results = RunResults.load(str(tmp_path / "both.json"))
    assert [name for name, _ in results] == [f"ort:{sub}", "ort"]  # subject first, reference second
    (sub_its, ref_its) = [its for _, its in results]
    compared = [t["name"] for t in doc["tensors"]]
    assert list(ref_its[0].keys()) == compared and list(sub_its[0].keys()) == compared  # MODEL's names, graph order
    # Polygraphy and trtdbg judge the saved pair as trtdbg judged it live
    theirs = _poly("run", str(model), "--load-outputs", "both.json", "--atol", "1e-3", "--rtol", "1e-3", cwd=tmp_path)
    failed = set(re.findall(r"FAILED \| Output: '([^']+)'", theirs.stdout + theirs.stderr))
    assert failed == {t["name"] for t in doc["tensors"] if not t["passed"]}
    again = run_cli("compare", str(model), "--load-outputs", str(tmp_path / "both.json"), *judged)
    redo = _json(again)
    assert {t["name"]: t["passed"] for t in redo["tensors"]} == {t["name"]: t["passed"] for t in doc["tensors"]}
    assert again.returncode == proc.returncode


def _shape_and_activation_model() -> onnx.ModelProto:
    """x → Conv → act [1,8,4,4] → Shape → shp (int64 [4]); outputs in the order act, shp."""
    w = numpy_helper.from_array(np.ones((8, 3, 1, 1), np.float32), "w")
    g = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["act"], name="/conv"),
            helper.make_node("Shape", ["act"], ["shp"], name="/shape"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [
            helper.make_tensor_value_info("act", TensorProto.FLOAT, [1, 8, 4, 4]),
            helper.make_tensor_value_info("shp", TensorProto.INT64, [4]),
        ],
        [w],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_index_fallback_pairs_only_compatible_tensors(save_model, tmp_path: Path) -> None:
    model = save_model(_shape_and_activation_model(), "m.onnx")
    # outputs saved by another tool under other names, in the other order: position pairs int64 with float
    save_runs(
        tmp_path / "theirs.json",
        [("other", [{"Shape_out": np.array([1, 8, 4, 4], np.int64), "conv_out": np.zeros((1, 8, 4, 4), np.float32)}])],
    )
    proc = run_cli(
        "compare",
        str(model),
        "--load-outputs",
        str(tmp_path / "theirs.json"),
        "--json",
        "--workspace",
        str(tmp_path / "ws"),
        cwd=tmp_path,
    )
    doc = _json(proc)
    assert doc["tensors"] == [] and proc.returncode == 1  # graph outputs left uncompared fail the run
    unmatched = {u["name"]: u for u in doc["unmatched"]}
    assert set(unmatched) == {"act", "shp"} and all(u["required"] for u in unmatched.values())
    assert "'Shape_out' is incompatible (float32 vs int64)" in unmatched["act"]["reason"]
    assert "'conv_out' is incompatible (int64 vs float32)" in unmatched["shp"]["reason"]
    text = run_cli("compare", str(model), "--load-outputs", str(tmp_path / "theirs.json"), cwd=tmp_path)
    assert (text.stdout + text.stderr).count("not compared, no compatible counterpart") == 1
    # compatible position pairs are still made, and reported as not exact
    save_runs(
        tmp_path / "same_order.json",
        [("other", [{"conv_out": np.zeros((1, 8, 4, 4), np.float32), "Shape_out": np.array([1, 8, 4, 4], np.int64)}])],
    )
    ok = _json(run_cli("compare", str(model), "--load-outputs", "same_order.json", "--json", cwd=tmp_path))
    assert [(t["name"], t["subject_name"], t["match"]) for t in ok["tensors"]] == [
        ("act", "conv_out", "index"),
        ("shp", "Shape_out", "index"),
    ]
