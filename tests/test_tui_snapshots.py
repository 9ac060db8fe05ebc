"""SVG snapshot tests of key screens, compared as text (stable across fonts/themes; exact layout and content).

Each test exports the real screen (``App.export_screenshot``), turns the SVG into one text line per terminal row
and compares it with ``tests/tui_snapshots/<name>.txt``. Paths and timings are masked. To re-bless after an
intended UI change: ``TRTDBG_UPDATE_SNAPSHOTS=1 pytest tests/test_tui_snapshots.py`` and review the diff.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import onnx
import pytest

from engine_core.model.demo import write_demo
from engine_core.model.synthetic import chain_model
from tests.test_tui_app import _clean_env, _fake_result, compare_now, loaded, settle, svg_text  # noqa: F401 (autouse fixture)
from tui.app import TrtdbgApp
from tui.cli.commands.demo import demo_form
from tui.screens.compare_dialog import CompareForm

GOLDEN = Path(__file__).parent / "tui_snapshots"
SIZE = (120, 40)


def _normalise(text: str, *paths: Path) -> str:
    for p in paths:
        text = text.replace(str(p), "<tmp>")
    text = re.sub(r"\d+\.\d+s\b", "<t>s", text)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def check_snapshot(app: TrtdbgApp, name: str, *paths: Path) -> None:
    svg = app.export_screenshot()
    assert svg.lstrip().startswith("<svg") and "</svg>" in svg
    text = _normalise(svg_text(svg), *paths)
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("TRTDBG_UPDATE_SNAPSHOTS") or not golden.exists():
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
        if not os.environ.get("TRTDBG_UPDATE_SNAPSHOTS"):
            pytest.fail(f"no snapshot yet: wrote {golden}; review it and rerun")
        return
    expected = golden.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), "expected", "actual"))
        pytest.fail(f"{name} changed (TRTDBG_UPDATE_SNAPSHOTS=1 re-blesses):\n{diff}")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths on screen: the same on every machine


async def test_snapshot_main_view(tmp_path) -> None:
    demo = write_demo("ws")
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        scr = app.main_screen
        scr.jump_to(scr.view.index.find("/patch_embed/norm/Add"))
        await pilot.press("m")
        scr.jump_to(scr.view.index.find("/patch_embed/proj/Conv"))
        await settle(app, pilot)
        check_snapshot(app, "main_view", tmp_path)


async def test_snapshot_compare_dialog(tmp_path) -> None:
    demo = write_demo("ws")
    app = TrtdbgApp(demo.model, workspace=str(demo.workspace), compare=demo_form(demo))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await pilot.press("r")
        await pilot.pause()
        check_snapshot(app, "compare_dialog", tmp_path)


async def test_snapshot_error_table_fixed_results(tmp_path, monkeypatch) -> None:
    from engine_core.comparator import request as request_module
    from engine_core.comparator.engine import CompareSummary
    from engine_core.comparator.report import CompareReport

    def fake_execute(request, events):
        summary = CompareSummary()
        results = [_fake_result(k, failing=k in (4, 7)) for k in range(12)]
        for r in results:
            summary.note(r)
            events.item(r)
        return CompareReport("ort", "ort-cuda", results, summary)

    monkeypatch.setattr(request_module, "execute", fake_execute)
    onnx.save(chain_model(12, ops=("Add",)), "chain.onnx")
    app = TrtdbgApp("chain.onnx", workspace="ws", compare=CompareForm(subject="ort-cuda"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await compare_now(app, pilot)
        await pilot.press("F")
        await settle(app, pilot)
        check_snapshot(app, "error_table", tmp_path)
