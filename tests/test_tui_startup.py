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

    def slow_child(model, cancel=None, source=None):
        started.set()
        assert release.wait(30)
        return real(model, cancel, source)

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


def test_plain_attributes_are_shown_without_importing_onnx() -> None:
    """Scalars, lists and strings come straight from the protobuf (as onnx.helper would give them); importing
    onnx for them stalled the first node detail for ~1 s of CPU."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from onnx import helper

    from tui.widgets.detail import attribute_text

    attrs = [
        helper.make_attribute("alpha", 0.1),
        helper.make_attribute("axis", -1),
        helper.make_attribute("mode", "nearest"),
        helper.make_attribute("scales", [0.5, 2.0]),
        helper.make_attribute("pads", [0, 1, 0, 1]),
        helper.make_attribute("names", ["a", "b"]),
    ]
    expected = ["0.10000000149011612", "-1", "nearest", "[0.5, 2.0]", "[0, 1, 0, 1]", "['a', 'b']"]
    assert [attribute_text(a) for a in attrs] == expected
    assert [repr(helper.get_attribute_value(a)) for a in attrs[:2] + attrs[3:5]] == expected[:2] + expected[3:5]
    code = (
        "import sys, json\n"
        "from engine_core.model.proto import AttributeProto\n"
        "from tui.widgets.detail import attribute_text\n"
        "attrs = [AttributeProto.FromString(bytes.fromhex(h)) for h in json.loads(sys.argv[1])]\n"
        "print('@@' + json.dumps([[attribute_text(a) for a in attrs], 'onnx' in sys.modules]))\n"
    )
    root = Path(__file__).resolve().parents[1]
    arg = json.dumps([a.SerializeToString().hex() for a in attrs])
    out = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True, cwd=root, check=True)
    texts, imported = json.loads(out.stdout.split("@@", 1)[1])
    assert texts == expected and not imported
