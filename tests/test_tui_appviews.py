"""The app's detail-pane histogram, restored compare and bisection, extract with real inputs (headless Pilot)."""

from __future__ import annotations

import math

import pytest

from tests.test_tui_app import _clean_env, compare_now, detail, loaded, screen_text, settle  # noqa: F401

pytest.importorskip("textual")

from engine_core.model.demo import write_demo
from tui.app import TrtdbgApp
from tui.cli.commands.demo import demo_form
from tui.widgets.error_table import ErrorTable

SIZE = (140, 50)


@pytest.fixture
def demo(tmp_path):
    return write_demo(str(tmp_path / "ws"))


async def _until(app, pilot, done, tries: int = 50) -> None:
    """Let timers fire and workers finish until ``done()`` (the detail fetch waits for the cursor to rest)."""
    for _ in range(tries):
        if done():
            return
        await pilot.pause(0.05)
        await settle(app, pilot)
    assert done()


async def test_detail_pane_shows_the_selected_tensors_error_histogram(demo) -> None:
    from engine_core.comparator.detail import tensor_detail

    app = TrtdbgApp(demo.model, workspace=str(demo.workspace), compare=demo_form(demo))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        scr = app.main_screen
        await compare_now(app, pilot)
        await pilot.press("F")
        panel = scr.panel
        r = panel.table.current
        assert r is not None and not r.stats.passed and r.stats.median_abs is None  # streaming: no order stats
        await _until(app, pilot, lambda: "absolute error histogram" in detail(app))
        got = panel.details[(r.slot.name, r.iteration)]
        want = tensor_detail(panel.request, r)
        assert got.abs_hist == want.abs_hist and got.rel_hist == want.rel_hist
        assert repr(got.stats) == repr(want.stats)  # NaN fields: equal as text
        assert sum(got.abs_hist.counts) + got.abs_hist.zeros + got.abs_hist.nonfinite == r.stats.size
        text = detail(app)
        assert "relative error histogram" in text
        assert ("absolute error quantiles" in text) == (not math.isnan(got.stats.median_abs))  # NaN: no quantiles
        assert any(ch in text for ch in "▁▂▃▄▅▆▇█") and "peak bin" in text
        # another row of the table: its own histogram, fetched on demand
        table = scr.query_one(ErrorTable)
        table.focus()
        await pilot.press("j")
        other = table.current
        assert other is not r
        await _until(app, pilot, lambda: (other.slot.name, other.iteration) in panel.details)
        await _until(app, pilot, lambda: "absolute error histogram" in detail(app))


async def test_successive_tensor_details_prepare_the_compare_once(demo, monkeypatch) -> None:
    from engine_core.comparator import detail as detail_module

    prepared: list[str] = []
    real = detail_module.prepare
    monkeypatch.setattr(
        detail_module, "prepare", lambda request, *a: prepared.append(request.model) or real(request, *a)
    )
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace), compare=demo_form(demo))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await compare_now(app, pilot)
        await pilot.press("F")
        panel = app.main_screen.panel
        table = app.main_screen.query_one(ErrorTable)
        table.focus()
        shown = []
        for _ in range(3):
            r = table.current
            await _until(app, pilot, lambda r=r: (r.slot.name, r.iteration) in panel.details)
            assert not isinstance(panel.details[(r.slot.name, r.iteration)], str)
            shown.append(r.slot.name)
            await pilot.press("j")
        assert len(set(shown)) == 3 and prepared == [str(demo.model)]  # three tensors, one preparation
        await compare_now(app, pilot)  # a new compare: its details prepare afresh
        await pilot.press("F")
        r = table.current
        await _until(app, pilot, lambda: (r.slot.name, r.iteration) in panel.details)
        assert prepared == [str(demo.model)] * 2


# ---------------------------------------------------------------------- reopening restores the last compare
async def test_reopen_restores_the_last_compare_stated_as_restored(demo) -> None:
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace), compare=demo_form(demo))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await compare_now(app, pilot)
        first = app.main_screen.panel.last_report
    assert first is not None and not first.passed
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace), compare=demo_form(demo))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await settle(app, pilot)
        scr = app.main_screen
        panel = scr.panel
        report = panel.last_report
        assert report is not None and panel.request is None
        assert (report.subject, report.summary.compared) == (first.subject, first.summary.compared)
        failing = [(r.slot.name, r.iteration) for r in first.results if not r.stats.passed]
        assert [(r.slot.name, r.iteration) for r in panel.table.row_results()] == failing
        text = screen_text(app)
        assert "restored, last compare of" in text and "ort:fp16" in text
        assert f"FAILED: {first.summary.failed}/{first.summary.compared}" in text
        ff = first.summary.first_failing
        assert scr.view.first_failing == scr.view.index.find(ff.slot.node)
        await pilot.press("F")  # the jump keys work on the restored results; no tensors to histogram
        assert panel.table.current.slot.name == ff.slot.name
        assert "r runs the comparison again to fetch the tensors" in detail(app)
        # a new compare replaces the restored one (and fetches histograms again)
        await compare_now(app, pilot)
        assert panel.request is not None and "restored" not in screen_text(app)


async def test_changed_model_is_not_restored_and_says_why(demo) -> None:
    import os

    app = TrtdbgApp(demo.model, workspace=str(demo.workspace), compare=demo_form(demo))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await compare_now(app, pilot)
    st = os.stat(demo.model)
    os.utime(demo.model, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace), compare=demo_form(demo))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await settle(app, pilot)
        assert app.main_screen.panel.last_report is None
        assert any("predates the current demo.onnx" in str(n.message) for n in app._notifications)


# ---------------------------------------------------------------------- reopening offers the saved bisection
def _saved_bisection(demo, atol: tuple[str, ...] = ("0.05",), steps: int = 2):
    from engine_core.options import ToleranceOptions
    from engine_core.precision.bisect import BisectOptions, BisectSession

    options = BisectOptions(
        model=str(demo.model),
        workspace=str(demo.workspace),
        data=demo_form(demo).data_options(),
        tolerances=ToleranceOptions(atol=atol),
    )
    session = BisectSession(options).start()
    for _ in range(steps):
        session.step(0)
    session.close()
    return options


async def test_reopen_offers_the_saved_bisection_and_resume_checks_options_like_the_cli(demo) -> None:
    from tui.screens.bisect import BisectScreen

    _saved_bisection(demo)
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace), compare=demo_form(demo))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await settle(app, pilot)
        offer = "an unfinished fp16 → fp32 bisection of this model (2 step(s)) is saved in the workspace: b, then c"
        assert any(offer in str(n.message) for n in app._notifications)
        await pilot.press("b")
        await settle(app, pilot)
        scr = app.screen
        assert isinstance(scr, BisectScreen)
        assert scr.query_one("#atol").value == "0.05"  # the set-up shows what a resume continues with
        # other tolerances than the saved ones: refused with the CLI's message, nothing resumed
        scr.query_one("#atol").value = "0.5"
        await pilot.press("c")
        await settle(app, pilot)
        assert scr.session is None and "started with other tolerance options" in (scr.last_error or "")
        scr.query_one("#atol").value = "0.05"
        from textual.widgets import Select

        scr.query_one("#precision", Select).value = "bf16"  # not a data/tolerance option: ignored, as the CLI does
        await pilot.press("c")
        await settle(app, pilot)
        assert scr.session is not None and len(scr.state["steps"]) == 2
        assert "ignoring precision bf16" in screen_text(app)


async def test_resume_refuses_other_data_like_the_cli(demo, tmp_path) -> None:
    from dataclasses import replace

    from engine_core.errors import TrtdbgError
    from engine_core.precision.bisect import BisectSession

    options = _saved_bisection(demo, steps=1)
    other = replace(options.data, seed=7)
    with pytest.raises(TrtdbgError) as cli_error:  # what `trtdbg bisect --resume --seed 7` says
        BisectSession.resume(options.model, options.workspace, data=other)
    form = replace(demo_form(demo), seed="7")
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace), compare=form)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await settle(app, pilot)
        await pilot.press("b")
        await settle(app, pilot)
        scr = app.screen
        await pilot.press("c")
        await settle(app, pilot)
        assert scr.session is None and scr.last_error == str(cli_error.value)


# ---------------------------------------------------------------------- scopes from '.' names
async def test_tree_groups_dotted_module_paths_and_marks_a_dotted_scope(tmp_path) -> None:
    import onnx

    from tests.test_model_scopes import _chain
    from tests.test_tui_app import child_labels, tree

    names = [f"bert.encoder.layer.{k // 2}.{'attention.self.query' if k % 2 else 'output.dense'}" for k in range(6)]
    path = tmp_path / "dotted.onnx"
    onnx.save(_chain(names + ["p2o.Add.0"]), path)
    app = TrtdbgApp(path, workspace=str(tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        t = tree(app)
        assert child_labels(t.root) == ["bert", "p2o.Add.0"]
        scr = app.main_screen
        scr.jump_to(3)  # bert.encoder.layer.1.attention.self.query
        await pilot.pause()
        assert t.cursor_node.data.label == "query"
        assert [n.data.label for n in t.cursor_node.parent.parent.parent.parent.children][:2] == ["layer.0", "layer.1"]
        await pilot.press("m")  # marks the scope bert/encoder/layer.1/attention/self
        await settle(app, pilot)
        assert scr.view.marks.ordered() == ["t3"]


# ---------------------------------------------------------------------- extract with the piece's real inputs
async def test_extract_saves_real_inputs_and_the_opened_piece_compares_on_them(demo) -> None:
    import numpy as np
    import onnx
    import onnxruntime as ort

    from engine_core.data.store import load_inputs
    from tui.screens.surgeon import ExtractDialog, SurgeryResultScreen

    app = TrtdbgApp(demo.model, workspace=str(demo.workspace), compare=demo_form(demo))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        scr = app.main_screen
        index = scr.view.index
        node = index.find("/blocks.0/attn/Softmax")
        scr.jump_to(node)
        await pilot.pause()
        await pilot.press("x")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ExtractDialog) and dialog.query_one("#save-inputs").value
        assert "from the full model on the saved inputs" in screen_text(app)  # the demo form's data
        out = dialog.query_one("#output").value
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert isinstance(app.screen, SurgeryResultScreen), scr.last_surgery_error
        outcome = scr.last_surgery
        saved = outcome.inputs_saved
        assert saved is not None and saved.exists() and str(saved) == out.replace(".onnx", "_inputs.json")
        text = screen_text(app)
        assert "compare the piece alone: trtdbg compare" in text
        # the piece's output computed from the saved inputs equals the full model's tensor
        (feed,) = load_inputs([str(saved)])
        (x_name,) = feed
        target = index.node_outputs(node)[0]
        (full_feed,) = load_inputs([str(demo.inputs)])
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        full = onnx.load(demo.model)
        full.graph.output.add().name = x_name
        full.graph.output.add().name = target
        ref_x, ref_y = ort.InferenceSession(full.SerializeToString(), so).run([x_name, target], full_feed)
        np.testing.assert_array_equal(feed[x_name], ref_x)
        (got,) = ort.InferenceSession(out, so).run([target], feed)
        np.testing.assert_array_equal(got, ref_y)
        # o opens the piece with its real inputs as the compare data; r compares it on them
        await pilot.press("o")
        await loaded(app, pilot)
        piece = app.main_screen
        assert piece.model_path == out and piece.form.data == "inputs" and piece.form.data_path == str(saved)
        await compare_now(app, pilot)
        report = piece.panel.last_report
        assert report is not None and report.summary.compared >= 1 and "demo_inputs" not in report.data


async def test_ctrl_c_drops_a_tensor_fetch_and_showing_it_again_fetches_again(tmp_path, monkeypatch) -> None:
    import threading

    import onnx

    from engine_core.comparator import detail as detail_module
    from engine_core.model.synthetic import chain_model
    from tests.test_tui_app import _fake_result
    from tests.test_tui_issue13 import _fake_compare, _renamed
    from tui.screens.compare_dialog import CompareForm

    path = tmp_path / "chain.onnx"
    onnx.save(chain_model(8, ops=("Add",)), path)
    results = [_renamed(_fake_result(k, failing=k == 3), f"/blk.0/layer.{k}/Add_output_0") for k in range(8)]
    _fake_compare(monkeypatch, results)
    release, calls = threading.Event(), []
    real = detail_module.DetailFetcher.detail

    def slow_detail(fetcher, r):
        calls.append(r.slot.name)
        release.wait(10)
        return real(fetcher, r)

    monkeypatch.setattr(detail_module.DetailFetcher, "detail", slow_detail)
    app = TrtdbgApp(path, workspace=str(tmp_path / "ws"), compare=CompareForm(subject="ort"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await compare_now(app, pilot)
        scr = app.main_screen
        scr.jump_to(3)
        for _ in range(40):
            if calls:
                break
            await pilot.pause(0.05)
        assert calls == ["/blk.0/layer.3/Add_output_0"] and "fetching the tensors" in detail(app)
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert any("cancelling" in str(n.message) for n in app._notifications)
        release.set()
        await settle(app, pilot)
        assert "fetch cancelled (ctrl+c)" in detail(app) and not scr.panel.details
        scr.jump_to(2)
        scr.jump_to(3)
        await _until(app, pilot, lambda: "absolute error histogram" in detail(app))
        assert calls[-1] == "/blk.0/layer.3/Add_output_0"
