"""The Textual app, headless (``App.run_test`` + Pilot): open, navigate, search, jump, detail, marks,
compare (real ORT run on the demo model, and a fake blocking job for cancel), 100k-node model, real models.

Assertions are on app state and rendered text, never on sleeps: workers are awaited with
``app.workers.wait_for_complete()``.
"""

from __future__ import annotations

import gc
import html
import json
import re
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import helper
from rich.text import Text

from engine_core.model.demo import write_demo
from engine_core.model.synthetic import chain_model
from tests.conftest import SHARED_MODELS
from tests.graphs import branch, if_model
from tui.app import TrtdbgApp
from tui.cli.commands.demo import demo_form
from tui.headless import jump, settle
from tui.screens.common import HelpScreen, PickScreen
from tui.screens.compare_dialog import CompareDialog, CompareForm
from tui.widgets.detail import DetailPane
from tui.widgets.error_table import ErrorTable
from tui.widgets.graph_tree import PAGE, GraphTree, GraphView

SIZE = (120, 40)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TEXTUAL_THEME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no user keymap
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def demo(tmp_path):
    return write_demo(str(tmp_path / "ws"))


def svg_text(svg: str) -> str:
    """Plain text of an exported screenshot, one line per terminal row (for assertions)."""
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]*)</text>', svg):
        rows.setdefault(float(m.group(2)), []).append((float(m.group(1)), html.unescape(m.group(3))))
    lines = []
    for y in sorted(rows):
        line = ""
        for x, t in sorted(rows[y]):
            col = int(round(x / 12.2))
            line = line.ljust(col) + t.replace("\u00a0", " ")
        lines.append(line.rstrip())
    return "\n".join(lines)


def screen_text(app: TrtdbgApp) -> str:
    return svg_text(app.export_screenshot())


async def opened_screen(app: TrtdbgApp, pilot, key: str, kind: type) -> Any:
    """Press ``key``, wait for the work it starts, and return the screen it opened, which must be a ``kind``."""
    await pilot.press(key)
    await settle(app, pilot)
    assert isinstance(app.screen, kind)
    return app.screen


async def compare_now(app: TrtdbgApp, pilot) -> None:
    """Open the compare dialog, run it as it stands and wait for the comparison."""
    await pilot.press("r", "ctrl+s")
    await settle(app, pilot)


async def submit(app: TrtdbgApp, pilot) -> None:
    """Run the open dialog or screen (ctrl+s) and wait for the work it starts."""
    await pilot.press("ctrl+s")
    await settle(app, pilot)


async def loaded(app: TrtdbgApp, pilot) -> None:
    """Wait for the load and shape-inference workers and the messages they posted."""
    await settle(app, pilot)
    await settle(app, pilot)
    assert app.main_screen.view.index is not None, "model did not load"


def tree(app: TrtdbgApp) -> GraphTree:
    return app.main_screen.query_one(GraphTree)


def detail(app: TrtdbgApp) -> str:
    return app.main_screen.query_one(DetailPane).plain()


def child_labels(node) -> list[str]:
    return [c.data.label for c in node.children]


# ---------------------------------------------------------------------- open / navigate / detail
async def test_open_demo_shows_scopes_and_navigates(demo) -> None:
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        t = tree(app)
        assert child_labels(t.root) == ["stem", "patch_embed", "Add", "blocks.0", "blocks.1", "norm", "head"]
        assert "251 nodes" in screen_text(app)
        await pilot.press("j", "j")  # root -> stem -> patch_embed
        assert t.cursor_node.data.label == "patch_embed"
        assert "patch_embed" in detail(app) and "13 node(s) in total" in detail(app)
        await pilot.press("l")  # expand (lazy: children appear only now)
        assert t.cursor_node.is_expanded and "proj" in child_labels(t.cursor_node)
        await pilot.press("j", "l", "j")  # into proj, expand, onto its Conv node
        row = t.cursor_node.data
        assert row.kind == "node" and app.main_screen.view.index.op_type(row.node) == "Conv"
        text = detail(app)
        assert "/patch_embed/proj/Conv" in text and "Conv · node #" in text
        assert "f32[1,64,8,8]" in text  # output shape (shape inference ran in a worker)
        assert "Attributes" in text and "kernel_shape" in text
        await settle(app, pilot)  # initializer statistics worker
        text = detail(app)
        assert "Initializers" in text and "min " in text and "std " in text
        await pilot.press("h")  # to the parent scope
        assert t.cursor_node.data.label == "proj"
        await pilot.press("G")
        assert t.cursor_line == len(t._tree_lines) - 1
        await pilot.press("g")
        assert t.cursor_line == 0


async def test_search_next_and_jump_producer_consumer(demo) -> None:
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        scr = app.main_screen
        index = scr.view.index
        await pilot.press("slash")
        await pilot.press(*"softmax")
        await pilot.press("enter")
        await settle(app, pilot)
        softmax = [i for i in range(len(index)) if index.op_type(i) == "Softmax"]
        assert scr.hits == softmax and len(softmax) >= 2
        assert scr.current_node() == softmax[0]
        await pilot.press("n")
        assert scr.current_node() == softmax[1]
        await pilot.press("N")
        assert scr.current_node() == softmax[0]
        # producer: Softmax has one input -> jump straight to its producer
        (inp,) = index.node_inputs(softmax[0])
        await pilot.press("p")
        assert scr.current_node() == index.producer(inp)
        await pilot.press("backspace")
        assert scr.current_node() == softmax[0]
        # consumers: a tensor read by several nodes opens a picker
        multi = next(
            i
            for i in range(len(index))
            if sum(len(index.consumers(o)) for o in index.node_outputs(i)) > 1 and index.subgraph_of(i) is None
        )
        await jump(app, pilot, multi)
        await opened_screen(app, pilot, "c", PickScreen)
        await pilot.press("down", "enter")
        await pilot.pause()
        consumers = [c for o in index.node_outputs(multi) for c in index.consumers(o)]
        assert scr.current_node() == consumers[1]


# ---------------------------------------------------------------------- marks
async def test_mark_unmark_scope_all_clear_persist(demo) -> None:
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace))
    marks_file = Path(demo.workspace) / "marks" / "demo.onnx.json"
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        scr = app.main_screen
        index, marks = scr.view.index, scr.view.marks
        add = index.find("/Add")
        await jump(app, pilot, add)
        await pilot.press("space")
        out = index.node_outputs(add)[0]
        assert out in marks and marks.node_state(add) == "marked"
        assert "● Add" in screen_text(app)
        await settle(app, pilot)
        assert json.loads(marks_file.read_text())["tensors"] == [out]
        await pilot.press("space")
        assert out not in marks
        # scope mark from a node: marks its whole scope (the Constant is reported, not marked)
        conv = index.find("/stem/conv1/Conv")
        await jump(app, pilot, conv)
        await pilot.press("m")
        assert set(marks.ordered()) == {
            o
            for i in range(len(index))
            if index.name(i).startswith("/stem/conv1/")
            for o in index.node_outputs(i)
            if o in set(index.markable())
        }
        await pilot.press("M")
        assert marks.is_all()
        assert f"{len(index.markable())} marked" in screen_text(app)
        await pilot.press("C")
        assert len(marks) == 0
        await pilot.press("m")  # mark stem/conv1 again and keep it
        await settle(app, pilot)
        kept = marks.ordered()
        assert kept and json.loads(marks_file.read_text())["tensors"] == kept
    app2 = TrtdbgApp(demo.model, workspace=str(demo.workspace))
    async with app2.run_test(size=SIZE) as pilot:
        await loaded(app2, pilot)
        assert app2.main_screen.view.marks.ordered() == kept


def _if_model() -> onnx.ModelProto:
    then_g = branch("then", [helper.make_node("Relu", ["x"], ["t_out"], name="/then/Relu")], "t_out")
    else_g = branch("else", [helper.make_node("Neg", ["x"], ["e_out"], name="/else/Neg")], "e_out")
    nodes = [
        helper.make_node("Mul", ["x", "x"], ["/attn[scale]/Mul_output_0"], name="/attn[scale]/Mul"),
        helper.make_node("Relu", ["/attn[scale]/Mul_output_0"], ["a[/]b"], name="a[/]b"),
    ]
    return if_model(nodes, "/blk/If", then_g, else_g, "a[/]b")


async def test_markup_names_literal_and_subgraphs_unobservable(tmp_path) -> None:
    path = tmp_path / "if.onnx"
    onnx.save(_if_model(), path)
    app = TrtdbgApp(path, workspace=str(tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        scr = app.main_screen
        index = scr.view.index
        text = screen_text(app)
        assert "attn[scale]" in text  # not eaten as Rich markup
        mul = index.find("/attn[scale]/Mul")
        await jump(app, pilot, mul)
        assert "/attn[scale]/Mul" in detail(app)
        weird = index.find("a[/]b")
        await jump(app, pilot, weird)  # "a[/]b" would raise MarkupError if parsed
        assert "a[/]b" in detail(app)
        relu = index.find("/then/Relu")
        await jump(app, pilot, relu)  # subgraph node: under /blk/If > then_branch
        t = tree(app)
        assert [n.data.label for n in [t.cursor_node.parent, t.cursor_node.parent.parent]] == ["then", "then_branch"]
        assert "⊘ Relu" in screen_text(app)
        await pilot.press("space")
        assert len(scr.view.marks) == 0
        assert "unobservable" in detail(app) and "inside subgraph" in detail(app)


# ---------------------------------------------------------------------- compare
async def test_compare_demo_fills_table_and_highlights_first_failing(demo) -> None:
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace), compare=demo_form(demo))
    msgs: list = []
    async with app.run_test(size=SIZE, message_hook=msgs.append) as pilot:
        await loaded(app, pilot)
        scr = app.main_screen
        await opened_screen(app, pilot, "r", CompareDialog)
        await submit(app, pilot)
        from tui.messages import CompareFinished

        finished = [m for m in msgs if isinstance(m, CompareFinished)]
        assert len(finished) == 1 and finished[0].error is None, finished[0].error
        report = finished[0].report
        table = scr.query_one(ErrorTable)
        assert len(table.store) == report.summary.compared > 100
        assert table.first_failing is report.summary.first_failing is not None
        ff_node = scr.view.index.find(report.summary.first_failing.slot.node)
        assert scr.view.node_status[ff_node] in ("fail", "nonfinite") and scr.view.first_failing == ff_node
        text = screen_text(app)
        assert "FAILED" in text and "first failing" in text
        await pilot.press("F")  # jump to the first failing tensor: tree + table
        assert scr.current_node() == ff_node
        assert table.current is report.summary.first_failing
        assert "FAIL" in detail(app) and "error histogram" in detail(app)
        # failing-only filter and sorting by max abs (worst first)
        table.focus()
        await pilot.press("f")
        assert all(not r.stats.passed for r in table.row_results()) and table.view_rows == report.summary.failed
        await pilot.press("f", "s")
        rows = table.row_results()
        finite = [
            r.stats.max_abs for r in rows if r.stats.max_abs == r.stats.max_abs and abs(r.stats.max_abs) != float("inf")
        ]
        assert finite == sorted(finite, reverse=True)
        await pilot.press("g", "enter")  # worst tensor -> its node in the tree
        assert scr.current_node() == scr.view.index.find(rows[0].slot.node)


def _fake_result(k: int, failing: bool):
    from engine_core.comparator.engine import TensorResult, TensorSlot
    from engine_core.comparator.metrics import TensorStats

    err = 0.5 if failing else 1e-6
    stats = TensorStats(
        f"t{k}",
        (1, 64),
        "float32",
        "float32",
        64,
        passed=not failing,
        max_abs=err,
        mean_abs=err / 2,
        median_abs=err / 3,
        p90_abs=err / 2,
        p95_abs=err / 2,
        p99_abs=err,
        **{f"{stat}_rel": err for stat in ("max", "mean", "median", "p90", "p95", "p99")},
        cosine=1.0,
    )
    return TensorResult(
        0,
        TensorSlot(f"/blk.0/layer.{k}/Op_output_0", f"/blk.0/layer.{k}/Op_output_0", f"/blk.0/layer.{k}/Add", k),
        stats,
    )


async def test_ctrl_c_cancels_the_compare_not_the_app(tmp_path, monkeypatch) -> None:
    """A fake engine job that streams 5 results, then blocks until cancelled (no CPU burnt)."""
    from engine_core.comparator import request as request_module
    from engine_core.comparator.engine import CompareSummary
    from engine_core.comparator.report import CompareReport

    path = tmp_path / "chain.onnx"
    onnx.save(chain_model(30, ops=("Add",)), path)
    started = threading.Event()
    seen: dict = {}

    def fake_execute(request, events):
        seen["request"] = request
        summary = CompareSummary()
        results = []
        for k in range(5):
            r = _fake_result(k, failing=k == 3)
            summary.note(r)
            results.append(r)
            events.item(r)
        started.set()
        assert events.cancel.wait(30), "never cancelled"
        summary.cancelled = True
        return CompareReport("ort", "ort-cuda", results, summary)

    monkeypatch.setattr(request_module, "execute", fake_execute)
    app = TrtdbgApp(path, workspace=str(tmp_path / "ws"), compare=CompareForm(subject="ort"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        scr = app.main_screen
        await pilot.press("r", "ctrl+s")
        assert started.wait(10)
        table = scr.query_one(ErrorTable)
        for _ in range(50):  # the 4 Hz flush moves them into the table
            await pilot.pause(0.05)
            if len(table.store) == 5:
                break
        assert len(table.store) == 5 and scr.comparing
        assert table.first_failing is not None and table.first_failing.slot.topo_index == 3
        assert seen["request"].marks == ["all"] and seen["request"].subject == "ort"
        await pilot.press("ctrl+c")
        await settle(app, pilot)
        assert not scr.comparing and app.is_running and app.screen is scr
        assert "cancelled after 5 comparisons" in screen_text(app)
        await pilot.press("ctrl+c")  # nothing runs now: still no quit
        await pilot.pause()
        assert app.is_running


async def test_compare_error_is_one_line_not_a_crash(demo) -> None:
    app = TrtdbgApp(
        demo.model,
        workspace=str(demo.workspace),
        compare=CompareForm(subject="model", subject_path=str(Path(demo.workspace) / "missing.onnx")),
    )
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await compare_now(app, pilot)
        scr = app.main_screen
        assert scr.panel.compare_error and "missing.onnx" in scr.panel.compare_error
        assert "comparison failed" in screen_text(app) and app.is_running


# ---------------------------------------------------------------------- big and real models
@pytest.mark.slow
async def test_100k_nodes_first_paint_and_lazy_tree(tmp_path) -> None:
    path = tmp_path / "chain100k.onnx"
    onnx.save(chain_model(100_000), path)
    app = TrtdbgApp(path, workspace=str(tmp_path / "ws"))
    t0 = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        first_paint = time.perf_counter() - t0
        text = screen_text(app)
        # the screen is drawn while the model still loads in a worker thread ...
        assert "loading chain100k.onnx" in text and "loading model" in text
        await loaded(app, pilot)  # ... and the tree arrives when the worker is done
        ready = time.perf_counter() - t0
        t = tree(app)
        assert len(t.root.children) == 1000 and t.root.children[0].data.label == "blk.0"
        assert len(t._tree_nodes) < 1100  # lazy: one level built, not 100k tree nodes
        assert "100000 nodes" in screen_text(app)
        scr = app.main_screen
        last = scr.view.index.find("/blk.999/layer.99/Add")
        await jump(app, pilot, last)
        assert scr.current_node() == last and len(t._tree_nodes) < 1300
        await pilot.press("space")
        assert len(scr.view.marks) == 1
        print(f"\n100k nodes: first paint {first_paint:.2f}s, tree ready {ready:.2f}s")


def test_tree_keeps_one_line_labels_and_cuts_longer_ones() -> None:
    t = GraphTree(GraphView())
    one = Text("blk.0")
    assert t.process_label(one) is one  # not copied (Textual's copy and split: 2 per row, 40 ms per 1000 rows)
    assert t.process_label(Text("first\nsecond")).plain == "first" and t.process_label("[b]x").plain == "x"


async def test_an_open_model_stays_out_of_collections_until_its_screen_goes(tmp_path) -> None:
    path = tmp_path / "chain.onnx"
    onnx.save(chain_model(40), path)
    app = TrtdbgApp(path, workspace=str(tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        first = app.main_screen
        assert gc.get_freeze_count() > 0  # the first model (and all before it) is frozen: no collection scans it
        gone = weakref.ref(first)
        del first
        app.open_model(str(path))
        await loaded(app, pilot)
        gc.collect()
        assert gone() is None  # thawed when it went, and the new model did not freeze it again
        assert gc.get_freeze_count() == 0


async def test_wide_level_is_paged(tmp_path) -> None:
    n = 2 * PAGE + 5
    path = tmp_path / "flat.onnx"
    onnx.save(chain_model(n, scoped=False), path)
    app = TrtdbgApp(path, workspace=str(tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        t = tree(app)
        assert [c.data.kind for c in t.root.children] == ["page"] * 3
        assert t.root.children[2].data.count == 5
        scr = app.main_screen
        await jump(app, pilot, n - 1)
        assert scr.current_node() == n - 1 and t.cursor_node.parent is t.root.children[2]


@pytest.mark.parametrize("name", ["magika_v3_3.onnx", "ppocrv4_det.onnx", "ppocrv4_rec.onnx"])
async def test_real_models_open_and_show_details(name, tmp_path) -> None:
    path = SHARED_MODELS / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    app = TrtdbgApp(path, workspace=str(tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        scr = app.main_screen
        index = scr.view.index
        assert f"{len(index)} nodes" in screen_text(app)
        # a node that reads a weight: initializer or Constant producer
        target = next(i for i in range(len(index)) if index.op_type(i) in ("Conv", "MatMul", "Gemm"))
        scr.jump_to(target)
        await settle(app, pilot)
        text = detail(app)
        assert index.name(target) in text and index.op_type(target) in text and "Inputs" in text
        assert scr.current_node() == target
        await pilot.press("space")
        assert len(scr.view.marks) >= 1


# ---------------------------------------------------------------------- conventions
async def test_help_palette_keymap_and_unbuilt_screens(demo, tmp_path) -> None:
    keymap = tmp_path / "keys.json"
    keymap.write_text(json.dumps({"mark-toggle": "v"}))
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace), keymap=keymap)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        scr = app.main_screen
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        rows = {bid for _, _, bid in app.screen.rows}
        assert {"mark-toggle", "mark-scope", "search", "compare", "goto-producer", "cancel", "quit"} <= rows
        await pilot.press("escape")
        assert app.screen is scr
        await pilot.press("j", "l", "j", "l", "j")  # onto a node of stem/conv1
        node = scr.current_node()
        assert node is not None
        await pilot.press("v")  # remapped from space
        assert scr.view.marks.node_state(node) == "marked"
        await pilot.press("ctrl+p")
        await pilot.press(*"Clear marks")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert len(scr.view.marks) == 0
        await pilot.press("t")
        await pilot.pause()
        assert any("TensorRT" in str(n.message) for n in app._notifications)
        await pilot.press("b")
        await pilot.pause()
        from tui.screens.bisect import BisectScreen, precision_available

        assert isinstance(app.screen, BisectScreen)
        if not precision_available():
            assert "Not available in this build" in screen_text(app)
        await pilot.press("escape")
        assert app.screen is scr


async def test_no_color_and_80x24(tmp_path, monkeypatch) -> None:
    """Monochrome (NO_COLOR) and a small terminal: the table still renders, the dialog fits."""
    from engine_core.comparator import request as request_module
    from engine_core.comparator.engine import CompareSummary
    from engine_core.comparator.report import CompareReport

    def fake_execute(request, events):
        summary = CompareSummary()
        results = [_fake_result(k, failing=k == 1) for k in range(3)]
        for r in results:
            summary.note(r)
            events.item(r)
        return CompareReport("ort", "ort", results, summary)

    monkeypatch.setattr(request_module, "execute", fake_execute)
    monkeypatch.setenv("NO_COLOR", "1")
    path = tmp_path / "chain.onnx"
    onnx.save(chain_model(30, ops=("Add",)), path)
    app = TrtdbgApp(path, workspace=str(tmp_path / "ws"), compare=CompareForm(subject="ort"))
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        await pilot.press("r")
        assert "Run (ctrl+s)" in screen_text(app)  # the whole dialog fits in 24 rows
        await submit(app, pilot)
        text = screen_text(app)
        assert "FAILED: 1/3" in text and "FAIL" in text and "PASS" in text


# ---------------------------------------------------------------------- surgeon dialogs
async def test_extract_from_marks_writes_new_model_and_opens_it(demo) -> None:
    from tui.screens.surgeon import ExtractDialog, SurgeryResultScreen

    app = TrtdbgApp(demo.model, workspace=str(demo.workspace))
    before = Path(demo.model).read_bytes()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        scr = app.main_screen
        index = scr.view.index
        await jump(app, pilot, "/head/Softmax")
        await pilot.press("space")  # mark the classifier output
        await settle(app, pilot)
        await pilot.press("g")  # no node under the cursor and no compare: the dialog starts from the marks
        await pilot.press("x")
        dialog = app.screen
        assert isinstance(dialog, ExtractDialog)
        assert dialog.outputs == ["probs:float32"] and dialog.inputs == []
        out = Path(demo.workspace) / "demo_extract.onnx"
        assert dialog.query_one("#output").value == str(out)
        await submit(app, pilot)
        assert isinstance(app.screen, SurgeryResultScreen), scr.last_surgery_error
        assert out.exists() and Path(demo.model).read_bytes() == before
        text = screen_text(app)
        assert "extract: wrote" in text and "The original model is unchanged" in text
        await pilot.press("o")
        await loaded(app, pilot)
        new = app.main_screen
        assert new is not scr and new.model_path == str(out) and isinstance(app.screen, type(new))
        assert len(new.view.index) == len(index)  # the whole graph feeds the output


async def test_sanitize_and_insert_dialogs(tmp_path) -> None:
    from tui.screens.surgeon import InsertDialog, SanitizeDialog, SurgeryResultScreen

    path = tmp_path / "chain.onnx"
    onnx.save(chain_model(12, ops=("Add", "Relu")), path)
    app = TrtdbgApp(path, workspace=str(tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        scr = app.main_screen
        await opened_screen(app, pilot, "z", SanitizeDialog)
        await submit(app, pilot)
        assert isinstance(app.screen, SurgeryResultScreen), scr.last_surgery_error
        assert "verified: outputs equal" in screen_text(app)
        await pilot.press("escape")
        await jump(app, pilot, 3)
        await pilot.press("i")
        dialog = app.screen
        assert isinstance(dialog, InsertDialog)
        first = scr.view.index.node_outputs(3)[0]
        assert dialog.query_one("#inputs").value == first == dialog.query_one("#outputs").value
        dialog.query_one("#op").value = "Clip"
        dialog.query_one("#attrs").value = ""
        await submit(app, pilot)
        assert isinstance(app.screen, SurgeryResultScreen), scr.last_surgery_error
        assert "trtdbg_insert_Clip" in screen_text(app)
        await pilot.press("escape")
        # a bad request: one-line error, no file, app alive
        await pilot.press("i")
        app.screen.query_one("#inputs").value = "no_such_tensor"
        await submit(app, pilot)
        assert scr.last_surgery_error and "no_such_tensor" in scr.last_surgery_error and app.is_running
        assert sorted(p.name for p in (tmp_path / "ws").glob("*.onnx")) == [
            "chain_inserted.onnx",
            "chain_sanitized.onnx",
        ]


# ---------------------------------------------------------------------- bisection
@pytest.mark.slow
async def test_bisect_two_steps_undo_run_export_and_resume(demo) -> None:
    from tui.screens.bisect import BisectScreen, precision_available

    if not precision_available():
        pytest.skip("engine_core.precision is not in this build")
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace), compare=demo_form(demo))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        main = app.main_screen
        scr = await opened_screen(app, pilot, "b", BisectScreen)
        await pilot.press("ctrl+s")  # start: fp16, fallback fp32, CPU emulation, demo inputs
        await settle(app, pilot)
        assert scr.last_error is None and scr.state["proposal"]["kind"] == "all-low"
        await pilot.press("a")  # everything FP16: fails
        await settle(app, pilot)
        prop = scr.state["proposal"]
        assert scr.state["steps"][-1]["passed"] is False and prop["kind"] == "split"
        a_half, b_half = prop["halves"]
        index = main.view.index
        # both halves are highlighted in the tree
        assert {main.view.bisect[index.find(n)] for n in a_half} == {"A"}
        assert {main.view.bisect[index.find(n)] for n in b_half} == {"B"}
        assert "⟦A⟧" in screen_text(app)
        await pilot.press("b")  # the second half falls back
        await settle(app, pilot)
        assert len(scr.state["steps"]) == 2 and scr.state["steps"][-1]["fallback"] == b_half
        await pilot.press("u")
        await settle(app, pilot)
        assert len(scr.state["steps"]) == 1 and scr.state["proposal"]["halves"] == [a_half, b_half]
        await pilot.press("R")  # run to the end
        await settle(app, pilot)
        s = scr.state
        assert s["finished"] and s["passed"]
        assert set(s["culprits"]) == {"/patch_embed/norm/Sqrt", "/norm/Pow", "/norm/ReduceMean_1"}
        assert main.view.bisect[index.find("/norm/Pow")] == "culprit"
        await pilot.press("e")
        await settle(app, pilot)
        assert scr.exported and Path(scr.exported).exists()
        assert json.loads(Path(scr.exported).read_text())["nodes"]["/norm/Pow"] == "fp32"
        await pilot.press("escape")
        assert app.screen is main and main.view.bisect == {}
        # a new bisection screen offers to resume the saved one
        await pilot.press("b")
        await settle(app, pilot)
        scr2 = app.screen
        assert scr2.saved and scr2.saved["same_model"] and scr2.saved["finished"]
        await pilot.press("c")
        await settle(app, pilot)
        assert scr2.state["finished"] and scr2.state["culprits"] == s["culprits"]


# ---------------------------------------------------------------------- TensorRT view
async def test_trt_view_from_inspector_json(demo, tmp_path) -> None:
    """Engine-inspector JSON (no TensorRT needed): engine layers → ONNX nodes, and back to the ONNX view."""
    from tui.screens.trt_view import TrtViewScreen

    sep = "\x1f"
    doc = {
        "Layers": [
            {
                "Name": "/stem/conv1/Conv + /stem/act1/Relu",
                "LayerType": "CaskConvolution",
                "Inputs": [{"Name": "image", "Dimensions": [1, 3, 64, 64], "Format/Datatype": "Row major linear FP32"}],
                "Outputs": [
                    {
                        "Name": "/stem/act1/Relu_output_0",
                        "Dimensions": [1, 16, 32, 32],
                        "Format/Datatype": "Row major linear FP16 format",
                    }
                ],
                "TacticValue": "0x1",
                "Metadata": f"[ONNX Layer: /stem/conv1/Conv]{sep}[ONNX Layer: /stem/act1/Relu]",
            },
            {
                "Name": "/head/Softmax",
                "LayerType": "SoftMax",
                "Inputs": [{"Name": "logits", "Dimensions": [1, 10], "Format/Datatype": "Row major linear FP32"}],
                "Outputs": [{"Name": "probs", "Dimensions": [1, 10], "Format/Datatype": "Row major linear FP32"}],
                "TacticValue": "0x2",
                "Metadata": "[ONNX Layer: /head/Softmax]",
            },
        ],
        "Bindings": ["image", "probs"],
    }
    engine = tmp_path / "layers.json"
    engine.write_text(json.dumps(doc))
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace), engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        main = app.main_screen
        scr = await opened_screen(app, pilot, "t", TrtViewScreen)
        assert scr.error is None
        assert "2 engine layers" in screen_text(app)
        tree = scr.query_one("#trt-tree")
        assert [str(c.label).split("  ")[0] for c in tree.root.children] == [
            "/stem/conv1/Conv + /stem/act1/Relu",
            "/head/Softmax",
        ]
        await pilot.press("down", "enter", "down")  # first layer, expand, its first ONNX node
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is main and main.current_node() == main.view.index.find("/stem/conv1/Conv")
        text = detail(app)
        assert "TensorRT" in text and "engine layer: /stem/conv1/Conv + /stem/act1/Relu" in text
        # the Relu's output is materialized (engine layer output); the Conv's is fused away
        assert "/stem/conv1/Conv_output_0: fused inside engine layer" in text


async def test_trt_view_without_engine_says_how(demo) -> None:
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await pilot.press("t")
        await pilot.pause()
        assert app.screen is app.main_screen
        assert any("--engine" in str(n.message) for n in app._notifications)


async def test_compare_on_a_real_model_and_low_bandwidth(tmp_path) -> None:
    """magika (TF-converted, int32 input): mark all, compare ORT against ORT in the app; --low-bandwidth settings."""
    path = SHARED_MODELS / "magika_v3_3.onnx"
    if not path.exists():
        pytest.skip(f"{path} not present")
    app = TrtdbgApp(path, workspace=str(tmp_path / "ws"), compare=CompareForm(subject="ort"), low_bandwidth=True)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        scr = app.main_screen
        assert app.animation_level == "none" and scr.flush_interval == 0.5
        await pilot.press("M")
        n = len(scr.view.marks)
        assert n == len(scr.view.index.markable())
        await compare_now(app, pilot)
        assert scr.panel.compare_error is None, scr.panel.compare_error
        report = scr.panel.last_report
        assert report is not None and report.passed and len(scr.query_one(ErrorTable).store) == n
        assert "PASSED: all" in screen_text(app)
