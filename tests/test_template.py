"""``trtdbg template trt-network``: the generated script parses, takes an edit and builds with the TensorRT module
that imports here (TensorRT-RTX in CI, no GPU needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine_core.model.synthetic import small_cnn_model
from tui.cli.main import main

EDIT = "    # ==== EDIT BELOW: your changes to the network ="


@pytest.fixture(scope="module")
def module(trt_flavour) -> str:
    return trt_flavour.name


def _run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=script.parent,
    )


def test_script_edits_and_builds(module: str, save_model, tmp_path: Path) -> None:
    model = save_model(small_cnn_model(), "cnn.onnx")
    script = tmp_path / "net.py"
    assert main(["template", "trt-network", str(model), "-o", str(script), "--trt-module", module]) == 0
    text = script.read_text()
    assert f"import {module} as trt" in text and "'/relu1/Relu': ACTIVATION" in text and EDIT in text
    compile(text, str(script), "exec")
    text = text.replace(EDIT, '    network.mark_output(tensors["/relu1/Relu_output_0"])\n' + EDIT)
    script.write_text(text)
    done = _run(script, "-o", str(tmp_path / "net.plan"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{module} " in done.stdout and f"{len(small_cnn_model().graph.output) + 1} output(s)" in done.stdout
    assert (tmp_path / "net.plan").stat().st_size > 1000


def test_auto_module_and_dynamic_profile(module: str, tmp_path: Path, capsys) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "W")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], "g", [x], [y], [w])
    path = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    script = tmp_path / "dyn.py"
    assert main(["template", "trt-network", str(path), "-o", str(script)]) == 0  # the shapes compare would use
    assert "'x': ((1, 4), (1, 4), (1, 4))" in script.read_text()
    assert (
        main(
            [
                "template",
                "trt-network",
                str(path),
                "-o",
                str(script),
                "--trt-min-shapes",
                "x:1x4",
                "--trt-max-shapes",
                "x:8x4",
            ]
        )
        == 0
    )
    assert "try:\n    import tensorrt as trt" in script.read_text()
    done = _run(script)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "dyn.plan").exists()


def test_bad_input(tmp_path: Path, save_model, capsys) -> None:
    model = save_model(small_cnn_model(), "cnn.onnx")
    before = model.read_bytes()
    for args in (
        ["template", "trt-network", str(tmp_path / "none.onnx"), "-o", str(tmp_path / "s.py")],
        ["template", "trt-network", str(model), "-o", str(model)],
    ):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("trtdbg: error: ") and err.count("\n") == 1
    assert model.read_bytes() == before
