"""Small ONNX graphs several test files build: one weighted node, and models with an ``If`` and its branches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

F = TensorProto.FLOAT


def weighted_model(
    op: str,
    w: onnx.TensorProto,
    shape: Sequence[int | str],
    *,
    out: str = "y",
    node: str = "mm",
    ir_version: int | None = 9,
) -> onnx.ModelProto:
    """``out = op(x, w)``: one node, float input ``x`` and output ``out`` of ``shape`` (dims may be names), opset 17."""
    g = helper.make_graph(
        [helper.make_node(op, ["x", w.name], [out], name=node)],
        "g",
        [helper.make_tensor_value_info("x", F, list(shape))],
        [helper.make_tensor_value_info(out, F, list(shape))],
        [w],
    )
    extra = {} if ir_version is None else {"ir_version": ir_version}
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], **extra)


def eye(n: int, name: str) -> onnx.TensorProto:
    """An ``n``x``n`` float32 identity initializer."""
    from onnx import numpy_helper

    return numpy_helper.from_array(np.eye(n, dtype=np.float32), name)


def branch(name: str, nodes: list[onnx.NodeProto], out: str) -> onnx.GraphProto:
    """An ``If`` branch: ``nodes`` reading outer tensors, one float output ``out`` of shape [2]."""
    return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(out, F, [2])])


def if_model(
    nodes: list[onnx.NodeProto], if_name: str, then_g: onnx.GraphProto, else_g: onnx.GraphProto, extra_output: str
) -> onnx.ModelProto:
    """``nodes``, then ``y = If(c)`` named ``if_name`` with these branches: inputs float ``x`` [2] and bool ``c``,
    outputs ``y`` and ``extra_output`` (float [2]); opset 17."""
    if_node = helper.make_node("If", ["c"], ["y"], name=if_name, then_branch=then_g, else_branch=else_g)
    graph = helper.make_graph(
        [*nodes, if_node],
        "g",
        [helper.make_tensor_value_info("x", F, [2]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", F, [2]), helper.make_tensor_value_info(extra_output, F, [2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
