"""Issue 11: the tree is usable while shape inference runs (in a child process), and shapes arrive later."""

from __future__ import annotations

import threading

import onnx

from engine_core.model.synthetic import chain_model
from tests.test_tui_app import SIZE, settle
from tui.app import TrtdbgApp
from tui.widgets.graph_tree import GraphTree


async def test_tree_is_usable_while_shapes_are_inferred(tmp_path, monkeypatch) -> None:
    from engine_core.model import infer_child

    path = tmp_path / "chain.onnx"
    onnx.save(chain_model(300), path)
    started, release = threading.Event(), threading.Event()
    real = infer_child.infer_in_child

    def slow_child(model, cancel=None):
        started.set()
        assert release.wait(30)
        return real(model, cancel)

    monkeypatch.setattr(infer_child, "infer_in_child", slow_child)
    app = TrtdbgApp(path, workspace=str(tmp_path / "ws"))
    async with app.run_test(size=SIZE) as pilot:
        scr = app.main_screen
        tree = scr.query_one(GraphTree)
        for _ in range(200):
            await pilot.pause(0.02)
            if started.is_set() and tree.root.children:
                break
        assert started.is_set() and not scr.view.shapes_ready
        first = tree.root.children[0]
        await pilot.press("down", "right")
        assert tree.cursor_node is first and first.is_expanded and first.children  # moved and expanded
        assert not scr.view.shapes_ready
        release.set()
        await settle(app, pilot)
        assert scr.view.shapes_ready and scr.view.index.shapes_inferred
        assert "shapes ready" in str(scr.query_one("#topbar").render())
