"""Built-in demo model: a small ViT-style classifier with two planted FP16 failure sites.

``build_demo_model()`` generates (no download) an opset-17 ONNX model shaped like a PyTorch export: scoped node names
(``/stem/conv1/Conv``), tensor names ``<node>_output_0``, primitive-op LayerNorms, dynamic-shape head splitting
(Shape/Gather/Unsqueeze/Concat/Reshape) and Erf-GELU MLPs. ``demo_inputs()`` is a letterboxed 64x64 image with a
specular highlight; on it the FP32 model is finite and confident, while FP16 fails at the two ``DEMO_SITES``:

- **overflow** (``/norm/Pow``): a highlight-detector path makes block 1's MLP write a "massive activation" (~400) into
  one residual channel for the highlight tokens; the final LayerNorm squares it, ``(x - mean)^2`` ~ 1.6e5 > 65504.
  In FP16 the square becomes inf, the variance inf, ``(x - mean) / inf = 0``: those tokens collapse to the LayerNorm
  bias and the prediction changes (finite but wrong; NVIDIA/TensorRT#2564, microsoft/onnxruntime#13639).
- **underflow** (``/patch_embed/norm``): an RMS norm ``x / sqrt(mean(x^2) + 1e-10)`` over patch tokens. Letterbox
  padding tokens are exactly zero after the patch-embed Relu gate. FP32: ``0 / sqrt(1e-10) = 0``. FP16: the eps rounds
  to 0 (at most half the smallest subnormal, 2^-25), ``0 / sqrt(0) = NaN``, and attention spreads the NaN to every output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engine_core.data.store import save_inputs
from engine_core.model.synthetic import fp16_copy
from engine_core.workspace import Workspace, atomic_write_bytes

OPSET = 17
IR_VERSION = 8
IMAGE_SHAPE = (1, 3, 64, 64)
NUM_CLASSES = 10
DIM, HEADS, MLP_DIM, DEPTH = 64, 4, 128, 2
HEAD_DIM = DIM // HEADS
TOKENS = (IMAGE_SHAPE[2] // 8) * (IMAGE_SHAPE[3] // 8)
HIGHLIGHT_CHANNEL = 5  # patch-embed channel fed by the highlight detector (stem conv1/conv2 channel 0)
MASSIVE_CHANNEL = 17  # residual channel that block 1's MLP drives to ~400 on highlight tokens
HIGHLIGHT_CLASS = 3  # class the highlight feature votes for
UNDERFLOW_EPS = 1e-10
LN_EPS = 1e-5


@dataclass(frozen=True)
class PlantedSite:
    """A planted FP16 failure in the demo model.

    ``node``/``tensor``: where the bad FP16 value first appears. ``keep_fp32``: the smallest node set that, computed
    in FP32 with everything else in FP16, removes this failure (what precision bisection should report).
    """

    kind: str
    node: str
    tensor: str
    keep_fp32: tuple[str, ...]
    fp32_behaviour: str
    fp16_behaviour: str


DEMO_SITES: dict[str, PlantedSite] = {
    "overflow": PlantedSite(
        kind="overflow",
        node="/norm/Pow",
        tensor="/norm/Pow_output_0",
        keep_fp32=("/norm/Pow", "/norm/ReduceMean_1"),
        fp32_behaviour="(x - mean)^2 reaches ~1.6e5 on the highlight tokens (max |x| > 65504)",
        fp16_behaviour="inf -> variance inf -> normalised tokens 0 -> LayerNorm output = bias; prediction changes",
    ),
    "underflow": PlantedSite(
        kind="underflow",
        node="/patch_embed/norm/Add",
        tensor="/patch_embed/norm/Add_output_0",
        keep_fp32=("/patch_embed/norm/Constant_1", "/patch_embed/norm/Add", "/patch_embed/norm/Sqrt"),
        fp32_behaviour="mean(x^2) + 1e-10 = 1e-10 on all-zero padding tokens; 0 / sqrt(1e-10) = 0",
        fp16_behaviour="eps 1e-10 -> 0, 0 / sqrt(0) = NaN on padding tokens; attention spreads NaN to all outputs",
    ),
}


class _GraphBuilder:
    """Emits nodes with PyTorch-exporter names: ``{scope}/{Op}[_k]`` and outputs ``{node}_output_{j}``."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._counts: dict[str, int] = {}

    def op(self, scope: str, op_type: str, inputs: list[str], outputs: list[str] | None = None, **attrs: Any) -> str:
        """Add one node; return its (first) output name."""
        key = f"{scope}/{op_type}"
        k = self._counts.get(key, 0)
        self._counts[key] = k + 1
        name = key if k == 0 else f"{key}_{k}"
        outs = outputs or [f"{name}_output_0"]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0]

    def const(self, scope: str, value: np.ndarray | np.generic) -> str:
        """A ``Constant`` node, as the exporter emits for scalars and shapes."""
        return self.op(scope, "Constant", [], value=numpy_helper.from_array(np.asarray(value)))

    def init(self, name: str, value: np.ndarray) -> str:
        """An initializer (weights keep their module path names, e.g. ``blocks.0.norm1.weight``)."""
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name


def _layer_norm(b: _GraphBuilder, scope: str, x: str, weight: np.ndarray, bias: np.ndarray) -> str:
    """LayerNorm over the last axis as an opset<17 export writes it (ReduceMean/Sub/Pow/Sqrt/Div)."""
    pname = scope.strip("/").replace("/", ".")
    mean = b.op(scope, "ReduceMean", [x], axes=[-1], keepdims=1)
    d = b.op(scope, "Sub", [x, mean])
    sq = b.op(scope, "Pow", [d, b.const(scope, np.float32(2.0))])
    var = b.op(scope, "ReduceMean", [sq], axes=[-1], keepdims=1)
    std = b.op(scope, "Sqrt", [b.op(scope, "Add", [var, b.const(scope, np.float32(LN_EPS))])])
    y = b.op(scope, "Div", [d, std])
    y = b.op(scope, "Mul", [y, b.init(f"{pname}.weight", weight)])
    return b.op(scope, "Add", [y, b.init(f"{pname}.bias", bias)])


def _linear(b: _GraphBuilder, scope: str, x: str, w: np.ndarray, bias: np.ndarray) -> str:
    """``x @ w + bias`` (w stored [in, out], as the exporter stores transposed Linear weights)."""
    pname = scope.strip("/").replace("/", ".")
    y = b.op(scope, "MatMul", [x, b.init(f"{pname}.weight", w)])
    return b.op(scope, "Add", [b.init(f"{pname}.bias", bias), y])


def _dims(b: _GraphBuilder, scope: str, x: str, axes: tuple[int, ...]) -> list[str]:
    """Dynamic ``x.size(i)`` for each axis, unsqueezed to 1-D (Shape/Gather/Unsqueeze)."""
    out = []
    for a in axes:
        g = b.op(scope, "Gather", [b.op(scope, "Shape", [x]), b.const(scope, np.int64(a))], axis=0)
        out.append(b.op(scope, "Unsqueeze", [g, b.const(scope, np.array([0], np.int64))]))
    return out


def _split_heads(b: _GraphBuilder, scope: str, x: str) -> str:
    """[B, N, D] -> [B, H, N, hd], with the reshape target computed from the runtime shape."""
    batch, seq = _dims(b, scope, x, (0, 1))
    shape = b.op(
        scope,
        "Concat",
        [batch, seq, b.const(scope, np.array([HEADS], np.int64)), b.const(scope, np.array([HEAD_DIM], np.int64))],
        axis=0,
    )
    return b.op(scope, "Transpose", [b.op(scope, "Reshape", [x, shape])], perm=[0, 2, 1, 3])


def _gelu(b: _GraphBuilder, scope: str, x: str) -> str:
    """Exact GELU as exported: ``x * 0.5 * (1 + erf(x / sqrt(2)))``."""
    e = b.op(scope, "Erf", [b.op(scope, "Div", [x, b.const(scope, np.float32(np.sqrt(2.0)))])])
    e = b.op(scope, "Add", [e, b.const(scope, np.float32(1.0))])
    return b.op(scope, "Mul", [b.op(scope, "Mul", [x, e]), b.const(scope, np.float32(0.5))])


def _randn(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    """He-style random weights scaled by 1/sqrt(fan_in)."""
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def _ln_params(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Trained-looking LayerNorm weight (~1) and bias (~0)."""
    weight = (1.0 + 0.05 * rng.standard_normal(DIM)).astype(np.float32)
    return weight, (0.02 * rng.standard_normal(DIM)).astype(np.float32)


def _block(b: _GraphBuilder, rng: np.random.Generator, i: int, x: str) -> str:
    """Pre-norm transformer block: x + Attn(LN(x)); x + MLP(LN(x))."""
    s = f"/blocks.{i}"
    h = _layer_norm(b, f"{s}/norm1", x, *_ln_params(rng))
    heads = {}
    for part in ("query", "key", "value"):
        w = _randn(rng, (DIM, DIM), DIM)
        y = _linear(b, f"{s}/attn/{part}", h, w, (0.02 * rng.standard_normal(DIM)).astype(np.float32))
        heads[part] = _split_heads(b, f"{s}/attn", y)
    kt = b.op(f"{s}/attn", "Transpose", [heads["key"]], perm=[0, 1, 3, 2])
    scores = b.op(f"{s}/attn", "MatMul", [heads["query"], kt])
    scores = b.op(f"{s}/attn", "Div", [scores, b.const(f"{s}/attn", np.float32(np.sqrt(HEAD_DIM)))])
    probs = b.op(f"{s}/attn", "Softmax", [scores], axis=-1)
    ctx = b.op(f"{s}/attn", "MatMul", [probs, heads["value"]])
    ctx = b.op(f"{s}/attn", "Transpose", [ctx], perm=[0, 2, 1, 3])
    batch, seq = _dims(b, f"{s}/attn", ctx, (0, 1))
    shape = b.op(f"{s}/attn", "Concat", [batch, seq, b.const(f"{s}/attn", np.array([DIM], np.int64))], axis=0)
    ctx = b.op(f"{s}/attn", "Reshape", [ctx, shape])
    w_proj = _randn(rng, (DIM, DIM), DIM) * 0.5
    attn = _linear(b, f"{s}/attn/proj", ctx, w_proj, np.zeros(DIM, np.float32))
    x = b.op(s, "Add", [x, attn])

    h = _layer_norm(b, f"{s}/norm2", x, *_ln_params(rng))
    w1, b1 = _randn(rng, (DIM, MLP_DIM), DIM), (0.02 * rng.standard_normal(MLP_DIM)).astype(np.float32)
    w2 = _randn(rng, (MLP_DIM, DIM), MLP_DIM) * 0.5
    if i == DEPTH - 1:
        # Planted "massive activation": hidden unit 0 fires only on highlight tokens (large normalised highlight
        # channel) and writes ~400 into one residual channel.
        w1[:, 0] = 0.0
        w1[HIGHLIGHT_CHANNEL, 0] = 3.0
        b1[0] = -9.0
        w2[0, :] = 0.0
        w2[0, MASSIVE_CHANNEL] = 30.0
    h = _linear(b, f"{s}/mlp/fc1", h, w1, b1)
    h = _gelu(b, f"{s}/mlp/act", h)
    h = _linear(b, f"{s}/mlp/fc2", h, w2, np.zeros(DIM, np.float32))
    return b.op(s, "Add", [x, h])


def _conv(b: _GraphBuilder, scope: str, x: str, w: np.ndarray, bias: np.ndarray, stride: int, pad: int) -> str:
    """Conv with BatchNorm folded into weight and bias (as exported in eval mode)."""
    pname = scope.strip("/").replace("/", ".")
    k = w.shape[-1]
    return b.op(
        scope,
        "Conv",
        [x, b.init(f"{pname}.weight", w), b.init(f"{pname}.bias", bias)],
        dilations=[1, 1],
        group=1,
        kernel_shape=[k, k],
        pads=[pad] * 4,
        strides=[stride, stride],
    )


def build_demo_model() -> onnx.ModelProto:
    """Build the demo classifier (deterministic bytes, opset 17, 251 nodes); see the module docstring."""
    rng = np.random.default_rng(20240517)
    b = _GraphBuilder()

    # Stem: conv1 (3->16, s2) + Relu, conv2 (16->32, s2) + SiLU. Channel 0 of both is a highlight detector:
    # conv1 fires where the 3x3x3 mean exceeds 1.7 (saturated, normalised pixels), conv2 averages it.
    w1 = _randn(rng, (16, 3, 3, 3), 27)
    b1 = (-0.05 - 0.1 * rng.random(16)).astype(np.float32)  # all negative: zero padding stays exactly 0 after Relu
    w1[0], b1[0] = 3.0 / 27, -3.0 * 1.7
    x = b.op("/stem/act1", "Relu", [_conv(b, "/stem/conv1", "image", w1, b1, 2, 1)])
    w2 = _randn(rng, (32, 16, 3, 3), 144)
    w2[:, 0] = 0.0
    w2[0] = 0.0
    w2[0, 0] = 4.0 / 9
    b2 = (0.1 * rng.standard_normal(32)).astype(np.float32)
    b2[0] = -1.0
    c = _conv(b, "/stem/conv2", x, w2, b2, 2, 1)
    x = b.op("/stem/act2", "Mul", [c, b.op("/stem/act2", "Sigmoid", [c])])

    # Patch embedding: 2x2/s2 conv to 64 channels + Relu gate. Its bias is centred on the response to an all-zero
    # (letterbox) region, so padding tokens are exactly 0 after the Relu.
    w3 = _randn(rng, (DIM, 32, 2, 2), 128)
    w3[:, 0] = 0.0
    w3[HIGHLIGHT_CHANNEL] = 0.0
    w3[HIGHLIGHT_CHANNEL, 0] = 2.5
    silu_pad = b2 / (1.0 + np.exp(-b2))
    b3 = (-np.einsum("oikl,i->o", w3, silu_pad) - 0.02 - 0.05 * rng.random(DIM)).astype(np.float32)
    x = b.op("/patch_embed/act", "Relu", [_conv(b, "/patch_embed/proj", x, w3, b3, 2, 0)])
    x = b.op("/patch_embed", "Reshape", [x, b.const("/patch_embed", np.array([1, DIM, -1], np.int64))])
    x = b.op("/patch_embed", "Transpose", [x], perm=[0, 2, 1])

    # Planted underflow: RMS norm with eps 1e-10 (rounds to 0 in FP16).
    s = "/patch_embed/norm"
    ms = b.op(s, "ReduceMean", [b.op(s, "Pow", [x, b.const(s, np.float32(2.0))])], axes=[-1], keepdims=1)
    rms = b.op(s, "Sqrt", [b.op(s, "Add", [ms, b.const(s, np.float32(UNDERFLOW_EPS))])])
    g = np.ones(DIM, np.float32)
    g[HIGHLIGHT_CHANNEL] = 2.0
    x = b.op(s, "Mul", [b.op(s, "Div", [x, rms]), b.init("patch_embed.norm.weight", g)])
    x = b.op("", "Add", [x, b.init("pos_embed", (0.02 * rng.standard_normal((1, TOKENS, DIM))).astype(np.float32))])

    for i in range(DEPTH):
        x = _block(b, rng, i, x)

    # Planted overflow: the final LayerNorm squares the massive activation.
    x = _layer_norm(b, "/norm", x, *_ln_params(rng))
    x = b.op("/head/pool", "ReduceMean", [x], axes=[1], keepdims=0)
    w_fc = (rng.standard_normal((NUM_CLASSES, DIM)) / np.sqrt(DIM)).astype(np.float32)
    w_fc[HIGHLIGHT_CLASS, MASSIVE_CHANNEL] = 12.0
    b_fc = np.zeros(NUM_CLASSES, np.float32)
    b_fc[HIGHLIGHT_CLASS] = 10.0
    logits = b.op(
        "/head/fc",
        "Gemm",
        [x, b.init("head.fc.weight", w_fc), b.init("head.fc.bias", b_fc)],
        outputs=["logits"],
        alpha=1.0,
        beta=1.0,
        transB=1,
    )
    b.op("/head", "Softmax", [logits], outputs=["probs"], axis=-1)

    graph = helper.make_graph(
        b.nodes,
        "trtdbg_demo_vit",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, list(IMAGE_SHAPE))],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, NUM_CLASSES]),
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, NUM_CLASSES]),
        ],
        initializer=b.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="trtdbg-demo",
        producer_version="1",
        doc_string="trtdbg demo ViT with planted FP16 overflow (/norm/Pow) and underflow (/patch_embed/norm) sites",
    )
    return model


def demo_inputs(seed: int = 0) -> dict[str, np.ndarray]:
    """A normalised, letterboxed 64x64 RGB image (rows 0-15 and 48-63 are zero padding) with textured content and a
    saturated specular highlight; triggers both planted sites for any seed."""
    rng = np.random.default_rng(seed)
    h, w = IMAGE_SHAPE[2:]
    yy, xx = np.mgrid[0:32, 0:w].astype(np.float32)
    base = 0.6 * np.sin(xx / 7.0 + rng.uniform(0, 6.3)) * np.cos(yy / 5.0) + 0.02 * (xx - w / 2)
    tint = np.array([0.2, -0.1, -0.3], np.float32)[:, None, None] + 0.1 * rng.standard_normal((3, 1, 1))
    content = base[None] + tint + 0.15 * rng.standard_normal((3, 32, w))
    content = np.clip(content, -1.4, 1.4)
    cy, cx = 10 + rng.integers(0, 8), 20 + rng.integers(0, 20)
    disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= 36.0
    content[:, disk] = np.array([2.25, 2.43, 2.64], np.float32)[:, None]  # white: (1 - mean) / std per channel
    image = np.zeros(IMAGE_SHAPE, np.float32)
    image[0, :, 16:48] = content
    return {"image": image}


@dataclass(frozen=True)
class DemoFiles:
    """Where the demo was written."""

    workspace: Path
    model: Path
    fp16_model: Path
    inputs: Path


def write_demo(workspace: str | None = None) -> DemoFiles:
    """Build the demo model, its FP16 copy and inputs and write them (atomically) into the workspace.

    Default workspace: ``.trtdbg/`` in the current directory.
    """
    ws = Workspace.for_model(None, workspace)
    ws.check_writable()
    model = build_demo_model()
    files = DemoFiles(ws.root, ws.path("demo.onnx"), ws.path("demo_fp16.onnx"), ws.path("demo_inputs.json"))
    atomic_write_bytes(files.model, model.SerializeToString())
    atomic_write_bytes(files.fp16_model, fp16_copy(model, rename=False).SerializeToString())
    save_inputs(files.inputs, [demo_inputs()])
    return files
