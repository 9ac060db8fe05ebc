"""Hostile ONNX models and files for the hostile-input suite: names that act on a terminal or on markup.

Every name below is a real attack or accident seen in the wild: OSC title changes, screen clears, OSC 8
links, C1 CSI, bidi overrides, forged newlines, Rich/Textual markup (closing tags, links, live actions),
plus CJK and emoji that must survive untouched.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OSC_TITLE = "\x1b]0;PWNED\x07"
CLEAR = "\x1b[2J\x1b[H"
OSC8 = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"
C1_CSI = "\x9b31mred"
BIDI = "\u202eevil.onnx"
NEWLINE = "a\nerror: forged"
MARKUP_CLOSE = "[/bold]x"
MARKUP_LINK = "[link=https://evil.example/]y[/link]"
MARKUP_CLICK = "[@click=app.quit]z[/]"
MARKUP_BOLD = "[bold]eaten"
CJK = "注意力/层_1"
EMOJI = "🔥fire"

NODE_NAMES = [
    OSC_TITLE,
    CLEAR,
    OSC8,
    C1_CSI,
    BIDI,
    NEWLINE,
    MARKUP_CLOSE,
    MARKUP_LINK,
    MARKUP_CLICK,
    MARKUP_BOLD,
    CJK,
    EMOJI,
]
"""Node names of :func:`hostile_chain`, in graph order (node i writes tensor ``t:`` + name)."""

RAW_CONTROL = ("\x1b", "\x07", "\x9b", "\u202e")
"""Characters that must never reach a terminal raw."""


def hostile_chain(input_name: str = "in\x1b[31m", doc: str = "doc\x1b]0;T\x07") -> onnx.ModelProto:
    """A runnable float32 [1,4] chain of Relu/Add/Mul nodes named with :data:`NODE_NAMES`.

    Tensor names are ``t:<node name>``, the input is ``input_name``; doc strings, metadata, the graph
    name, the producer and a string attribute are hostile too. ORT runs it (names are opaque to it).
    """
    ops = ("Relu", "Add", "Mul")
    graph = helper.make_graph([], "graph\x1b[2J", [], [])
    graph.doc_string = doc
    graph.input.append(helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 4]))
    graph.initializer.append(numpy_helper.from_array(np.full((1,), 0.5, np.float32), "c\x1b]0;init\x07"))
    prev = input_name
    for i, name in enumerate(NODE_NAMES):
        op = ops[i % len(ops)]
        out = "t:" + name
        inputs = [prev] if op == "Relu" else [prev, "c\x1b]0;init\x07"]
        node = helper.make_node(op, inputs, [out], name=name, doc_string="node doc\x1b[2J")
        graph.node.append(node)
        prev = out
    graph.output.append(helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 4]))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    model.producer_name = "prod\x1b]0;P\x07"
    model.doc_string = doc
    helper.set_model_props(model, {"key\x1b[2J": "value\x07\x1b]0;M\x07", "注": "🔥"})
    return model


def hostile_custom_op() -> onnx.ModelProto:
    """One node of an unknown op type and domain, both hostile, with a hostile string attribute."""
    node = helper.make_node(
        "Op\x1b]0;T\x07", ["x"], ["y"], name="n\x1b[2J", domain="dom\x1b[31m", note="attr\x1b]0;A\x07"
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("dom\x1b[31m", 1)], ir_version=8
    )


def assert_no_raw_control(text: str) -> None:
    """Fail when ``text`` holds a character from :data:`RAW_CONTROL`."""
    bad = [c for c in RAW_CONTROL if c in text]
    assert not bad, f"raw control characters {bad!r} in output: {text[:400]!r}"
