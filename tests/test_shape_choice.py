"""The one shape policy: guessed input dims checked by running the model, other guesses on failure (bounded), the
choice cached in the workspace, one line when nothing runs, and the same rules in compare, convert and template."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine_core.backend.ort import OrtRunner
from engine_core.data.shape_choice import CACHE_FILE, MAX_ATTEMPTS, choose_shapes
from engine_core.errors import TrtdbgError
from engine_core.workspace import Workspace
from tests.conftest import shared_model
from tui.cli.main import main


def _lstm_model() -> onnx.ModelProto:
    """A bidirectional LSTM whose initial state input is ``state: [2, ?, 128]`` (anonymous batch between fixed dims)."""
    rng = np.random.default_rng(0)
    hidden, feat = 128, 16
    w = numpy_helper.from_array((rng.standard_normal((2, 4 * hidden, feat)) * 0.1).astype(np.float32), "W")
    r = numpy_helper.from_array((rng.standard_normal((2, 4 * hidden, hidden)) * 0.1).astype(np.float32), "R")
    g = helper.make_graph(
        [
            helper.make_node(
                "LSTM", ["x", "W", "R", "", "", "state"], ["y"], "lstm", hidden_size=hidden, direction="bidirectional"
            )
        ],
        "vad_lstm",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", 1, feat]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, None, hidden]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w, r],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _metas(path):
    return OrtRunner(onnx.load(path), path).input_metadata()


def test_lstm_state_gets_batch_one_after_default_fails_and_is_cached(save_model, tmp_path):
    path = save_model(_lstm_model(), "lstm.onnx")
    ws = Workspace(tmp_path / "ws")
    choice = choose_shapes(_metas(path), (), path, workspace=ws)
    assert choice.shapes == {"x": (128, 1, 16), "state": (2, 1, 128)}
    assert [t for t, _ in choice.tried] == [{"x": (128, 1, 16), "state": (2, 128, 128)}]
    assert "state:2x1x128" in choice.note() and "failed with" in choice.note()
    assert (tmp_path / "ws" / CACHE_FILE).exists()

    def never(shapes):
        raise AssertionError("the cached choice must not run the model again")

    again = choose_shapes(_metas(path), (), path, workspace=ws, run=never)
    assert again.cached and again.shapes == choice.shapes


def test_compare_runs_the_lstm_with_chosen_shapes(save_model, capsys):
    path = save_model(_lstm_model(), "lstm.onnx")
    assert main(["compare", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert "state:2x1x128" in doc["data"]
    assert any("default input shapes chosen" in w for w in doc["warnings"])


def test_real_ppocrv4_rec_anonymous_height(tmp_path):
    path = shared_model("ppocrv4_rec.onnx")
    choice = choose_shapes(_metas(path), (), path, workspace=Workspace(tmp_path))
    assert choice.tried and choice.tried[0][0]["x"] == (1, 3, 224, 224)
    assert "Concat" in choice.tried[0][1] or "concat" in choice.tried[0][1]
    h = choice.shapes["x"][2]
    assert h != 224 and h % 16 == 0
    OrtRunner(onnx.load(path), path).infer({"x": np.zeros(choice.shapes["x"], np.float32)})


def test_nothing_runs_one_line_names_the_dims_and_the_fix(save_model, tmp_path):
    g = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], "to_7x13")],
        "needs_91",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n_points"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [7, 13])],
        [numpy_helper.from_array(np.array([7, 13], np.int64), "shape")],
    )
    path = save_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), "m.onnx")
    with pytest.raises(TrtdbgError) as err:
        choose_shapes(_metas(path), (), path, workspace=Workspace(tmp_path))
    text = str(err.value)
    assert "\n" not in text
    assert "x dim 0 ('n_points')" in text
    assert text.endswith("give their sizes with --shapes x:<n_points>")


def test_attempts_are_bounded():
    from engine_core.types import TensorMeta

    calls = []

    def fails(shapes):
        calls.append(shapes)
        return "no"

    metas = [TensorMeta("img", np.dtype(np.float32), (None, 3, None, None))]
    with pytest.raises(TrtdbgError, match=r"\(8 tried"):
        choose_shapes(metas, (), None, run=fails)
    assert len(calls) == MAX_ATTEMPTS
    assert calls[1]["img"] == (1, 3, 32, 224) and calls[2]["img"] == (1, 3, 224, 32)


def test_given_shapes_are_checked_the_same_in_convert_and_compare(save_model, capsys, tmp_path):
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], "relu")],
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    path = save_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), "fixed.onnx")
    for args in (
        ["convert", str(path), "-o", str(tmp_path / "x.plan"), "--shapes", "x:1x8"],
        ["compare", str(path), "--shapes", "x:1x8"],
    ):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "shape 1x8 for input 'x' does not match the model shape [1, 4]" in err
    assert not (tmp_path / "x.plan").exists()
