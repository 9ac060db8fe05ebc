"""The app's detail-pane histogram, restored compare and bisection, extract with real inputs (headless Pilot)."""

from __future__ import annotations

import math

import pytest

from tests.test_tui_app import _clean_env, detail, loaded, settle  # noqa: F401

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
        await pilot.press("r", "ctrl+s")
        await settle(app, pilot)
        await pilot.press("F")
        panel = scr.panel
        r = panel.table.current
        assert r is not None and not r.stats.passed and r.stats.median_abs is None  # streaming: no order stats
        await _until(app, pilot, lambda: "absolute error histogram" in detail(app))
        got = panel.details[(r.slot.name, r.iteration)]
        want = tensor_detail(panel.request, r)
        assert got.abs_hist == want.abs_hist and got.rel_hist == want.rel_hist
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
