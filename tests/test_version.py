"""`trtdbg --version`: trtdbg's version and those of onnx, onnxruntime and any TensorRT module found."""

from __future__ import annotations

import importlib.metadata
import importlib.util

import onnx

from tui.cli.main import main


def test_version_lists_trtdbg_onnx_onnxruntime_and_tensorrt(capsys) -> None:
    assert main(["--version"]) == 0
    out, err = capsys.readouterr()
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert err == "" and lines["trtdbg"] == importlib.metadata.version("trtdbg")
    assert lines["onnx"] == onnx.__version__ and lines["onnxruntime"].split()[0][0].isdigit()
    for module in ("tensorrt", "tensorrt_rtx"):
        assert (module in lines) == (importlib.util.find_spec(module) is not None)
