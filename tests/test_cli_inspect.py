"""`trtdbg inspect`: text, JSON, options, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]


def _save(
    tmp_path: Path, op: str = "Add", domain: str = "", name: str = "m.onnx", opsets: dict[str, int] | None = None
) -> Path:
    node = helper.make_node(op, ["x", "w"], ["a"], name="/blk/add", domain=domain)
    relu = helper.make_node("Relu", ["a"], ["y"], name="/blk/relu")
    graph = helper.make_graph(
        [node, relu],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.ones((1, 4), np.float32), "w")],
    )
    imports = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, v) for d, v in (opsets or {}).items()]
    path = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=imports, ir_version=8), path)
    return path


def test_text_default_and_layers(tmp_path: Path, cli) -> None:
    path = _save(tmp_path)
    rc, out, err = cli("inspect", str(path))
    assert rc == 0 and err == ""
    assert out.startswith("==== ONNX Model ====\nName: tiny | ONNX Opset: 17\n")
    assert "---- 1 Graph Input(s) ----\n{x [dtype=float32, shape=(1, 4)]}" in out
    assert out.endswith("---- 2 Node(s) ----\n") and "Node 0" not in out
    rc, out, _ = cli("inspect", "model", str(path), "--show", "layers", "--show", "attrs")
    assert rc == 0
    assert "Node 0    | /blk/add [Op: Add]\n    {x [dtype=float32, shape=(1, 4)],\n     Initializer | w" in out
    assert "-> {a [dtype=float32, shape=(1, 4)]}" in out  # shape inference on by default
    rc, out, _ = cli("inspect", str(path), "--show", "layers", "--no-shape-inference")
    assert "-> {a}\n" in out


def test_show_space_separated_like_polygraphy(tmp_path: Path, cli) -> None:
    path = _save(tmp_path)
    rc, spaced, _ = cli("inspect", "model", str(path), "--show", "layers", "attrs")
    assert rc == 0 and "Node 0    | /blk/add [Op: Add]" in spaced
    rc, comma, _ = cli("inspect", "model", str(path), "--show", "layers,attrs")
    assert rc == 0 and comma == spaced


def test_json_output(tmp_path: Path, cli) -> None:
    rc, out, _ = cli("inspect", str(_save(tmp_path)), "--json", "--show", "layers,attrs")
    assert rc == 0
    data = json.loads(out)
    assert data["name"] == "tiny" and data["nodes"]["count"] == 2
    assert [layer["name"] for layer in data["nodes"]["layers"]] == ["/blk/add", "/blk/relu"]
    assert data["tensors"]["a"] == {"dtype": "float32", "shape": [1, 4]}


@pytest.mark.parametrize(
    "case", ["missing", "truncated", "garbage", "unknown_op", "custom_domain", "bad_show", "stray_word", "reserved"]
)
def test_bad_inputs_one_line_exit_2(tmp_path: Path, cli, case: str) -> None:
    good = _save(tmp_path)
    args = {
        "missing": [str(tmp_path / "nope.onnx")],
        "truncated": [str(tmp_path / "trunc.onnx")],
        "garbage": [str(tmp_path / "garbage.onnx")],
        "unknown_op": [str(_save(tmp_path, op="NotAnOp", name="u.onnx"))],
        "custom_domain": [str(_save(tmp_path, op="Foo", domain="acme.ops", name="c.onnx", opsets={"acme.ops": 1}))],
        "bad_show": [str(good), "--show", "layers,nodes"],
        "stray_word": [str(good), "layers"],
        "reserved": ["engine", "model.plan"],
    }[case]
    (tmp_path / "trunc.onnx").write_bytes(good.read_bytes()[:-9])
    (tmp_path / "garbage.onnx").write_bytes(np.random.default_rng(1).bytes(4096))
    rc, out, err = cli("inspect", *args)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("trtdbg: error: ") and "Traceback" not in err
    expected = {
        "missing": "not found",
        "truncated": "not a valid ONNX file",
        "garbage": "not a valid ONNX file",
        "unknown_op": "NotAnOp",
        "custom_domain": "acme.ops",
        "bad_show": "unknown --show value 'nodes'",
        "stray_word": "--show layers",
        "reserved": "does not exist",
    }[case]
    assert expected in err


def test_allow_unsupported_inspects_custom_ops(tmp_path: Path, cli) -> None:
    path = _save(tmp_path, op="Foo", domain="acme.ops", opsets={"acme.ops": 1})
    rc, _, err = cli("inspect", str(path))
    assert rc == 2 and "--allow-unsupported" in err
    rc, out, _ = cli("inspect", str(path), "--allow-unsupported", "--show", "layers")
    assert rc == 0 and "/blk/add [Op: Foo]" in out and "Other Opsets: {'acme.ops': 1}" in out


@pytest.mark.slow
def test_subprocess_exit_codes(tmp_path: Path) -> None:
    good = _save(tmp_path)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(good.read_bytes()[:30])
    cmd = [sys.executable, "-m", "tui.cli.main", "inspect"]
    ok = subprocess.run([*cmd, str(good), "--json"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert ok.returncode == 0 and json.loads(ok.stdout)["outputs"][0]["name"] == "y"
    fail = subprocess.run([*cmd, str(bad)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert fail.returncode == 2 and fail.stdout == ""
    assert fail.stderr.count("\n") == 1 and "bad.onnx" in fail.stderr and "Traceback" not in fail.stderr


def test_external_data_dir(tmp_path: Path, cli) -> None:
    model = onnx.load(_save(tmp_path))
    path = tmp_path / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, location="ext.bin", size_threshold=0)
    elsewhere = tmp_path / "weights"
    elsewhere.mkdir()
    (tmp_path / "ext.bin").rename(elsewhere / "ext.bin")
    rc, out, _ = cli("inspect", str(path))  # no weights shown: the data file is not needed
    assert rc == 0 and "---- 1 Initializer(s) ----" in out
    rc, _, err = cli("inspect", str(path), "--show", "weights")
    assert rc == 2 and "ext.bin" in err and "--external-data-dir" in err
    rc, out, _ = cli("inspect", str(path), "--show", "weights", "--external-data-dir", str(elsewhere))
    assert rc == 0 and "Initializer | w [dtype=float32, shape=[1, 4]] | Values:\n    [[1. 1. 1. 1.]]" in out


def test_shape_inference_failure_is_a_warning(tmp_path: Path, cli) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r"), helper.make_node("Neg", ["a"], ["y"], name="n")]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        value_info=[helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3, 4])],
    )
    path = tmp_path / "si.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    rc, out, err = cli("inspect", str(path), "--show", "layers")
    assert rc == 0 and "Node 1    | n [Op: Neg]" in out
    assert err.startswith("trtdbg: warning: shape inference failed (") and err.count("\n") == 1
    rc, _, err = cli("inspect", str(path))  # no layers: no inference, no warning
    assert rc == 0 and err == ""
