"""The app's issue-13 fixes and new views, headless (``App.run_test`` + Pilot): one test per behaviour.

Fake compare jobs (``engine_core.comparator.request.execute`` replaced) give fixed results fast; the model
is a real generated chain. Assertions are on app state and on the rendered screen text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import onnx
import pytest

from engine_core.cells import cell_width, elide_middle
from engine_core.model.synthetic import chain_model
from tests.test_tui_app import _clean_env, _fake_result, compare_now, loaded, screen_text, settle, tree  # noqa: F401

pytest.importorskip("textual")

from tui.app import TrtdbgApp
from tui.headless import jump
from tui.screens.common import HelpScreen
from tui.screens.compare_dialog import CompareDialog, CompareForm
from tui.widgets.compare_panel import short_label
from tui.widgets.error_plot import ErrorPlot
from tui.widgets.error_table import ErrorTable

SIZE = (120, 40)


def _fake_compare(monkeypatch, results, subject="ort-cuda"):
    """Replace the engine's compare by one that streams ``results`` and returns their report."""
    from engine_core.comparator import request as request_module
    from engine_core.comparator.engine import CompareSummary
    from engine_core.comparator.report import CompareReport

    def fake_execute(request, events):
        summary = CompareSummary()
        for r in results:
            summary.note(r)
            events.item(r)
        return CompareReport("ort", subject, list(results), summary)

    monkeypatch.setattr(request_module, "execute", fake_execute)


def _renamed(r, name: str, dtype: str | None = None):
    r.slot.name = r.slot.subject_name = name
    if dtype:
        r.stats.dtype = r.stats.ref_dtype = dtype
    return r


@pytest.fixture
def chain(tmp_path):
    path = tmp_path / "chain.onnx"
    onnx.save(chain_model(40, ops=("Add",)), path)
    return path


async def _run_compare(app, pilot) -> None:
    await loaded(app, pilot)
    await compare_now(app, pilot)


@asynccontextmanager
async def _compared(monkeypatch, model, tmp_path, results, size=SIZE) -> AsyncIterator[tuple[TrtdbgApp, Any]]:
    """The app on ``model``, run (at ``size``) until a compare that streams ``results`` finished."""
    _fake_compare(monkeypatch, results)
    app = TrtdbgApp(model, workspace=str(tmp_path / "ws"), compare=CompareForm(subject="ort"))
    async with app.run_test(size=size) as pilot:
        await _run_compare(app, pilot)
        yield app, pilot


# ---------------------------------------------------------------------- bug 2: search in a paged tree
async def test_search_moves_cursor_into_a_collapsed_page(tmp_path) -> None:
    path = tmp_path / "flat.onnx"
    onnx.save(chain_model(2005, scoped=False, ops=("Add", "Relu", "Tanh")), path)
    app = TrtdbgApp(path, workspace=str(tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        t = tree(app)
        await pilot.press("j", "l", "h")  # expand, then collapse "nodes 0–999"
        assert t.cursor_node.data.kind == "page" and not t.cursor_node.is_expanded
        await pilot.press("slash", *"Tanh", "enter")
        await settle(app, pilot)
        scr = app.main_screen
        assert scr.current_node() == scr.hits[0] == 2 and t.cursor_node.data.label == "Tanh_2"
        await pilot.press("n")
        assert scr.current_node() == 5 and t.cursor_node.data.label == "Tanh_5"


# ---------------------------------------------------------------------- bug 3: subject label
def test_short_label_drops_directories_only_from_file_paths() -> None:
    emulated = "ort:fp16 (FP16/BF16 storage rounding emulated)"
    assert short_label(emulated) == emulated
    assert short_label("model:/data/models/m_fp16.onnx") == "model:m_fp16.onnx"
    assert short_label("trt:/x/y/engine.plan") == "trt:engine.plan"


# ---------------------------------------------------------------------- bug 4, 10, 11: dialogs
async def test_surgeon_dialogs_take_typing_at_once_and_show_their_own_keys(chain, tmp_path) -> None:
    app = TrtdbgApp(chain, workspace=str(tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await pilot.press("z")  # sanitize
        await pilot.pause()
        await pilot.press(*"input:1x64")
        assert app.screen.query_one("#shapes").value == "input:1x64"
        text = screen_text(app)
        assert "input shapes " in text and "input shapesoptional" not in text  # bug 10
        footer = text.splitlines()[-1]
        assert "Cancel" in footer and "Run" in footer and "Compare" not in footer and "Bisect" not in footer
        await pilot.press("escape")
        await jump(app, pilot, 3)
        await pilot.press("x")  # extract: typing goes to the inputs field
        await pilot.pause()
        await pilot.press("end", *"zz")
        assert app.screen.query_one("#inputs").text.endswith("zz")
        await pilot.press("escape")
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, CompareDialog)
        footer = screen_text(app).splitlines()[-1]
        assert "Run" in footer and "Mark" not in footer


# ---------------------------------------------------------------------- bug 6: wide characters
async def test_cjk_and_emoji_names_keep_the_table_aligned(chain, tmp_path, monkeypatch) -> None:
    names = ["/模型/注意力/MatMul_output_0", "/blk/🔥fire/Add_output_0", "/plain/Add_output_0"]
    results = [_renamed(_fake_result(k, failing=k == 1), n) for k, n in enumerate(names)]
    async with _compared(monkeypatch, chain, tmp_path, results) as (app, pilot):
        table = app.main_screen.query_one(ErrorTable)
        rows = [table.render_line(y).text for y in range(1, 4)]
        assert [cell_width(r.rstrip()) for r in rows] == [cell_width(rows[0].rstrip())] * 3
        assert rows[0].rstrip().endswith("PASS") and rows[1].rstrip().endswith("FAIL")
    from engine_core.comparator.engine import CompareSummary
    from engine_core.comparator.report import CompareReport

    report = CompareReport("ort", "ort", results, CompareSummary())
    lines = [ln for ln in report.to_text(show_all=True).splitlines() if ln.lstrip()[:1].isdigit()]
    ends = {cell_width(ln[: ln.index(" PASS") if " PASS" in ln else ln.index(" FAIL")]) for ln in lines}
    assert len(lines) == 3 and len(ends) == 1


def test_elide_middle_keeps_what_tells_names_apart() -> None:
    a = elide_middle("/bert/embeddings/word_embeddings/Gather_output_0", 26)
    b = elide_middle("/bert/embeddings/position_embeddings/Gather_output_0", 26)
    assert a != b and a.endswith("Gather_output_0") and b.endswith("Gather_output_0")
    assert "word" in a and "posi" in b and cell_width(a) <= 26
    assert elide_middle("/model/layers.11/self_attn/q_proj/MatMul_output_0", 34) == "/m/l.11/s/q_proj/MatMul_output_0"
    assert cell_width(elide_middle("/模型/注意力/很长的名字/MatMul_output_0", 20)) <= 20


# ---------------------------------------------------------------------- bug 7: failing-only on all-pass
async def test_failing_only_on_an_all_pass_result_says_so(chain, tmp_path, monkeypatch) -> None:
    async with _compared(monkeypatch, chain, tmp_path, [_fake_result(k, failing=False) for k in range(4)]) as (
        app,
        pilot,
    ):
        app.main_screen.query_one(ErrorTable).focus()
        await pilot.press("f")
        text = screen_text(app)
        assert "no failing tensor among the 4 compared" in text and "waiting for the first results" not in text


# ---------------------------------------------------------------------- bug 8, 9: bisection texts
def test_user_verdict_shows_no_measured_error_and_no_dangling_constraints() -> None:
    from tui.screens.bisect import _measured

    assert _measured({"judged_by": "user", "max_abs": 0.0}, "max_abs") == "–"
    assert _measured({"judged_by": "compare", "max_abs": 0.5}, "max_abs") == "5.00e-01"


def test_layer_precisions_without_culprits_is_just_the_builder_flag() -> None:
    from engine_core.model.synthetic import chain_model as chain
    from engine_core.precision.plan import PrecisionPlan
    from engine_core.precision.rules import Analysis

    analysis = Analysis(chain(6, ops=("Relu",)))
    assert PrecisionPlan("fp16").layer_precisions(analysis) == "--fp16"  # no dangling --precision-constraints
    with_culprit = PrecisionPlan("fp16", {"/blk.0/layer.2/Relu": "fp32"}).layer_precisions(analysis)
    assert with_culprit.startswith("--fp16 --precision-constraints obey --layer-precisions /blk.0/layer.2/Relu:")


# ---------------------------------------------------------------------- bug 12: help lists ctrl+c once
async def test_help_lists_ctrl_c_once(chain, tmp_path) -> None:
    app = TrtdbgApp(chain, workspace=str(tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        ctrl_c = [desc for keys, desc, _ in app.screen.rows if "ctrl+c" in keys.split(", ") or keys == "^c"]
        assert ctrl_c == ["Cancel job"]


# ---------------------------------------------------------------------- jump keys
async def test_jump_keys_first_nan_next_previous_failing_and_float_only(chain, tmp_path, monkeypatch) -> None:
    results = [_fake_result(k, failing=k in (3, 6, 9)) for k in range(12)]
    _renamed(results[3], results[3].slot.name, dtype="int64")  # the first failing tensor is an integer one
    results[9].stats.nan = 4
    async with _compared(monkeypatch, chain, tmp_path, results) as (app, pilot):
        scr = app.main_screen
        table = scr.query_one(ErrorTable)
        index = scr.view.index
        jumps = [  # key, the result it lands on, whether the tree's cursor is checked too
            ("F", 3, False),
            ("ctrl+f", 6, True),
            ("I", 9, False),
            ("left_square_bracket", 6, False),
            ("left_square_bracket", 3, True),
            ("right_square_bracket", 6, False),
        ]
        for key, k, tree_too in jumps:
            await pilot.press(key)
            assert table.current is results[k], key
            assert not tree_too or scr.current_node() == index.find(results[k].slot.node), key


# ---------------------------------------------------------------------- marks: undo
async def test_clear_marks_can_be_undone(chain, tmp_path) -> None:
    app = TrtdbgApp(chain, workspace=str(tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        marks = app.main_screen.view.marks
        await pilot.press("M")
        before = marks.ordered()
        await pilot.press("C")
        assert len(marks) == 0
        await pilot.press("u")
        assert marks.ordered() == before
        await pilot.press("u")  # redo the clear
        assert len(marks) == 0


# ---------------------------------------------------------------------- error along the graph
async def test_plot_moves_table_and_tree_and_marks_first_failing(chain, tmp_path, monkeypatch) -> None:
    results = [_fake_result(k, failing=k in (7, 20)) for k in range(30)]
    results[20].stats.inf = 2
    async with _compared(monkeypatch, chain, tmp_path, results) as (app, pilot):
        scr = app.main_screen
        plot = scr.query_one(ErrorPlot)
        table = scr.query_one(ErrorTable)
        assert plot.display and len(plot.results) == 30
        marker = plot.render_line(plot.size.height - 1).text
        assert marker[8 + 7] == "F" and marker[8 + 20] == "N"
        await pilot.press("e", "e")  # tree -> table -> plot
        assert plot.has_focus
        await pilot.press("l", "l", "l")
        assert plot.cursor == 3 and table.current is results[3]
        assert scr.current_node() == scr.view.index.find(results[3].slot.node)
        await pilot.press("m")
        assert plot.metric == "mean_abs" and "mean abs error" in screen_text(app)
        table.move_to(results[20])  # the table's cursor moves the plot's
        await pilot.pause()
        assert plot.cursor == 20


async def test_plot_stays_cheap_at_20k_tensors(chain, tmp_path, monkeypatch) -> None:
    """20k results: one data update and one cursor move render in bounded work (CPU time, not wall time)."""
    import time

    results = [_fake_result(k, failing=k % 997 == 0) for k in range(20_000)]
    async with _compared(monkeypatch, chain, tmp_path, results) as (app, pilot):
        plot = app.main_screen.query_one(ErrorPlot)
        assert len(plot.results) == 20_000 and plot._layout()["cols"] == plot.size.width - 8
        t0 = time.process_time()
        for _ in range(20):
            plot.action_move(1)
            for y in range(plot.size.height):
                plot.render_line(y)
        per_move = (time.process_time() - t0) / 20
        print(f"\n20k tensors: {per_move * 1e3:.2f} ms CPU per plot cursor move + repaint")
        assert plot.cursor == 20


# ---------------------------------------------------------------------- 100x30
async def test_small_terminal_keeps_quit_help_and_table_rows(chain, tmp_path, monkeypatch) -> None:
    async with _compared(
        monkeypatch, chain, tmp_path, [_fake_result(k, failing=k == 3) for k in range(30)], size=(100, 30)
    ) as (app, pilot):
        text = screen_text(app)
        footer = text.splitlines()[-1]
        assert "Quit" in footer and "Help" in footer
        rows = [ln for ln in text.splitlines() if "Op_output_0" in ln and ("PASS" in ln or "FAIL" in ln)]
        assert len(rows) >= 9


# ---------------------------------------------------------------------- browsing
async def test_constants_hidden_by_default_and_shown_on_O(tmp_path) -> None:
    from engine_core.model.demo import write_demo

    demo = write_demo(str(tmp_path / "ws"))
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        scr, t = app.main_screen, tree(app)
        index = scr.view.index
        const = next(i for i in range(len(index)) if index.op_type(i) == "Constant" and index.subgraph_of(i) is None)
        scope = scr.view.scopes.locate(const)
        await jump(app, pilot, scr.view.scopes.children(scope)[0].node_index or 0)
        labels = [c.data.label for c in t.node_for_path(scope).children]
        assert not any(index.op_type(c.data.node) == "Constant" for c in t.node_for_path(scope).children if c.data.node)
        await jump(app, pilot, const)  # a hidden Constant still opens where it belongs (e.g. from p: producer)
        assert scr.current_node() == const
        await pilot.press("O")
        assert scr.view.show_constants and scr.current_node() == const
        shown = [c.data.label for c in t.node_for_path(scope).children]
        assert len(shown) > len(labels)


async def test_scope_rows_come_before_flat_pages(tmp_path) -> None:
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Relu", ["x" if k == 0 else f"t{k - 1}"], [f"t{k}"], name=f"Relu_{k}") for k in range(1500)
    ]
    nodes.append(helper.make_node("Relu", ["t1499"], ["y"], name="/encoder/layer.0/Relu"))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    path = tmp_path / "mixed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    app = TrtdbgApp(path, workspace=str(tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        kinds = [c.data.kind for c in tree(app).root.children]
        assert kinds[0] == "scope" and kinds[1:] == ["page", "page"]


async def test_real_shapes_replace_symbolic_ones_after_a_compare(tmp_path, monkeypatch) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="/blk/Relu")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["unk__77", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["unk__77", 4])],
    )
    path = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    r = _renamed(_fake_result(0, failing=False), "y")
    r.slot.node = "/blk/Relu"
    r.stats.shape = (3, 4)
    _fake_compare(monkeypatch, [r])
    app = TrtdbgApp(path, workspace=str(tmp_path / "ws"), compare=CompareForm(subject="ort"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        assert "unk__77" in app.main_screen.view.shape_text("y")
        await compare_now(app, pilot)
        assert app.main_screen.view.shape_text("y") == "f32[3,4]"


# ---------------------------------------------------------------------- compare status
async def test_status_names_unmatched_tensors_and_precision_coverage(chain, tmp_path, monkeypatch) -> None:
    from engine_core.comparator import request as creq
    from engine_core.comparator.engine import CompareSummary
    from engine_core.comparator.matching import Unmatched
    from engine_core.comparator.report import CompareReport

    def fake_execute(request, events):
        r = _fake_result(0, failing=False)
        events.item(r)
        summary = CompareSummary()
        summary.note(r)
        return CompareReport(
            "ort",
            "ort:fp16",
            [r],
            summary,
            unmatched=[Unmatched("/blk.0/layer.5/Op_output_0", "absent from the subject", False)],
            coverage_text="precision coverage: fp16 on 30 of 40 nodes; kept fp32: 10 shape sub-graph",
        )

    monkeypatch.setattr(creq, "execute", fake_execute)
    app = TrtdbgApp(chain, workspace=str(tmp_path / "ws"), compare=CompareForm(subject="ort"))
    async with app.run_test(size=SIZE) as pilot:
        await _run_compare(app, pilot)
        text = screen_text(app)
        assert "not compared, no counterpart:" in text and "/blk.0/layer.5/Op_output_0" in text
        assert "precision coverage: fp16 on 30 of 40 nodes" in text


# ---------------------------------------------------------------------- surgeon prefill
async def test_extract_starts_from_the_cursor_node_then_the_first_failing(chain, tmp_path, monkeypatch) -> None:
    async with _compared(monkeypatch, chain, tmp_path, [_fake_result(k, failing=k == 5) for k in range(8)]) as (
        app,
        pilot,
    ):
        await pilot.press("M")  # many marks: they no longer decide the prefill
        await jump(app, pilot, 2)
        await pilot.press("x")
        await pilot.pause()
        assert app.screen.outputs == ["/blk.0/layer.2/Add_output_0:float32"]
        assert app.screen.inputs == ["/blk.0/layer.1/Add_output_0:1x64:float32"]
        await pilot.press("escape", "g", "x")  # no node under the cursor: the first failing node
        await pilot.pause()
        assert app.screen.outputs == ["/blk.0/layer.5/Add_output_0:float32"]
        assert "first failing node" in screen_text(app)
