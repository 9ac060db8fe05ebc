"""Hostile names in the app: every screen and notification shows them as plain text, control characters escaped.

The model's node, tensor, initializer and input names hold terminal escapes (OSC title, screen clear,
OSC 8 link, C1 CSI, bidi override, newline) and Rich/Textual markup (``[/bold]``, ``[link=…]``,
``[@click=app.quit]``, ``[bold]``), plus CJK and emoji. Each test checks what reaches the terminal (the
composited screen: no raw control character), that the names are shown literally/escaped, that the app
is still running, and that the model file is unchanged.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import onnx
import pytest

from tests.hostile_models import (
    C1_CSI,
    CJK,
    EMOJI,
    MARKUP_BOLD,
    MARKUP_CLICK,
    MARKUP_CLOSE,
    MARKUP_LINK,
    NEWLINE,
    NODE_NAMES,
    OSC_TITLE,
    assert_no_raw_control,
    hostile_chain,
)

pytest.importorskip("textual")

from textual.notifications import Notify

from engine_core.safetext import printable
from tests.test_tui_app import detail, loaded, opened_screen, settle, submit
from tui.app import TrtdbgApp
from tui.headless import jump
from tui.plain import safe

SIZE = (140, 45)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def hostile(tmp_path) -> Path:
    path = tmp_path / "hostile.onnx"
    onnx.save(hostile_chain(), path)
    return path


def terminal(app: TrtdbgApp) -> str:
    """What the terminal receives for the current screen (every widget, filters applied), as text."""
    return "\n".join("".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips())


def assert_clean(app: TrtdbgApp, model: Path, before: bytes) -> None:
    assert app.is_running and app._exception is None
    assert_no_raw_control(terminal(app))
    for n in list(app._notifications):
        assert n.markup is False  # parsed as markup, "[/]" raises MarkupError and "[@click=…]" is live
        assert_no_raw_control(n.message + n.title)
    assert model.read_bytes() == before


def notes(app: TrtdbgApp) -> list[str]:
    """Messages of every notification the app has shown (also expired ones)."""
    return [str(m.notification.message) for m in app.seen_messages if isinstance(m, Notify)]


def run(app: TrtdbgApp):
    """``app.run_test`` that records every message (``app.seen_messages``)."""
    app.seen_messages = []
    return app.run_test(size=SIZE, message_hook=app.seen_messages.append)


@contextlib.asynccontextmanager
async def opened(model: Path, **kwargs):
    """The app on ``model`` (workspace beside it), loaded: ``(app, pilot)``."""
    app = TrtdbgApp(model, workspace=str(model.parent / "ws"), **kwargs)
    async with run(app) as pilot:
        await loaded(app, pilot)
        yield app, pilot


def test_safe_keeps_styles_and_escapes() -> None:
    from rich.text import Text

    t = Text("a")
    t.append("\x1b[2J", style="bold")
    t.append("注🔥", style="red")
    out = safe(t)
    assert out.plain == "a\\x1b[2J注🔥"
    styles = [{str(s.style) for s in out.spans if s.start <= k < s.end} for k in range(len(out.plain))]
    assert styles == [set()] + [{"bold"}] * 7 + [{"red"}] * 2
    assert safe("[bold]x").plain == "[bold]x" and safe("[bold]x").spans == []


async def test_open_shows_every_hostile_name_escaped_in_tree_and_detail(hostile) -> None:
    before = hostile.read_bytes()
    async with opened(hostile) as (app, pilot):
        screen = terminal(app)
        assert "\\x1b]0;PWNED\\x07" in screen and "\\x9b31mred" in screen and "\\u202eevil.onnx" in screen
        assert "a\\nerror: forged" in screen
        assert "[bold]eaten" in screen and CJK.split("/")[0] in screen and EMOJI in screen
        for name in NODE_NAMES:
            await jump(app, pilot, name)
            text = detail(app)
            assert printable(name) in text and printable("t:" + name) in text, name
            assert_clean(app, hostile, before)


@pytest.mark.slow
async def test_search_for_markup_and_escapes_never_crashes(hostile) -> None:
    before = hostile.read_bytes()
    async with opened(hostile) as (app, pilot):
        for query in ["nomatch[/]", "[/bold]", "zz[bold]"]:
            await pilot.press("slash")
            await pilot.press(*query)
            await pilot.press("enter")
            await settle(app, pilot)
            await pilot.press("escape")
            assert_clean(app, hostile, before)
        assert any("no node matches 'nomatch[/]'" == m for m in notes(app))
        assert any("no node matches 'zz[bold]'" == m for m in notes(app))
        assert any("1 match(es)" in m for m in notes(app))  # "[/bold]" finds the node named [/bold]x


@pytest.mark.parametrize("text", [OSC_TITLE, MARKUP_CLOSE, MARKUP_LINK, MARKUP_CLICK, MARKUP_BOLD, "x\ny", EMOJI])
async def test_notification_is_plain_and_escaped(hostile, text) -> None:
    async with opened(hostile) as (app, pilot):
        app.main_screen.notify(f"note {text}", title=f"t{text}", markup=True)
        await pilot.pause()
        shown = [n for n in app._notifications if n.message.startswith("note ")]
        assert [n.message for n in shown] == [f"note {printable(text)}"]
        assert shown[0].title == f"t{printable(text)}"
        assert_clean(app, hostile, hostile.read_bytes())


async def test_click_markup_in_a_name_is_not_an_action(hostile) -> None:
    """``[@click=app.quit]`` in a node name stays text: clicking it does not quit."""
    async with opened(hostile) as (app, pilot):
        await jump(app, pilot, MARKUP_CLICK)
        for y in range(1, 20):
            await pilot.click(offset=(60, y))
        assert app.is_running and MARKUP_CLICK in detail(app)


async def test_compare_table_and_status_with_hostile_names(hostile) -> None:
    from tui.screens.compare_dialog import CompareForm
    from tui.widgets.error_table import ErrorTable

    before = hostile.read_bytes()
    form = CompareForm(subject="ort:fp16", what="all")
    async with opened(hostile, compare=form) as (app, pilot):
        await pilot.press("r")
        await submit(app, pilot)
        table = app.main_screen.query_one(ErrorTable)
        assert len(table.store) == len(NODE_NAMES)
        screen = terminal(app)
        assert "t:\\x1b]0;PWNED\\x07" in screen and "t:[@click=app.quit]z[/]" in screen
        assert_clean(app, hostile, before)


async def test_pick_screen_with_hostile_names(hostile) -> None:
    from tui.screens.common import PickScreen

    async with opened(hostile) as (app, pilot):
        scr = app.main_screen
        index = scr.view.index
        targets = [(index.node_outputs(i)[0], i) for i in range(len(index))]
        scr._pick(f"Which {MARKUP_CLOSE}{OSC_TITLE}?", targets, "→")
        await pilot.pause()
        assert isinstance(app.screen, PickScreen)
        screen = terminal(app)
        assert f"Which {MARKUP_CLOSE}\\x1b]0;PWNED\\x07?" in screen
        assert "t:\\x1b[2J\\x1b[H → \\x1b[2J\\x1b[H (Add)" in screen
        assert_clean(app, hostile, hostile.read_bytes())
        await pilot.press("down", "enter")
        await pilot.pause()
        assert scr.current_node() == 1


async def test_extract_dialog_and_result_with_hostile_names(hostile) -> None:
    from tui.screens.surgeon import ExtractDialog, SurgeryResultScreen

    before = hostile.read_bytes()
    async with opened(hostile) as (app, pilot):
        scr = app.main_screen
        await jump(app, pilot, MARKUP_LINK)
        await pilot.press("space")
        await settle(app, pilot)
        await opened_screen(app, pilot, "x", ExtractDialog)
        assert_clean(app, hostile, before)
        await submit(app, pilot)
        assert isinstance(app.screen, SurgeryResultScreen), scr.last_surgery_error
        assert "extract: wrote" in terminal(app)
        assert_clean(app, hostile, before)


async def test_surgeon_changes_show_a_newline_in_a_removed_node_name_escaped(hostile) -> None:
    """Extracting up to the C1 node removes the node named ``a\\nerror: forged``: the changes pane lists it on
    its own line as ``a\\nerror: forged`` escaped, never as a forged line starting ``error: forged``."""
    from tui.screens.surgeon import SurgeryResultScreen

    before = hostile.read_bytes()
    async with opened(hostile) as (app, pilot):
        scr = app.main_screen
        scr.jump_to(scr.view.index.find(C1_CSI))
        await pilot.pause()
        await pilot.press("space")
        await settle(app, pilot)
        await pilot.press("x")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert isinstance(app.screen, SurgeryResultScreen), scr.last_surgery_error
        assert NEWLINE in app.screen.outcome.changes.removed
        screen = terminal(app)
        assert "removed:" in screen and "a\\nerror:" in screen
        assert not any(line.strip().startswith("error: forged") for line in screen.splitlines())
        assert_clean(app, hostile, before)


async def test_sanitize_result_with_hostile_names(hostile) -> None:
    from tui.screens.surgeon import SanitizeDialog, SurgeryResultScreen

    before = hostile.read_bytes()
    async with opened(hostile) as (app, pilot):
        await opened_screen(app, pilot, "z", SanitizeDialog)
        await submit(app, pilot)
        assert isinstance(app.screen, SurgeryResultScreen), app.main_screen.last_surgery_error
        assert_clean(app, hostile, before)


async def test_insert_error_names_hostile_tensor_in_one_plain_notification(hostile) -> None:
    from tui.screens.surgeon import InsertDialog

    before = hostile.read_bytes()
    async with opened(hostile) as (app, pilot):
        await opened_screen(app, pilot, "i", InsertDialog)
        app.screen.query_one("#inputs").value = "nope[/]\x1b]0;X\x07"
        app.screen.query_one("#outputs").value = "out[/]"
        await submit(app, pilot)
        err = app.main_screen.last_surgery_error
        assert err and "nope[/]" in err
        assert any("nope[/]\\x1b]0;X\\x07" in m for m in notes(app))
        assert_clean(app, hostile, before)


async def test_bisect_screen_with_hostile_names(hostile) -> None:
    from tui.screens.bisect import BisectScreen, precision_available

    if not precision_available():
        pytest.skip("engine_core.precision is not in this build")
    before = hostile.read_bytes()
    async with opened(hostile) as (app, pilot):
        await opened_screen(app, pilot, "b", BisectScreen)
        await submit(app, pilot)
        await pilot.press("R")
        await settle(app, pilot)
        scr = app.screen
        assert scr.last_error is None and scr.state["finished"]
        assert_clean(app, hostile, before)


async def test_unreadable_model_with_hostile_path(tmp_path) -> None:
    bad = tmp_path / f"m{OSC_TITLE}[bold]x[@click=app.quit]y.onnx"
    bad.write_bytes(b"\x00not an onnx model\x1b]0;X\x07")
    before = bad.read_bytes()
    app = TrtdbgApp(bad, workspace=str(tmp_path / "ws"))
    async with run(app) as pilot:
        await settle(app, pilot)
        await settle(app, pilot)
        screen = terminal(app)
        assert "cannot open" in screen and "\\x1b]0;PWNED\\x07[bold]x[@click=app.quit]y.onnx" in screen
        assert any("\\x1b]0;PWNED\\x07" in m for m in notes(app))
        assert_clean(app, bad, before)


async def test_trt_view_with_hostile_layer_names(hostile, tmp_path) -> None:
    from tui.screens.trt_view import TrtViewScreen

    doc = {
        "Layers": [
            {
                "Name": f"layer{OSC_TITLE}{MARKUP_LINK}",
                "LayerType": "Conv\x1b[2J",
                "Inputs": [],
                "Outputs": [],
                "Metadata": f"[ONNX Layer: {MARKUP_CLICK}]",
            }
        ],
        "Bindings": [],
    }
    engine = tmp_path / "layers.json"
    engine.write_text(json.dumps(doc))
    async with opened(hostile, engine=engine) as (app, pilot):
        assert (await opened_screen(app, pilot, "t", TrtViewScreen)).error is None
        await pilot.press("down", "enter")
        await pilot.pause()
        screen = terminal(app)
        assert f"layer\\x1b]0;PWNED\\x07{MARKUP_LINK}" in screen and MARKUP_CLICK in screen
        assert_clean(app, hostile, hostile.read_bytes())
