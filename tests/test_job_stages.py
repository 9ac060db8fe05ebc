"""Long preparations report their stages (issue 11): a compare says what it prepares — loading, input data
sample k/N, rewriting the precision subject, building ONNX Runtime sessions — through JobEvents.stage; the
app's compare status line and the CLI's progress line show them."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import onnx
import pytest

from engine_core.comparator.request import CompareRequest, execute
from engine_core.jobs import CancelToken, JobEvents, Stage
from engine_core.model.synthetic import chain_model
from engine_core.options import DataOptions
from tests.test_tui_app import SIZE, loaded, screen_text, settle
from tui.app import TrtdbgApp
from tui.cli.progress import CliJob, ProgressBar
from tui.screens.compare_dialog import CompareForm


def _assert_in_order(seen: list[str], expected: list[str]) -> None:
    """Each of ``expected`` starts some line of ``seen``, and the first such lines come in this order."""
    positions = [next((k for k, s in enumerate(seen) if s.startswith(e)), -1) for e in expected]
    assert -1 not in positions, f"missing {[e for e, p in zip(expected, positions) if p < 0]} in {seen}"
    assert positions == sorted(positions), seen


def test_stage_text() -> None:
    assert str(Stage("loading m.onnx")) == "loading m.onnx"
    assert (
        str(Stage("rewriting the model (ort:fp16)", 7689, None, "nodes"))
        == "rewriting the model (ort:fp16): 7,689 nodes"
    )
    assert str(Stage("building ONNX Runtime session", 1, 2)) == "building ONNX Runtime session 1/2"
    assert str(Stage("generating input data", 3, 10, "sample")) == "generating input data: sample 3/10"


def test_a_precision_compare_reports_its_preparation_in_order(tmp_path: Path) -> None:
    path = tmp_path / "chain.onnx"
    onnx.save(chain_model(40, ops=("Add", "Relu")), path)
    seen: list[str] = []
    request = CompareRequest(
        model=str(path),
        subject="ort:fp16",
        workspace=str(tmp_path / "ws"),
        marks=["all"],
        data=DataOptions(iterations=2),
    )
    report = execute(request, JobEvents(on_stage=lambda s: seen.append(str(s))))
    assert report.summary.compared > 0
    expected = [
        "loading chain.onnx",
        "choosing the tensors to compare: 40 nodes",
        "preparing the reference (ort)",
        "preparing the subject (ort:fp16)",
        "choosing input shapes",
        "generating input data: sample 1/2",
        "generating input data: sample 2/2",
        "starting ort 1/2",
        "rewriting the model (ort:fp16): 40 nodes",
        "building ONNX Runtime session (ort):",
        "building ONNX Runtime session (ort:fp16):",
    ]
    _assert_in_order(seen, expected)


def test_cli_shows_stages_on_the_progress_line(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    bar = ProgressBar(enabled=True)
    bar.stage(Stage("building ONNX Runtime session (ort)", 440, None, "outputs"))
    bar.stage(Stage("loading m.onnx"))
    bar.close()
    out = err.getvalue()
    assert "\rbuilding ONNX Runtime session (ort): 440 outputs…" in out
    assert "\rloading m.onnx…" in out  # padded over the longer line before it
    assert out.endswith("\r")
    quiet = CliJob(quiet=True).events  # --quiet (and a non-terminal stderr): nothing drawn
    err.truncate(0)
    quiet.stage("loading m.onnx")
    assert err.getvalue() == ""


async def test_stage_events_reach_the_compare_status_line(tmp_path, monkeypatch) -> None:
    """A fake job reports two stages and waits between them; the status line shows each while it lasts."""
    from engine_core.comparator import request as request_module
    from engine_core.comparator.engine import CompareSummary
    from engine_core.comparator.report import CompareReport

    path = tmp_path / "chain.onnx"
    onnx.save(chain_model(30, ops=("Add",)), path)
    step = [threading.Event(), threading.Event()]
    reported = [threading.Event(), threading.Event()]

    def fake_execute(request, events):
        events.stage("rewriting the model (ort:fp16)", 7689, None, "nodes")
        reported[0].set()
        assert step[0].wait(30)
        events.stage("building ONNX Runtime session", 1, 2)
        reported[1].set()
        assert step[1].wait(30)
        return CompareReport("ort", "ort:fp16", [], CompareSummary())

    monkeypatch.setattr(request_module, "execute", fake_execute)
    app = TrtdbgApp(path, workspace=str(tmp_path / "ws"), compare=CompareForm(subject="ort"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await pilot.press("r", "ctrl+s")
        for k, text in enumerate(
            ("preparing: rewriting the model (ort:fp16): 7,689 nodes…", "preparing: building ONNX Runtime session 1/2…")
        ):
            assert reported[k].wait(10)
            for _ in range(60):  # the 4 Hz flush redraws the status line
                await pilot.pause(0.05)
                if text in screen_text(app):
                    break
            assert text in screen_text(app)
            step[k].set()
        await settle(app, pilot)
        assert "preparing:" not in screen_text(app)


def test_a_bisection_reports_its_start_up(tmp_path: Path) -> None:
    from engine_core.precision.bisect import BisectOptions, BisectSession
    from tests.precision_models import planted_chain

    path = tmp_path / "chain.onnx"
    onnx.save(planted_chain(24, 9), path)
    seen: list[str] = []
    options = BisectOptions(model=str(path), workspace=str(tmp_path / "ws"), data=DataOptions(iterations=2))
    cancel = CancelToken()
    events = JobEvents(on_stage=lambda s: seen.append(str(s)), on_item=lambda _: cancel.cancel(), cancel=cancel)
    BisectSession(options, events=events).start().run()  # start-up, then one step (a built candidate)
    expected = [
        "loading chain.onnx",
        "analysing the nodes:",
        "choosing input shapes",
        "generating input data: sample 1/2",
        "generating input data: sample 2/2",
        "building ONNX Runtime session (",
    ]
    _assert_in_order(seen, expected)
