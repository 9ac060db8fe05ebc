"""Synthetic ONNX models for tests and benchmarks: deterministic, built with onnx.helper / raw protos, no download.

- ``chain_model``: a long elementwise chain (100,000 nodes build in well under a second).
- ``wide_activation_model``: a chain whose intermediate tensors total at least N bytes (memory benchmarks).
- ``small_cnn_model`` / ``branchy_model``: small branched models for verdict-equality tests.
- ``fp16_copy``: the same model computing in FP16 between explicit Casts, onnxconverter-common style.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engine_core.errors import TrtdbgError
from engine_core.model.loader import KEEP_FP32_INPUTS, RANDOM_OPS, formal_parameter

OPSET = 17
IR_VERSION = 8
MAX_TENSOR_BYTES = 64 << 20

# Elementwise ops a chain may use; binary ones take a shared constant chosen to keep values bounded.
_BINARY_CONSTS = {"Add": 0.01, "Sub": 0.01, "Mul": 0.999, "Div": 1.001, "Max": -1.0, "Min": 1.0e4}
_UNARY = frozenset({"Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Identity", "Erf", "Softsign"})


def _model(graph: onnx.GraphProto, name: str) -> onnx.ModelProto:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION, producer_name="trtdbg-synthetic"
    )
    model.graph.name = name
    return model


def chain_model(
    n_nodes: int, shape: tuple[int, ...] = (1, 64), ops: tuple[str, ...] = ("Add", "Mul", "Relu"), scoped: bool = True
) -> onnx.ModelProto:
    """A single chain of ``n_nodes`` elementwise nodes cycling through ``ops``.

    Input ``input`` and output (the last node's output) are float32 ``shape``. Scoped names are
    ``/blk.{i//100}/layer.{i%100}/{Op}`` with outputs ``<node>_output_0``; unscoped: ``{Op}_{i}`` / ``t{i}``.
    Binary ops share one scalar initializer per op type (``{op}_const``).
    """
    if n_nodes < 1:
        raise TrtdbgError(f"chain_model: n_nodes must be >= 1 (got {n_nodes})")
    bad = [op for op in ops if op not in _BINARY_CONSTS and op not in _UNARY]
    if not ops or bad:
        raise TrtdbgError(f"chain_model: unsupported ops {bad or ops}; use {sorted(_UNARY | set(_BINARY_CONSTS))}")
    graph = onnx.GraphProto()
    prev = "input"
    nodes = graph.node
    for i in range(n_nodes):
        op = ops[i % len(ops)]
        node = nodes.add()
        node.op_type = op
        if scoped:
            node.name = f"/blk.{i // 100}/layer.{i % 100}/{op}"
            out = f"{node.name}_output_0"
        else:
            node.name, out = f"{op}_{i}", f"t{i}"
        node.input.append(prev)
        if op in _BINARY_CONSTS:
            node.input.append(f"{op.lower()}_const")
        node.output.append(out)
        prev = out
    for op in dict.fromkeys(op for op in ops if op in _BINARY_CONSTS):
        value = np.array(_BINARY_CONSTS[op], np.float32)
        graph.initializer.append(numpy_helper.from_array(value, f"{op.lower()}_const"))
    graph.input.append(helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape)))
    graph.output.append(helper.make_tensor_value_info(prev, TensorProto.FLOAT, list(shape)))
    return _model(graph, f"chain_{n_nodes}")


def wide_activation_model(
    total_bytes: int, shape: tuple[int, ...] = (1, 64, 256, 256), ops: tuple[str, ...] = ("Add", "Mul", "Relu")
) -> onnx.ModelProto:
    """A scoped elementwise chain whose intermediate tensors (all but the output) total >= ``total_bytes``.

    Each tensor is float32 ``shape`` (default 16 MiB; at most 64 MiB), so ~3 GiB is ~200 cheap nodes.
    """
    tensor_bytes = 4 * math.prod(shape)
    if not 0 < tensor_bytes <= MAX_TENSOR_BYTES:
        raise TrtdbgError(
            f"wide_activation_model: one {list(shape)} float32 tensor is {tensor_bytes} bytes; "
            f"choose a shape of 1..{MAX_TENSOR_BYTES} bytes"
        )
    if total_bytes < 1:
        raise TrtdbgError(f"wide_activation_model: total_bytes must be >= 1 (got {total_bytes})")
    model = chain_model(-(-total_bytes // tensor_bytes) + 1, shape, ops, scoped=True)
    model.graph.name = f"wide_{total_bytes}"
    return model


def _init(graph: onnx.GraphProto, name: str, value: np.ndarray) -> str:
    graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
    return name


def small_cnn_model() -> onnx.ModelProto:
    """Conv-Relu-Conv-Relu with a 1x1-Conv skip branch, Add, GAP, Gemm, Softmax; input [1,3,32,32] (12 nodes)."""
    rng = np.random.default_rng(7)
    g = helper.make_graph(
        [],
        "small_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 8]),
        ],
    )

    def w(name: str, *s: int) -> str:
        return _init(g, name, rng.standard_normal(s) / np.sqrt(math.prod(s[1:])))

    def conv_relu(k: int, x: str, channels_in: int) -> list[onnx.NodeProto]:
        """``/convK/Conv`` (3x3, 8 channels out) on ``x``, then ``/reluK/Relu``."""
        conv, relu = f"/conv{k}/Conv", f"/relu{k}/Relu"
        weights = [w(f"conv{k}.weight", 8, channels_in, 3, 3), w(f"conv{k}.bias", 8)]
        return [
            helper.make_node("Conv", [x, *weights], [f"{conv}_output_0"], conv, kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"{conv}_output_0"], [f"{relu}_output_0"], relu),
        ]

    g.node.extend(
        [
            *conv_relu(1, "input", 3),
            *conv_relu(2, "/relu1/Relu_output_0", 8),
            helper.make_node(
                "Conv",
                ["/relu1/Relu_output_0", w("skip.weight", 8, 8, 1, 1)],
                ["/skip/Conv_output_0"],
                "/skip/Conv",
                kernel_shape=[1, 1],
            ),
            helper.make_node("Add", ["/relu2/Relu_output_0", "/skip/Conv_output_0"], ["/Add_output_0"], "/Add"),
            helper.make_node(
                "GlobalAveragePool", ["/Add_output_0"], ["/pool/GlobalAveragePool_output_0"], "/pool/GlobalAveragePool"
            ),
            helper.make_node("Flatten", ["/pool/GlobalAveragePool_output_0"], ["features"], "/Flatten", axis=1),
            helper.make_node(
                "Gemm",
                ["features", w("fc.weight", 10, 8), w("fc.bias", 10)],
                ["/fc/Gemm_output_0"],
                "/fc/Gemm",
                transB=1,
            ),
            helper.make_node(
                "Constant",
                [],
                ["/Constant_output_0"],
                "/Constant",
                value=numpy_helper.from_array(np.array(2.0, np.float32)),
            ),
            helper.make_node("Div", ["/fc/Gemm_output_0", "/Constant_output_0"], ["/Div_output_0"], "/Div"),
        ]
    )
    g.node.append(helper.make_node("Softmax", ["/Div_output_0"], ["probs"], "/Softmax", axis=-1))
    return _model(g, "small_cnn")


def branchy_model() -> onnx.ModelProto:
    """Three parallel MatMul branches (Relu/Sigmoid/Tanh) merged by Mul/Add/Concat, a shared Softmax and two
    outputs (``logits``, ``attn``); input ``x`` [1,4,16] (16 nodes)."""
    rng = np.random.default_rng(11)
    g = helper.make_graph(
        [],
        "branchy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 8]),
            helper.make_tensor_value_info("attn", TensorProto.FLOAT, [1, 4, 16]),
        ],
    )
    nodes = g.node
    for br, act in (("a", "Relu"), ("b", "Sigmoid"), ("c", "Tanh")):
        nodes.extend(
            [
                helper.make_node(
                    "MatMul",
                    ["x", _init(g, f"{br}.weight", rng.standard_normal((16, 16)) / 4)],
                    [f"/{br}/MatMul_output_0"],
                    f"/{br}/MatMul",
                ),
                helper.make_node(
                    "Add",
                    [f"/{br}/MatMul_output_0", _init(g, f"{br}.bias", 0.1 * rng.standard_normal(16))],
                    [f"/{br}/Add_output_0"],
                    f"/{br}/Add",
                ),
                helper.make_node(act, [f"/{br}/Add_output_0"], [f"/{br}/{act}_output_0"], f"/{br}/{act}"),
            ]
        )
    nodes.extend(
        [
            helper.make_node("Mul", ["/a/Relu_output_0", "/b/Sigmoid_output_0"], ["/merge/Mul_output_0"], "/merge/Mul"),
            helper.make_node("Add", ["/merge/Mul_output_0", "/c/Tanh_output_0"], ["/merge/Add_output_0"], "/merge/Add"),
            helper.make_node("Softmax", ["/merge/Add_output_0"], ["attn"], "/merge/Softmax", axis=-1),
            helper.make_node("Mul", ["attn", "x"], ["/gate/Mul_output_0"], "/gate/Mul"),
            helper.make_node(
                "Concat", ["/gate/Mul_output_0", "/c/Tanh_output_0"], ["/Concat_output_0"], "/Concat", axis=-1
            ),
            helper.make_node(
                "MatMul",
                ["/Concat_output_0", _init(g, "out.weight", rng.standard_normal((32, 8)) / 6)],
                ["/out/MatMul_output_0"],
                "/out/MatMul",
            ),
            helper.make_node(
                "Add",
                ["/out/MatMul_output_0", _init(g, "out.bias", 0.1 * rng.standard_normal(8))],
                ["logits"],
                "/out/Add",
            ),
        ]
    )
    return _model(g, "branchy")


_F32, _F16 = TensorProto.FLOAT, TensorProto.FLOAT16
_NEVER_FP16 = RANDOM_OPS | {"Constant", "ConstantOfShape", "EyeLike"}


def fp16_copy(model: onnx.ModelProto, rename: bool = True) -> onnx.ModelProto:
    """The same model computing in FP16 wherever the op schema allows, with explicit ``Cast`` nodes at the edges.

    Graph inputs, outputs and float initializers keep FP32. Names follow onnxconverter-common
    (``keep_io_types=True``): a float input is cast once into ``graph_input_cast_{i}`` (node ``graph_input_cast{i}``),
    a float output's producer writes ``graph_output_cast_{i}`` and a ``Cast`` restores the output name; initializers
    and ``Constant`` outputs are cast into ``<name>_cast_to_fp16``, FP16 values feeding an FP32-only input into
    ``<name>_cast_to_fp32``. With ``rename`` (default) every other tensor computed in FP16 gets an ``_fp16`` suffix,
    so only graph outputs, integer (shape) tensors and ``Constant`` outputs keep their names and matching against the
    original needs structure, not names; ``rename=False`` keeps all names, as onnxconverter-common does. A test
    fixture, not the precision engine: it does not guard against overflow or tiny constants.
    """
    if any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in model.graph.node for a in n.attribute
    ):
        raise TrtdbgError(
            f"fp16_copy: model {model.graph.name!r} has control-flow sub-graphs (If/Loop/Scan); "
            "not supported by this fixture"
        )
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    inferred = onnx.shape_inference.infer_shapes(model)
    types: dict[str, int] = {}
    for v in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        types[v.name] = v.type.tensor_type.elem_type
    for t in model.graph.initializer:
        types[t.name] = t.data_type
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            types[n.output[0]] = n.attribute[0].t.data_type

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    del graph.node[:]
    del graph.value_info[:]
    input_index = {v.name: i for i, v in enumerate(model.graph.input)}
    output_index = {v.name: i for i, v in enumerate(model.graph.output) if types.get(v.name) == _F32}
    current: dict[str, tuple[str, int]] = {}  # original name -> (name in the copy, elem type in the copy)
    casts: dict[tuple[str, int], str] = {}

    def as_type(x: str, want: int) -> str:
        name, typ = current.get(x, (x, types.get(x, 0)))
        if typ == want:
            return name
        if (x, want) not in casts:
            if want == _F16 and x in input_index:
                node_name, cast_out = f"graph_input_cast{input_index[x]}", f"graph_input_cast_{input_index[x]}"
            else:
                node_name = cast_out = f"{x}_cast_to_{'fp16' if want == _F16 else 'fp32'}"
            graph.node.append(helper.make_node("Cast", [name], [cast_out], node_name, to=want))
            casts[(x, want)] = cast_out
        return casts[(x, want)]

    schemas: dict[str, onnx.defs.OpSchema] = {}
    for src in model.graph.node:
        node = onnx.NodeProto()
        node.CopyFrom(src)
        schema = None
        if src.domain in ("", "ai.onnx") and src.op_type not in _NEVER_FP16:
            if src.op_type not in schemas:
                schemas[src.op_type] = onnx.defs.get_schema(src.op_type, opset)
            schema = schemas[src.op_type]
        fp16_params: set[str] = set()
        for i, x in enumerate(src.input):
            if not x or types.get(x) not in (_F32, _F16):
                continue
            formal = formal_parameter(schema.inputs, i) if schema else None
            ok = False
            if schema is not None and formal is not None and i not in KEEP_FP32_INPUTS.get(src.op_type, ()):
                allowed = next(
                    (c.allowed_type_strs for c in schema.type_constraints if c.type_param_str == formal.type_str),
                    [formal.type_str],
                )
                ok = "tensor(float16)" in allowed
                if ok:
                    fp16_params.add(formal.type_str)
            node.input[i] = as_type(x, _F16 if ok else types[x])
        to = next((a for a in node.attribute if a.name == "to"), None) if src.op_type == "Cast" else None
        if to is not None and schema is not None and fp16_params and to.i == _F32:
            to.i = _F16
            fp16_params.add(schema.outputs[0].type_str)
        for j, y in enumerate(src.output):
            formal = formal_parameter(schema.outputs, j) if schema else None
            lowp = formal is not None and formal.type_str in fp16_params and types.get(y) in (_F32, _F16)
            typ = _F16 if lowp else types.get(y, 0)
            if lowp and y in output_index:
                node.output[j] = f"graph_output_cast_{output_index[y]}"
            elif lowp and rename:
                node.output[j] = f"{y}_fp16"
            current[y] = (node.output[j], typ)
        graph.node.append(node)
    for y, i in output_index.items():
        name, typ = current.get(y, (y, _F32))
        if typ == _F16:
            graph.node.append(helper.make_node("Cast", [name], [y], f"graph_output_cast{i}", to=_F32))
    return out


class _Builder:
    """Appends named nodes and float32 initializers to a graph (helper for the larger generated models)."""

    def __init__(self, seed: int = 0) -> None:
        self.graph = onnx.GraphProto()
        self.rng = np.random.default_rng(seed)

    def const(self, name: str, value: np.ndarray) -> str:
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, name: str, shape: tuple[int, ...], scale: float) -> str:
        return self.const(name, (self.rng.standard_normal(shape) * scale).astype(np.float32))

    def node(self, op: str, name: str, inputs: list[str], n_out: int = 1, **attrs: Any) -> str:
        outs = [f"{name}_output_{i}" for i in range(n_out)]
        self.graph.node.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0]


def _layer_norm(b: _Builder, x: str, p: str, axes: str, dim: int) -> str:
    """LayerNormalization decomposed as exporters write it (ReduceMean, Sub, Pow, Sqrt, Div, Mul, Add)."""
    mean = b.node("ReduceMean", f"{p}/ReduceMean", [x], axes=[-1])
    cen = b.node("Sub", f"{p}/Sub", [x, mean])
    sq = b.node("Pow", f"{p}/Pow", [cen, b.const(f"{p}/two", np.array(2.0, np.float32))])
    var = b.node("ReduceMean", f"{p}/ReduceMean_1", [sq], axes=[-1])
    eps = b.node("Add", f"{p}/Add", [var, b.const(f"{p}/eps", np.array(1e-5, np.float32))])
    std = b.node("Sqrt", f"{p}/Sqrt", [eps])
    norm = b.node("Div", f"{p}/Div", [cen, std])
    scaled = b.node("Mul", f"{p}/Mul", [norm, b.const(f"{p}/gamma", np.ones(dim, np.float32))])
    return b.node("Add", f"{p}/Add_1", [scaled, b.const(f"{p}/beta", np.zeros(dim, np.float32))])


def transformer_model(layers: int = 160, seq: int = 49, dim: int = 64, heads: int = 4) -> onnx.ModelProto:
    """A Swin/BERT-like encoder of ``layers`` blocks (~50 nodes each: 160 blocks ≈ 8,000 nodes).

    Input ``x`` float32 [1, seq, dim]; each block: decomposed LayerNorm, fused QKV projection, multi-head
    attention with an additive relative-position bias, output projection, residual, LayerNorm, GELU MLP
    (Erf form), residual. Weights are deterministic and scaled so activations stay bounded.
    """
    b = _Builder()
    hd = dim // heads
    x = "x"
    shape_qkv = b.const("shape_qkv", np.array([1, seq, 3, heads, hd], np.int64))
    shape_out = b.const("shape_out", np.array([1, seq, dim], np.int64))
    scale = b.const("attn_scale", np.array(math.sqrt(hd), np.float32))
    for i in range(layers):
        p = f"/blocks.{i}"
        h = _layer_norm(b, x, f"{p}/norm1", "", dim)
        qkv = b.node("MatMul", f"{p}/attn/qkv/MatMul", [h, b.weight(f"{p}.qkv.w", (dim, 3 * dim), dim**-0.5)])
        qkv = b.node("Add", f"{p}/attn/qkv/Add", [qkv, b.weight(f"{p}.qkv.b", (3 * dim,), 0.02)])
        qkv = b.node("Reshape", f"{p}/attn/Reshape", [qkv, shape_qkv])
        qkv = b.node("Transpose", f"{p}/attn/Transpose", [qkv], perm=[2, 0, 3, 1, 4])
        q, k, v = (
            b.node("Gather", f"{p}/attn/Gather_{j}", [qkv, b.const(f"{p}/idx{j}", np.array(j, np.int64))], axis=0)
            for j in range(3)
        )
        q = b.node("Div", f"{p}/attn/Div", [q, scale])
        kt = b.node("Transpose", f"{p}/attn/Transpose_1", [k], perm=[0, 1, 3, 2])
        att = b.node("MatMul", f"{p}/attn/MatMul", [q, kt])
        att = b.node("Add", f"{p}/attn/Add", [att, b.weight(f"{p}.rel_bias", (1, heads, seq, seq), 0.1)])
        att = b.node("Softmax", f"{p}/attn/Softmax", [att], axis=-1)
        o = b.node("MatMul", f"{p}/attn/MatMul_1", [att, v])
        o = b.node("Transpose", f"{p}/attn/Transpose_2", [o], perm=[0, 2, 1, 3])
        o = b.node("Reshape", f"{p}/attn/Reshape_1", [o, shape_out])
        o = b.node("MatMul", f"{p}/attn/proj/MatMul", [o, b.weight(f"{p}.proj.w", (dim, dim), dim**-0.5)])
        o = b.node("Add", f"{p}/attn/proj/Add", [o, b.weight(f"{p}.proj.b", (dim,), 0.02)])
        o = b.node("Mul", f"{p}/attn/gamma", [o, b.const(f"{p}.ls1", np.full(dim, 0.1, np.float32))])
        x = b.node("Add", f"{p}/Add", [x, o])
        h = _layer_norm(b, x, f"{p}/norm2", "", dim)
        h = b.node("MatMul", f"{p}/mlp/fc1/MatMul", [h, b.weight(f"{p}.fc1.w", (dim, 4 * dim), dim**-0.5)])
        h = b.node("Add", f"{p}/mlp/fc1/Add", [h, b.weight(f"{p}.fc1.b", (4 * dim,), 0.02)])
        g = b.node("Div", f"{p}/mlp/act/Div", [h, b.const(f"{p}/sqrt2", np.array(math.sqrt(2.0), np.float32))])
        g = b.node("Erf", f"{p}/mlp/act/Erf", [g])
        g = b.node("Add", f"{p}/mlp/act/Add", [g, b.const(f"{p}/one", np.array(1.0, np.float32))])
        g = b.node("Mul", f"{p}/mlp/act/Mul", [h, g])
        g = b.node("Mul", f"{p}/mlp/act/Mul_1", [g, b.const(f"{p}/half", np.array(0.5, np.float32))])
        h = b.node("MatMul", f"{p}/mlp/fc2/MatMul", [g, b.weight(f"{p}.fc2.w", (4 * dim, dim), (4 * dim) ** -0.5)])
        h = b.node("Add", f"{p}/mlp/fc2/Add", [h, b.weight(f"{p}.fc2.b", (dim,), 0.02)])
        h = b.node("Mul", f"{p}/mlp/gamma", [h, b.const(f"{p}.ls2", np.full(dim, 0.1, np.float32))])
        x = b.node("Add", f"{p}/Add_1", [x, h])
    y = _layer_norm(b, x, "/norm", "", dim)
    b.graph.input.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, seq, dim]))
    b.graph.output.append(helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, seq, dim]))
    return _model(b.graph, f"transformer_{layers}")


def masked_attention_model(seq: int = 8, dim: int = 16) -> onnx.ModelProto:
    """One attention head whose padding mask adds ``-inf`` (``Where(mask == 0, -inf, 0)``) and a T5-style
    ``Log`` of a relative-position table holding 0 (→ ``-inf``): identical runs hold ``-inf`` at the same places.

    Inputs: ``x`` float32 [1, seq, dim], ``attention_mask`` int64 [1, seq] (0 = padding).
    """
    b = _Builder(seed=5)
    q = b.node("MatMul", "/attn/q/MatMul", ["x", b.weight("wq", (dim, dim), dim**-0.5)])
    k = b.node("MatMul", "/attn/k/MatMul", ["x", b.weight("wk", (dim, dim), dim**-0.5)])
    kt = b.node("Transpose", "/attn/Transpose", [k], perm=[0, 2, 1])
    scores = b.node("MatMul", "/attn/MatMul", [q, kt])
    pad = b.node("Equal", "/attn/mask/Equal", ["attention_mask", b.const("zero_i", np.array(0, np.int64))])
    pad = b.node("Unsqueeze", "/attn/mask/Unsqueeze", [pad, b.const("ax1", np.array([1], np.int64))])
    bias = b.node(
        "Where",
        "/attn/mask/Where",
        [pad, b.const("neg_inf", np.array(-np.inf, np.float32)), b.const("zero_f", np.array(0.0, np.float32))],
    )
    rel = np.abs(np.arange(seq)[:, None] - np.arange(seq)[None, :]).astype(np.float32)[None]
    log_rel = b.node("Log", "/attn/rel/Log", [b.const("rel_pos", rel)])
    scores = b.node("Add", "/attn/Add", [scores, bias])
    scores = b.node("Add", "/attn/Add_1", [scores, log_rel])
    probs = b.node("Softmax", "/attn/Softmax", [scores], axis=-1)
    y = b.node("MatMul", "/attn/MatMul_1", [probs, "x"])
    b.graph.input.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, seq, dim]))
    b.graph.input.append(helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, seq]))
    b.graph.output.append(helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, seq, dim]))
    return _model(b.graph, "masked_attention")


def data_dependent_model(width: int = 4096, stages: int = 6) -> onnx.ModelProto:
    """Tensors whose sizes only the data decide (shape inference sees unknown dims), as in TTS decoders.

    Input ``x`` float32 [1, width]: ``NonZero`` of ``x > 0.5`` gives the positions, ``Expand``/``Range``
    build per-stage tensors of [count, width // 8 * (stage + 1)] elements; each stage then runs a few
    elementwise ops on them. The output is a [1] sum.
    """
    b = _Builder(seed=9)
    mask = b.node("Greater", "/sel/Greater", ["x", b.const("half", np.array(0.5, np.float32))])
    nz = b.node("NonZero", "/sel/NonZero", [mask])
    cnt = b.node("Shape", "/sel/Shape", [nz], start=1)
    total = ""
    for s in range(stages):
        p = f"/stage.{s}"
        cols = b.const(f"{p}/cols", np.array([width // 8 * (s + 1)], np.int64))
        shape = b.node("Concat", f"{p}/Concat", [cnt, cols], axis=0)
        rng = b.node(
            "Range",
            f"{p}/Range",
            [
                b.const(f"{p}/r0", np.array(0.0, np.float32)),
                b.const(f"{p}/r1", np.array(1.0, np.float32)),
                b.const(f"{p}/dr", np.array(1.0 / (width // 8 * (s + 1)), np.float32)),
            ],
        )
        e = b.node("Expand", f"{p}/Expand", [rng, shape])
        e = b.node("Mul", f"{p}/Mul", [e, b.const(f"{p}/k", np.array(1.0 + 0.1 * s, np.float32))])
        e = b.node("Sin", f"{p}/Sin", [e])
        e = b.node("Add", f"{p}/Add", [e, b.const(f"{p}/c", np.array(0.25, np.float32))])
        red = b.node("ReduceSum", f"{p}/ReduceSum", [e], keepdims=0)
        total = b.node("Add", f"{p}/Acc", [total, red]) if total else red
    y = b.node("Reshape", "/out/Reshape", [total, b.const("one_shape", np.array([1], np.int64))])
    b.graph.input.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width]))
    b.graph.output.append(helper.make_tensor_value_info(y, TensorProto.FLOAT, [1]))
    return _model(b.graph, "data_dependent")


def quantized_matmul_model(rows: int = 16, dim: int = 32, scale: float = 1.0, column: int = 5) -> onnx.ModelProto:
    """Dynamic quantization as ONNX Runtime's quantizer writes it: ``DynamicQuantizeLinear`` (uint8 data),
    ``MatMulInteger`` (int32 accumulators) with int8 weights, ``Cast`` and rescale back to float.

    Input ``x`` float32 [1, rows, dim] has its column ``column`` multiplied by ``scale`` first (a subject
    with ``scale=0.998`` shifts some uint8 values of that column by one unit while the quantization scale,
    set by the maximum, usually stays). Output float32 [1, rows, dim].
    """
    b = _Builder(seed=11)
    w = b.const("w_q", b.rng.integers(-127, 128, size=(dim, dim)).astype(np.int8))
    col_scale = np.ones(dim, np.float32)
    col_scale[column] = scale
    x = b.node("Mul", "/in/Mul", ["x", b.const("in_scale", col_scale)])
    q = b.graph.node
    q.append(
        helper.make_node(
            "DynamicQuantizeLinear", [x], ["x_q", "x_scale", "x_zero_point"], name="/fc/DynamicQuantizeLinear"
        )
    )
    acc = b.node(
        "MatMulInteger", "/fc/MatMulInteger", ["x_q", w, "x_zero_point", b.const("w_zp", np.array(0, np.int8))]
    )
    f = b.node("Cast", "/fc/Cast", [acc], to=TensorProto.FLOAT)
    s = b.node("Mul", "/fc/Mul", ["x_scale", b.const("w_scale", np.array(0.01, np.float32))])
    y = b.node("Mul", "/fc/Mul_1", [f, s])
    y = b.node("Tanh", "/fc/Tanh", [y])
    b.graph.input.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, rows, dim]))
    b.graph.output.append(helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, rows, dim]))
    return _model(b.graph, "quantized_matmul")


def write_matmul_tower(folder: str, layers: int = 33, width: int = 4096, name: str = "tower") -> tuple[str, int]:
    """Write ``folder/name.onnx`` with ``layers`` × (MatMul by a ``width``² FP32 weight, then Tanh), weights in one
    external file ``name.onnx.data``; return ``(model path, data bytes)``.

    33 × 4096² is 2.2 GB: an LLM-class model over protobuf's 2 GB limit. Every weight is one block of ±0.9/sqrt(width)
    (signs from a seeded generator: a gain of 0.9, so FP16 rounding elsewhere stays small), streamed to the data file
    one layer at a time (writing needs ~2 weights of memory), except a planted FP16 underflow in the middle:
    layer ``layers // 2`` has weights of 2.7e-8 (0 in FP16) and the next layer 60000-sized ones that bring its tiny
    outputs back to O(1), so FP16 zeroes the rest of the model. Input ``x`` is ``[batch, width]``.
    """
    import os

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.onnx")
    data_name = f"{name}.onnx.data"
    signs = np.where(np.random.default_rng(0).random((width, width)) < 0.5, -1.0, 1.0).astype(np.float32)
    scales = [0.9 / math.sqrt(width)] * layers
    if layers >= 2:
        scales[layers // 2], scales[layers // 2 + 1] = 2.7e-8, 6e4
    graph = onnx.GraphProto()
    prev = "x"
    size = signs.nbytes
    with open(os.path.join(folder, data_name), "wb") as data:
        for i in range(layers):
            w = f"/layers.{i}/weight"
            data.write((signs * np.float32(scales[i])).tobytes())
            t = graph.initializer.add()
            t.name, t.data_type, t.data_location = w, TensorProto.FLOAT, TensorProto.EXTERNAL
            t.dims.extend([width, width])
            for key, value in (("location", data_name), ("offset", str(i * size)), ("length", str(size))):
                entry = t.external_data.add()
                entry.key, entry.value = key, value
            mm = f"/layers.{i}/MatMul"
            graph.node.append(helper.make_node("MatMul", [prev, w], [f"{mm}_output_0"], mm))
            th = f"/layers.{i}/Tanh"
            graph.node.append(helper.make_node("Tanh", [f"{mm}_output_0"], [f"{th}_output_0"], th))
            prev = f"{th}_output_0"
    graph.input.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width]))
    graph.output.append(helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["batch", width]))
    model = _model(graph, name)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path, layers * size
