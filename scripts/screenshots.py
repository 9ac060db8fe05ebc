"""Regenerate ``screenshots/*.svg``: the real app, driven headless (``App.run_test``) on the demo model.

    .venv/bin/python scripts/screenshots.py [OUT_DIR]

Every picture is a real run: the compare is an actual ONNX Runtime FP32-vs-FP16 comparison of the demo
model, the bisection is a real search on it, the surgeon dialog writes a real file (into a temporary workspace).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZE = (130, 40)


async def _settle(app, pilot) -> None:
    from tui.headless import settle

    await settle(app, pilot, rounds=3)


async def make_screenshots(out_dir: Path, work: Path) -> list[Path]:
    """Write the screenshots into ``out_dir``; return their paths."""
    from engine_core.model.demo import write_demo
    from tui.app import TrtdbgApp
    from tui.cli.commands.demo import DEMO_TITLE, demo_form
    from tui.headless import jump

    out_dir.mkdir(parents=True, exist_ok=True)
    files = write_demo(str(work / ".trtdbg"))
    written: list[Path] = []
    title = DEMO_TITLE

    def save(app, name: str) -> None:
        written.append(Path(app.save_screenshot(filename=name, path=str(out_dir))))

    # 1. main view: scopes, a node's detail, a few marks
    app = TrtdbgApp(files.model, workspace=str(files.workspace), compare=demo_form(files), title=title)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(app, pilot)
        scr = app.main_screen
        index = scr.view.index
        await jump(app, pilot, "/patch_embed/norm/Add")
        await pilot.press("m")  # mark the patch_embed/norm scope
        await _settle(app, pilot)
        scr.jump_to(index.find("/patch_embed/proj/Conv"))
        await _settle(app, pilot)
        save(app, "main.svg")

        # 2. the compare dialog, then the live compare (real ORT run), first failing highlighted
        await pilot.press("r")
        await pilot.pause()
        save(app, "compare_dialog.svg")
        from tui.screens.compare_dialog import CompareDialog

        dialog = app.screen
        assert isinstance(dialog, CompareDialog)
        from textual.widgets import Select

        dialog.query_one("#what", Select).value = "all"
        # a longer real run first (40 random samples) to catch the table while results stream in
        dialog.query_one("#data", Select).value = "random"
        from textual.widgets import Input

        dialog.query_one("#iterations", Input).value = "40"
        await pilot.press("ctrl+s")
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(scr.query_one("ErrorTable").store) > 600:
                break
        save(app, "compare_live.svg")
        await _settle(app, pilot)
        # then the demo's own inputs, to the end
        await pilot.press("r")
        await pilot.pause()
        dialog = app.screen
        dialog.query_one("#data", Select).value = "inputs"
        dialog.query_one("#iterations", Input).value = "1"
        await pilot.press("ctrl+s")
        await _settle(app, pilot)
        await pilot.press("F")  # go to the first failing tensor
        await _settle(app, pilot)
        save(app, "compare.svg")
        # the detail pane once the first failing tensor's histograms are fetched, scrolled to them
        pane = scr.query_one("DetailPane")
        for _ in range(200):
            if "absolute error histogram" in pane.plain():
                break
            await asyncio.sleep(0.05)
            await _settle(app, pilot)
        await pilot.resize_terminal(SIZE[0], 56)
        await _settle(app, pilot)
        lines = pane.plain(pane.content_size.width).splitlines()
        pane.scroll_to(
            y=next(k for k, t in enumerate(lines) if t.startswith("absolute error histogram")), animate=False
        )
        await _settle(app, pilot)
        save(app, "detail_histogram.svg")
        await pilot.resize_terminal(*SIZE)
        await _settle(app, pilot)
        scr.query_one("ErrorTable").focus()
        await pilot.press("s", "s")  # sort by max rel, worst first
        await pilot.press("g")
        await _settle(app, pilot)
        save(app, "compare_sorted.svg")
        await pilot.press("s", "s")  # back to graph order
        # the error along the graph: the plot focused and moved (the table and the tree follow)
        scr.query_one("ErrorPlot").focus()
        await pilot.press(*["l"] * 12)
        await _settle(app, pilot)
        save(app, "error_plot.svg")
        from engine_core.comparator.plot import save_plot

        written.append(save_plot(scr.panel.last_report, out_dir / "error_plot.png"))
        await pilot.resize_terminal(100, 30)  # a small terminal: shorter detail pane, compact footer
        await _settle(app, pilot)
        save(app, "compare_100x30.svg")
        await pilot.resize_terminal(*SIZE)
        await _settle(app, pilot)

        # 3. bisection: start, everything FP16 fails, the first split (halves tagged in the tree), then to the end
        await pilot.press("b")
        await _settle(app, pilot)
        await pilot.press("ctrl+s")
        await _settle(app, pilot)
        await pilot.press("a")
        await _settle(app, pilot)
        await pilot.press("a")
        await _settle(app, pilot)
        save(app, "bisect.svg")
        await pilot.press("R")
        await _settle(app, pilot)
        await pilot.press("e")
        await _settle(app, pilot)
        save(app, "bisect_done.svg")
        await pilot.press("escape")
        await pilot.pause()

        # 4. surgeon: extract the marked scope into a new model
        await pilot.press("x")
        await pilot.pause()
        save(app, "surgeon_extract.svg")
        await pilot.press("ctrl+s")
        await _settle(app, pilot)
        save(app, "surgeon_result.svg")
        await pilot.press("escape")

    # 5. a 100k-node model: lazy scope tree, a search hit revealed
    import onnx

    from engine_core.model.synthetic import chain_model

    big = work / "chain100k.onnx"
    onnx.save(chain_model(100_000), big)
    app = TrtdbgApp(big, workspace=str(work / ".trtdbg"))
    async with app.run_test(size=SIZE) as pilot:
        await _settle(app, pilot)
        await pilot.press("slash", *"blk.777/layer.42/", "enter")
        await _settle(app, pilot)
        save(app, "large_model.svg")
    return written


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "screenshots"
    os.environ.pop("NO_COLOR", None)
    os.environ.pop("TEXTUAL_THEME", None)
    out = out.resolve()
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # relative paths: the pictures show `.trtdbg`, as a user's run would
        try:
            paths = asyncio.run(make_screenshots(out, Path(".")))
        finally:
            os.chdir(cwd)
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
