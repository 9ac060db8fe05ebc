"""`trtdbg compare` CLI contract: JSON keys, exit codes, data round trips, parity with `polygraphy run`."""

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

from engine_core.model.synthetic import branchy_model, fp16_copy, small_cnn_model
from tests.conftest import run_cli, shared_model

STABLE_TENSOR_KEYS = {
    "name",
    "node",
    "topo_index",
    "shape",
    "dtype",
    "max_abs",
    "mean_abs",
    "median_abs",
    "max_rel",
    "mean_rel",
    "cosine",
    "nan",
    "inf",
    "passed",
}


def _json(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


def _compare_loaded(model: Path, inputs: Path, workspace: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``trtdbg compare MODEL --subject ort`` on the saved ``inputs``."""
    return run_cli(
        "compare", str(model), "--subject", "ort", "--load-inputs", str(inputs), *options, "--workspace", str(workspace)
    )


def test_json_contract_and_exit_codes(save_model, tmp_path: Path) -> None:
    model = save_model(small_cnn_model(), "m.onnx")
    sub = save_model(fp16_copy(small_cnn_model()), "m16.onnx")
    ws = str(tmp_path / "ws")
    same = run_cli("compare", str(model), "--subject", "ort", "--mark", "all", "--json", "--workspace", ws)
    assert same.returncode == 0, same.stderr
    doc = _json(same)
    assert doc["passed"] is True and doc["first_failing"] is None and doc["first_nonfinite"] is None
    assert doc["ref"] == "ort" and doc["subject"] == "ort"
    assert len(doc["tensors"]) > 3
    assert all(STABLE_TENSOR_KEYS <= set(t) for t in doc["tensors"])
    assert [t["topo_index"] for t in doc["tensors"]] == sorted(t["topo_index"] for t in doc["tensors"])

    diff = run_cli("compare", str(model), "--subject-model", str(sub), "--mark", "all", "--json", "--workspace", ws)
    assert diff.returncode == 1, diff.stderr
    doc = _json(diff)
    assert doc["passed"] is False
    first = doc["first_failing"]
    failing = [t for t in doc["tensors"] if not t["passed"]]
    assert first["name"] == min(failing, key=lambda t: t["topo_index"])["name"]
    assert (tmp_path / "ws" / "last_compare.json").exists()

    text = run_cli("compare", str(model), "--subject-model", str(sub), "--workspace", ws)
    assert text.returncode == 1 and "FAILED" in text.stdout and "First failing:" in text.stdout


def test_save_and_reload_inputs_and_outputs(save_model, tmp_path: Path) -> None:
    model = save_model(branchy_model(), "b.onnx")
    ws = str(tmp_path / "ws")
    for ext in (".json", ".npz", ""):
        inputs, outputs = tmp_path / f"in{ext}", tmp_path / f"out{ext}"
        run = run_cli(
            "compare",
            str(model),
            "--mark",
            "all",
            "--seed",
            "5",
            "--save-inputs",
            str(inputs),
            "--save-outputs",
            str(outputs),
            "--workspace",
            ws,
        )
        assert run.returncode == 0, run.stderr
        again = run_cli(
            "compare",
            str(model),
            "--mark",
            "all",
            "--ref-outputs",
            str(outputs),
            "--subject",
            "ort",
            "--load-inputs",
            str(inputs),
            "--atol",
            "0",
            "--rtol",
            "0",
            "--json",
            "--workspace",
            ws,
        )
        assert again.returncode == 0, again.stderr
        doc = _json(again)
        assert doc["passed"] and len(doc["tensors"]) > 3
        assert all(t["max_abs"] == 0 for t in doc["tensors"])


def _subgraph_model() -> onnx.ModelProto:
    then_g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["then_relu"], name="/cond/then/Relu")],
        "then",
        [],
        [helper.make_tensor_value_info("then_relu", TensorProto.FLOAT, [2, 3])],
    )
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["else_neg"], name="/cond/else/Neg")],
        "else",
        [],
        [helper.make_tensor_value_info("else_neg", TensorProto.FLOAT, [2, 3])],
    )
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], name="/sum", keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["c"], name="/gt"),
        helper.make_node("If", ["c"], ["y"], name="/cond", then_branch=then_g, else_branch=else_g),
    ]
    graph = helper.make_graph(
        nodes,
        "sub",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_subgraph_tensors_reported_not_observable(save_model, tmp_path: Path) -> None:
    model = save_model(_subgraph_model(), "if.onnx")
    proc = run_cli("compare", str(model), "--subject", "ort", "--mark", "all", "--json", "--workspace", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    doc = _json(proc)
    hidden = {u["name"]: u["reason"] for u in doc["unobservable"]}
    assert set(hidden) == {"then_relu", "else_neg"}
    assert "/cond" in hidden["then_relu"]
    assert {t["name"] for t in doc["tensors"]} == {"s", "c", "y"}


@pytest.mark.parametrize(
    "args,expect",
    [
        (["--mark", "no_such_tensor"], "does not exist"),
        (["--shapes", "nope:1x2"], "nope"),
        (["--ref", "tensorflow"], "unknown backend"),
        (["--atol", "abc"], "--atol"),
        (["--load-inputs", "/nonexistent/in.json"], "in.json"),
        (["--data-loader-script", "/nonexistent/loader.py"], "loader.py"),
        (["--mem-budget", "lots"], "--mem-budget"),
    ],
)
def test_bad_input_is_one_line_exit_2(save_model, tmp_path: Path, args: list[str], expect: str) -> None:
    model = save_model(small_cnn_model(), "m.onnx")
    proc = run_cli("compare", str(model), "--subject", "ort", *args, "--workspace", str(tmp_path / "ws"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert expect in lines[0]


def test_bad_model_files_exit_2(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01not a model at all" * 10)
    for path in (garbage, tmp_path / "missing.onnx"):
        proc = run_cli("compare", str(path), "--subject", "ort")
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert path.name in proc.stderr


def test_unwritable_workspace_exit_2(save_model, tmp_path: Path) -> None:
    model = save_model(small_cnn_model(), "m.onnx")
    proc = run_cli("compare", str(model), "--subject", "ort", "--workspace", "/proc/trtdbg-ws")
    assert proc.returncode == 2 and "workspace" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_nan_inputs_warn_and_still_run(save_model, tmp_path: Path) -> None:
    model = save_model(small_cnn_model(), "m.onnx")
    first = run_cli("compare", str(model), "--save-inputs", str(tmp_path / "in.json"), "--workspace", str(tmp_path))
    assert first.returncode == 0, first.stderr
    from engine_core.data.store import load_inputs, save_inputs

    feeds = load_inputs([str(tmp_path / "in.json")])
    name = next(iter(feeds[0]))
    feeds[0][name].flat[0] = np.nan
    save_inputs(str(tmp_path / "nan.json"), feeds)
    proc = _compare_loaded(model, tmp_path / "nan.json", tmp_path, "--json")
    assert proc.returncode in (0, 1)
    assert "NaN" in proc.stderr
    assert any("NaN" in w for w in _json(proc)["warnings"])


def test_real_model_compare(tmp_path: Path) -> None:
    model = shared_model("magika_v3_3.onnx")
    loader = model.parent / "inputs.py"
    proc = run_cli(
        "compare",
        str(model),
        "--subject",
        "ort",
        "--mark",
        "all",
        "--json",
        "--data-loader-script",
        f"{loader}:load_magika_v3_3",
        "--workspace",
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    doc = _json(proc)
    assert doc["iterations"] == 4 and len(doc["tensors"]) >= 4 * 80


# --- parity with `polygraphy run` ----------------------------------------------------------------

POLY = shutil.which("polygraphy", path=str(Path(sys.executable).parent))


def _poly_onnxrt(model: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``polygraphy run MODEL --onnxrt --onnx-outputs '*' OPTIONS`` (every tensor an output)."""
    assert POLY is not None
    return subprocess.run(
        [POLY, "run", str(model), "--onnxrt", "--onnx-outputs", "*", *options], capture_output=True, text=True
    )


def _polygraphy_verdicts(log: str) -> dict[tuple[str, str], bool]:
    """{(subject tensor, reference tensor): passed} from `polygraphy run` output."""
    pairs = dict(re.findall(r"Comparing Output: '([^']+)' \(dtype=[^,]*, shape=\([^)]*\)\) with '([^']+)'", log))
    verdicts = {}
    for m in re.finditer(r"(PASSED|FAILED) \| Output: '([^']+)'", log):
        verdicts[(m.group(2), pairs[m.group(2)])] = m.group(1) == "PASSED"
    return verdicts


@pytest.mark.slow
@pytest.mark.skipif(POLY is None, reason="polygraphy is a test dependency; not installed here")
@pytest.mark.parametrize("builder", [small_cnn_model, branchy_model])
def test_verdicts_equal_polygraphy_run(save_model, tmp_path: Path, builder) -> None:
    model = save_model(builder(), "m.onnx")
    sub = save_model(fp16_copy(builder()), "m16.onnx")
    inputs, golden = tmp_path / "in.json", tmp_path / "golden.json"
    made = _poly_onnxrt(model, "--save-inputs", str(inputs), "--save-outputs", str(golden))
    assert made.returncode == 0, made.stderr
    for tol in (
        ["--atol", "1e-5", "--rtol", "1e-5"],
        ["--atol", "1e-3", "--rtol", "1e-2"],
        ["--atol", "1e-2", "--rtol", "1e-3", "--check-error-stat", "max"],
        ["--atol", "1e-3", "--rtol", "1e-3", "--check-error-stat", "median"],
    ):
        theirs = _poly_onnxrt(sub, "--load-inputs", str(inputs), "--load-outputs", str(golden), *tol)
        poly = _polygraphy_verdicts(theirs.stdout + theirs.stderr)
        ours_proc = run_cli(
            "compare",
            str(model),
            "--ref-outputs",
            str(golden),
            "--subject-model",
            str(sub),
            "--mark",
            "all",
            "--load-inputs",
            str(inputs),
            "--json",
            "--polygraphy-defaults",
            *tol,
            "--workspace",
            str(tmp_path / "ws"),
        )
        doc = _json(ours_proc)
        ours = {(t.get("subject_name", t["name"]), t["name"]): t["passed"] for t in doc["tensors"]}
        common = set(poly) & set(ours)
        assert len(common) >= 5, (poly, ours)
        assert any(a != b for a, b in common)  # structure-matched pairs are part of the parity check
        assert {k: ours[k] for k in common} == {k: poly[k] for k in common}, tol
        assert ours_proc.returncode == (0 if all(t["passed"] for t in doc["tensors"]) else 1)


@pytest.mark.parametrize(
    "node,opset,expect",
    [
        (helper.make_node("FancyOp", ["x"], ["y"], name="/fancy"), [helper.make_opsetid("", 17)], "FancyOp"),
        (
            helper.make_node("Relu", ["x"], ["y"], name="/r", domain="acme.custom"),
            [helper.make_opsetid("", 17), helper.make_opsetid("acme.custom", 1)],
            "acme.custom",
        ),
        (helper.make_node("Relu", ["x"], ["y"], name="/r"), [helper.make_opsetid("", 99)], "opset"),
    ],
)
def test_unsupported_models_exit_2(tmp_path: Path, node, opset, expect: str) -> None:
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=opset, ir_version=9), path)
    proc = run_cli("compare", str(path), "--subject", "ort", "--workspace", str(tmp_path / "ws"))
    assert proc.returncode == 2, proc.stderr
    assert expect in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_feed_mismatch_exit_2(save_model, tmp_path: Path) -> None:
    model = save_model(small_cnn_model(), "m.onnx")
    from engine_core.data.store import save_inputs

    name = onnx.load(str(model)).graph.input[0].name
    cases = {
        "wrong_name.json": {"not_an_input": np.zeros((1, 3, 32, 32), np.float32)},
        "wrong_dtype.json": {name: np.zeros((1, 3, 32, 32), np.int32)},
        "wrong_shape.json": {name: np.zeros((1, 3, 31), np.float32)},
    }
    for file, feed in cases.items():
        save_inputs(str(tmp_path / file), [feed])
        proc = _compare_loaded(model, tmp_path / file, tmp_path / "ws")
        assert proc.returncode == 2, (file, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_data_loader_script_errors_exit_2(save_model, tmp_path: Path) -> None:
    model = save_model(small_cnn_model(), "m.onnx")
    scripts = {
        "raises.py": "def load_data():\n    yield from []\n    raise RuntimeError('boom')\n",
        "junk.py": "def load_data():\n    yield 42\n",
        "crash.py": "def load_data():\n    for i in range(2):\n        if i == 1:\n            raise ValueError('bad sample')\n        yield {}\n",
    }
    for file, text in scripts.items():
        (tmp_path / file).write_text(text)
        proc = run_cli(
            "compare",
            str(model),
            "--subject",
            "ort",
            "--data-loader-script",
            str(tmp_path / file),
            "--workspace",
            str(tmp_path / "ws"),
        )
        assert proc.returncode == 2, (file, proc.stderr)
        assert file in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_external_data_model_runs_and_missing_data_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "ext.onnx"
    onnx.save(small_cnn_model(), path, save_as_external_data=True, location="ext.data", size_threshold=0)
    ok = run_cli(
        "compare", str(path), "--subject", "ort", "--mark", "all", "--json", "--workspace", str(tmp_path / "ws")
    )
    assert ok.returncode == 0, ok.stderr
    assert _json(ok)["passed"]
    (tmp_path / "ext.data").unlink()
    bad = run_cli("compare", str(path), "--subject", "ort", "--workspace", str(tmp_path / "ws"))
    assert bad.returncode == 2 and "ext.data" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_ort_cuda_never_falls_back_to_cpu(save_model, tmp_path: Path) -> None:
    import onnxruntime as ort

    model = save_model(small_cnn_model(), "m.onnx")
    sess = (
        ort.InferenceSession(str(model), providers=["CUDAExecutionProvider"])
        if "CUDAExecutionProvider" in ort.get_available_providers()
        else None
    )
    if sess is not None and sess.get_providers()[0] == "CUDAExecutionProvider":
        pytest.skip("a working CUDA provider is present here; the GPU run is covered by bench/gpu_check.sh")
    proc = run_cli("compare", str(model), "--subject", "ort-cuda", "--workspace", str(tmp_path / "ws"))
    assert proc.returncode == 2
    assert "CUDAExecutionProvider" in proc.stderr and "CPU" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_mark_names_with_glob_characters_are_names(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["/attn[scale]/Relu"], name="/attn[scale]/Relu"),
        helper.make_node("Neg", ["/attn[scale]/Relu"], ["y"], name="/neg"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
    )
    path = tmp_path / "brackets.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    proc = run_cli(
        "compare",
        str(path),
        "--subject",
        "ort",
        "--mark",
        "/attn[scale]/Relu",
        "--json",
        "--workspace",
        str(tmp_path / "ws"),
    )
    assert proc.returncode == 0, proc.stderr
    assert [t["name"] for t in _json(proc)["tensors"]] == ["/attn[scale]/Relu"]
    globbed = run_cli(
        "compare", str(path), "--subject", "ort", "--mark", "/attn*", "--json", "--workspace", str(tmp_path / "ws")
    )
    assert [t["name"] for t in _json(globbed)["tensors"]] == ["/attn[scale]/Relu"]


def test_reference_only_says_nothing_was_compared(save_model, tmp_path: Path) -> None:
    """`trtdbg compare MODEL` (what a new user types first) runs the reference only: the report must say that nothing
    was compared and how to compare, not just `PASSED | 0/0`."""
    model = save_model(branchy_model(), "b.onnx")
    run = run_cli("compare", model, "--workspace", tmp_path / "ws")
    assert run.returncode == 0, run.stderr
    assert "[I] reference only: nothing was compared (give --subject SPEC" in run.stdout
    with_subject = run_cli("compare", model, "--subject", "ort", "--workspace", tmp_path / "ws")
    assert "reference only" not in with_subject.stdout
