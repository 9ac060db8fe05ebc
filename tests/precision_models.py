"""Small models for the precision tests: a pitfall model that trips every demotion rule, and a chain with FP16
culprits planted at chosen positions."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F32 = TensorProto.FLOAT


def _model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    inits: list[onnx.TensorProto],
    name: str,
) -> onnx.ModelProto:
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def pitfall_model() -> onnx.ModelProto:
    """Conv/Relu, a Resize whose sizes are computed in float from the runtime shape, Range over floats, TopK,
    ReduceSum, a constant above 65504, an eps below the fp16 subnormals, ConstantOfShape, Cast(int->float), a graph
    output that is also read downstream, and an If whose branches read outer tensors."""
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array((rng.standard_normal((4, 3, 3, 3)) / 5).astype(np.float32), "conv.w")
    big = numpy_helper.from_array(np.array(70000.0, np.float32), "big")
    eps = numpy_helper.from_array(np.array(1e-12, np.float32), "eps")
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    idx23 = numpy_helper.from_array(np.array([2, 3], np.int64), "idx23")
    head = numpy_helper.from_array(np.array([1, 4], np.int64), "head")
    k = numpy_helper.from_array(np.array([3], np.int64), "k")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    flat = numpy_helper.from_array(np.array([1, -1], np.int64), "flat")
    cond = numpy_helper.from_array(np.array(True), "cond")
    then_g = helper.make_graph(
        [helper.make_node("Mul", ["relu", "two"], ["then_out"], "then_mul")],
        "then",
        [],
        [helper.make_tensor_value_info("then_out", F32, [1, 4, 8, 8])],
    )
    else_g = helper.make_graph(
        [helper.make_node("Identity", ["relu"], ["else_out"], "else_id")],
        "else",
        [],
        [helper.make_tensor_value_info("else_out", F32, [1, 4, 8, 8])],
    )
    nodes = [
        helper.make_node("Conv", ["x", "conv.w"], ["conv"], "conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"], "relu"),
        helper.make_node("Shape", ["relu"], ["shp"], "shape"),
        helper.make_node("Gather", ["shp", "idx23"], ["hw"], "gather_hw", axis=0),
        helper.make_node("Cast", ["hw"], ["hw_f"], "cast_hw", to=F32),
        helper.make_node("Mul", ["hw_f", "two"], ["hw2_f"], "mul_hw"),
        helper.make_node("Cast", ["hw2_f"], ["hw2"], "cast_back", to=TensorProto.INT64),
        helper.make_node("Concat", ["head", "hw2"], ["sizes"], "concat_sizes", axis=0),
        helper.make_node("Resize", ["relu", "", "", "sizes"], ["up"], "resize", mode="nearest"),
        helper.make_node("ReduceSum", ["up", "axes"], ["rs"], "reducesum", keepdims=1),
        helper.make_node("Add", ["rs", "big"], ["add_big"], "add_big"),
        helper.make_node("Add", ["rs", "eps"], ["add_eps"], "add_eps"),
        helper.make_node("Sqrt", ["add_eps"], ["sq"], "sqrt"),
        helper.make_node("Reshape", ["sq", "flat"], ["flat_sq"], "reshape"),
        helper.make_node("TopK", ["flat_sq", "k"], ["topv", "topi"], "topk", axis=-1),
        helper.make_node(
            "Constant", [], ["zero_f"], "const_zero", value=numpy_helper.from_array(np.array(0.0, np.float32))
        ),
        helper.make_node(
            "Constant", [], ["three_f"], "const_three", value=numpy_helper.from_array(np.array(3.0, np.float32))
        ),
        helper.make_node(
            "Constant", [], ["one_f"], "const_one", value=numpy_helper.from_array(np.array(1.0, np.float32))
        ),
        helper.make_node("Range", ["zero_f", "three_f", "one_f"], ["rng"], "range"),
        helper.make_node("Mul", ["topv", "rng"], ["scaled"], "mul_range"),
        helper.make_node(
            "ConstantOfShape", ["k"], ["ones"], "cos", value=numpy_helper.from_array(np.array([0.5], np.float32))
        ),
        helper.make_node("Add", ["scaled", "ones"], ["y"], "add_out"),
        helper.make_node("Softmax", ["y"], ["probs"], "softmax", axis=-1),
        helper.make_node("If", ["cond"], ["branch"], "if_node", then_branch=then_g, else_branch=else_g),
        helper.make_node("ReduceMean", ["branch"], ["bm"], "branch_mean", keepdims=0),
        helper.make_node("Add", ["bm", "add_big"], ["side"], "side_add"),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", F32, [1, 3, 8, 8])],
        [
            helper.make_tensor_value_info("y", F32, [1, 3]),
            helper.make_tensor_value_info("probs", F32, [1, 3]),
            helper.make_tensor_value_info("side", F32, [1, 1, None, None]),
        ],
        [w, big, eps, two, idx23, head, k, axes, flat, cond],
        "pitfall",
    )


def planted_chain(n: int, at: int | tuple[int, ...]) -> onnx.ModelProto:
    """A chain of ``n`` small elementwise nodes with an FP16 culprit inserted before each position in ``at``.

    The culprit ``/culprit/Add`` (``/culprit{i}/Add`` before position i when ``at`` is a tuple) adds 1000 (FP16
    stores 1000 + x with a step of 0.5); its two consumers subtract 71000 and add 70000, constants beyond the FP16
    range, so they are demoted and read the culprit's output in FP32. Keeping every culprit in FP32 repairs the
    chain; nothing else does.
    """
    consts = {
        name: numpy_helper.from_array(np.array(v, np.float32), name)
        for name, v in (
            ("c_mul", 0.999),
            ("c_add", 0.01),
            ("c_1000", 1000.0),
            ("c_71000", 71000.0),
            ("c_70000", 70000.0),
        )
    }
    nodes = []
    prev = "x"
    ops = ("Mul", "Add", "Relu")
    for i in range(n):
        if i in (at if isinstance(at, tuple) else (at,)):
            c = f"culprit{i}" if isinstance(at, tuple) else "culprit"
            nodes += [
                helper.make_node("Add", [prev, "c_1000"], [c], f"/{c}/Add"),
                helper.make_node("Sub", [c, "c_71000"], [f"{c}_lifted"], f"/{c}/Sub"),
                helper.make_node("Add", [f"{c}_lifted", "c_70000"], [f"{c}_restored"], f"/{c}/Restore"),
            ]
            prev = f"{c}_restored"
        op = ops[i % 3]
        out = f"t{i}"
        ins = [prev] + ([{"Mul": "c_mul", "Add": "c_add"}[op]] if op != "Relu" else [])
        nodes.append(helper.make_node(op, ins, [out], f"/n{i}/{op}"))
        prev = out
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", F32, [1, 16])],
        [helper.make_tensor_value_info(prev, F32, [1, 16])],
        list(consts.values()),
        f"planted_{n}_{at}",
    )
