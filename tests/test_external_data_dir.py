"""``--external-data-dir DIR`` on every command that loads an ONNX model: a model saved with its weights in a data
file, the data file moved to another folder. With the option the command reads the weights there (the results are
those of the model with its data beside it); without it the command fails in one line (exit 2) naming the option."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from engine_core.model.synthetic import small_cnn_model
from tests.graphs import weighted_model


def _save_external(model: onnx.ModelProto, folder: Path) -> tuple[Path, Path]:
    """``model`` saved as ``folder/m.onnx`` with every weight in ``m.data``, that file moved to ``folder/weights/``;
    returns (model path, weights folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "m.onnx"
    onnx.save(model, path, save_as_external_data=True, location="m.data", size_threshold=0)
    weights = folder / "weights"
    weights.mkdir()
    (folder / "m.data").rename(weights / "m.data")
    return path, weights


@pytest.fixture
def moved(tmp_path: Path) -> tuple[Path, Path]:
    return _save_external(small_cnn_model(), tmp_path / "moved")


def _missing(cli, *args: str | Path) -> None:
    rc, _, err = cli(*args)
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "m.data" in err and "--external-data-dir" in err


def _compare_stats(cli, model: Path, subject: str, ws: Path, *extra: str | Path) -> dict[str, float]:
    rc, out, err = cli(
        "compare", model, "--subject", subject, "--mark", "all", "--atol", "0.5", "--rtol", "1e9",
        "--json", "--quiet", "--workspace", ws, *extra,
    )  # fmt: skip
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["passed"]
    return {t["name"]: t["max_abs"] for t in doc["tensors"]}


@pytest.mark.parametrize("subject", ["ort:fp16", "ort:int8"])
def test_compare_reads_reference_and_emulated_subject_weights_from_the_folder(
    cli, tmp_path: Path, moved: tuple[Path, Path], subject: str
) -> None:
    path, weights = moved
    beside = tmp_path / "beside"
    beside.mkdir()
    shutil.copy(path, beside / "m.onnx")
    shutil.copy(weights / "m.data", beside / "m.data")
    expected = _compare_stats(cli, beside / "m.onnx", subject, tmp_path / "ws1")
    got = _compare_stats(cli, path, subject, tmp_path / "ws2", "--external-data-dir", weights)
    assert len(got) == 11 and got == expected  # the same weights on both sides: the same errors, tensor by tensor
    assert any(v > 0 for v in got.values())  # the subject really ran in low precision
    _missing(cli, "compare", path, "--subject", subject, "--mark", "all", "--workspace", tmp_path / "ws3")


def test_bisect_reads_weights_from_the_folder(cli, tmp_path: Path, moved: tuple[Path, Path]) -> None:
    path, weights = moved
    ws = tmp_path / "ws"
    rc, out, err = cli("bisect", path, "--external-data-dir", weights, "--workspace", ws, "--json", "--quiet")
    assert rc == 0, err
    result = json.loads(out)
    assert result["passed"] and result["finished"] and Path(result["plan"]).is_file()
    rc, out, err = cli("bisect", path, "--resume", "--external-data-dir", weights, "--workspace", ws, "--json")
    assert rc == 0 and json.loads(out)["passed"], err
    _missing(cli, "bisect", path, "--workspace", tmp_path / "ws2")


def test_convert_reads_weights_from_the_folder(cli, tmp_path: Path, moved: tuple[Path, Path]) -> None:
    path, weights = moved
    out = tmp_path / "out" / "fp16.onnx"
    rc, _, err = cli("convert", path, "-o", out, "--precision", "fp16", "--external-data-dir", weights)
    assert rc == 0, err
    converted = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
    original = small_cnn_model()
    for t in original.graph.initializer:
        np.testing.assert_array_equal(converted[f"{t.name}__fp16"], numpy_helper.to_array(t).astype(np.float16))
    rc, _, err = cli("convert", path, "-o", tmp_path / "x.plan", "--external-data-dir", weights)
    assert rc == 2 and "TensorRT reads external data beside the model" in err and len(err.strip().splitlines()) == 1
    _missing(cli, "convert", path, "-o", tmp_path / "out2.onnx", "--precision", "fp16")


def test_lint_reads_weights_from_the_folder(cli, tmp_path: Path) -> None:
    w = numpy_helper.from_array(np.array([[1e6, 1.0], [1.0, 1.0]], np.float32), "w")
    path, weights = _save_external(weighted_model("MatMul", w, [2, 2]), tmp_path)
    rc, out, err = cli("check", "lint", path, "--external-data-dir", weights, "--json")
    assert rc == 0, err
    findings = json.loads(out)["findings"]
    assert [f["tensor"] for f in findings if "65504" in f["message"]] == ["w"]  # the value is read from the folder
    _missing(cli, "check", "lint", path)


def test_bench_reads_weights_from_the_folder(cli, moved: tuple[Path, Path]) -> None:
    path, weights = moved
    args = ("bench", path, "--runs", "2", "--warmup", "0", "--json")
    rc, out, err = cli(*args, "--layer-times", "--layer-runs", "1", "--external-data-dir", weights)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["runs"] == 2 and any(layer["op"] == "Conv" for layer in doc["layers"])
    _missing(cli, *args)


async def test_app_compare_and_bisect_read_weights_from_the_folder(tmp_path: Path, moved: tuple[Path, Path]) -> None:
    from tui.app import TrtdbgApp
    from tui.headless import settle
    from tui.messages import CompareFinished
    from tui.screens.bisect import BisectScreen
    from tui.screens.compare_dialog import CompareForm

    path, weights = moved
    form = CompareForm(subject="ort:fp16", what="all")
    app = TrtdbgApp(str(path), workspace=str(tmp_path / "ws"), compare=form, external_data_dir=str(weights))
    msgs: list = []
    async with app.run_test(size=(120, 40), message_hook=msgs.append) as pilot:
        for _ in range(2):
            await settle(app, pilot)
        assert app.main_screen is not None and app.main_screen.view.index is not None
        app.main_screen.start_compare(form)
        await settle(app, pilot)
        finished = [m for m in msgs if isinstance(m, CompareFinished)]
        assert len(finished) == 1 and finished[0].error is None, finished[0].error
        assert finished[0].report.summary.compared == 11
        await pilot.press("b")
        await settle(app, pilot)
        scr = app.screen
        assert isinstance(scr, BisectScreen)
        await pilot.press("ctrl+s")  # fp16, CPU emulation: the baseline reads the weights
        await settle(app, pilot)
        await pilot.press("R")  # run to the end
        await settle(app, pilot)
        assert scr.last_error is None and scr.state["finished"] and scr.state["passed"]
