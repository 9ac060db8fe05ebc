"""Which nodes can compute in which precision, and why not (the demotion rules of docs/precision.md §2-§4).

:class:`Analysis` is computed once per model: element types of every tensor (ONNX shape inference through the
model index), the schema of every node at the model's opset, the shape sub-graph slice, and for each top-level node
whether FP16 / BF16 / INT8 can apply at all (a *candidate*) and, if it can but must not, the reason (a *blocker*).
Rewriting a plan (:mod:`engine_core.precision.rewrite`) then only walks the nodes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from engine_core.errors import TrtdbgError
from engine_core.fp16 import FP16_MAX, flushes_to_zero
from engine_core.model.index import ModelIndex
from engine_core.model.loader import KEEP_FP32_INPUTS, RANDOM_OPS, formal_parameter

F32, F16, BF16 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16
FLOAT_TYPES = {"fp16": F16, "bf16": BF16}
LOW_FLOATS = ("fp16", "bf16")
TYPE_NAMES: dict[int, str] = {F32: "fp32", F16: "fp16", BF16: "bf16"}
_TYPE_STR = {F16: "tensor(float16)", BF16: "tensor(bfloat16)"}
"""Nonzero magnitudes at or below this round to 0 in float16 (half the smallest subnormal, 2^-24)."""
TINY_CONSTANT_ELEMENTS = 16
"""The underflow rule looks at constants up to this size (eps-like scalars); a few flushed values in a large weight
tensor are harmless."""

ATTRIBUTE_TYPED = RANDOM_OPS | {"EyeLike"}
QUANT_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "MatMulInteger",
        "ConvInteger",
    }
)
SHAPE_READERS = frozenset({"Shape", "Size"})
"""Read only the shape of their input: no precision applies, and the shape slice stops there."""
INDEX_MAKERS = frozenset({"ArgMax", "ArgMin", "TopK", "NonZero", "NonMaxSuppression", "Unique"})
"""Turn data into indices: the shape slice stops there (their data input is not a shape computation)."""
QUANTIZABLE = ("Conv", "ConvTranspose", "MatMul", "Gemm")
"""Ops whose inputs get Q/DQ in an INT8 plan (TensorRT's explicit-quantization fusion targets)."""
_REDUCE_AXES_INPUT = frozenset(
    {
        "ReduceSum",
        "ReduceMean",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceSumSquare",
    }
)
SHAPE_PARAM_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,),
    "Expand": (1,),
    "Tile": (1,),
    "Slice": (1, 2, 3, 4),
    "Pad": (1, 3),
    "Resize": (1, 2, 3),
    "Upsample": (1,),
    "ConstantOfShape": (0,),
    "Range": (0, 1, 2),
    "TopK": (1,),
    "OneHot": (1,),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
    "Split": (1,),
    "Gather": (1,),
    "GatherElements": (1,),
    "GatherND": (1,),
    "ScatterND": (1,),
    "ScatterElements": (1,),
    "Scatter": (1,),
    "NonMaxSuppression": (2, 3, 4),
    "CumSum": (1,),
    "Trilu": (1,),
    "Compress": (1,),
    "CenterCropPad": (1,),
    "Col2Im": (1, 2, 3),
    "RoiAlign": (2,),
    "MaxUnpool": (2,),
    "ReverseSequence": (1,),
    **{op: (1,) for op in _REDUCE_AXES_INPUT},
}
"""Inputs that carry shapes, indices, axes or sizes: their backward slice is the shape sub-graph."""


@dataclass
class NodeFacts:
    """What precision rules say about one top-level node."""

    pos: int
    name: str
    op_type: str
    float_inputs: tuple[int, ...] = ()
    """Input positions holding FP32 tensors that a low-precision node converts."""
    low_outputs: tuple[int, ...] = ()
    """Output positions that become low precision when the node does."""
    candidate: bool = False
    """FP16/BF16 can apply (the node computes on or produces FP32 tensors)."""
    int8_candidate: bool = False
    blockers: dict[str, str] = field(default_factory=dict)
    """``{precision: reason}`` for precisions the node may not take."""
    kinds: dict[str, str] = field(default_factory=dict)
    """``{precision: short category of the reason}`` (a key of the coverage's ``kept`` counts)."""

    def block(self, reason: str, kind: str, precisions: Iterable[str] = ("fp16", "bf16", "int8")) -> None:
        """Forbid ``precisions`` (the first reason per precision wins)."""
        for p in precisions:
            if p not in self.blockers:
                self.blockers[p] = reason
                self.kinds[p] = kind

    def allows(self, precision: str) -> bool:
        """True when ``precision`` (fp16, bf16, int8) can legally apply to this node."""
        if precision == "fp32":
            return True
        ok = self.int8_candidate if precision == "int8" else self.candidate
        return ok and precision not in self.blockers

    def why_not(self, precision: str) -> str:
        """Why ``precision`` does not apply (empty when it does)."""
        if self.allows(precision):
            return ""
        if precision in self.blockers:
            return self.blockers[precision]
        if precision == "int8":
            return f"{self.op_type} is not quantized (Q/DQ go on the inputs of {', '.join(QUANTIZABLE)})"
        return f"{self.op_type} computes no float tensor"


class Analysis:
    """Per-model facts shared by every plan: tensor types, node order, schemas, candidates and blockers."""

    def __init__(
        self, model: onnx.ModelProto, path: str | os.PathLike[str] | None = None, index: ModelIndex | None = None
    ) -> None:
        self.model = model
        self.path = path
        self.index = index or ModelIndex(model, path)
        idx = self.index
        self.opset = idx.opsets.get("", idx.opsets.get("ai.onnx", 1))
        self.names: list[str] = [idx.name(i) for i in range(idx.num_top_level)]
        self.protos: list[onnx.NodeProto] = [idx.node_proto(i) for i in range(idx.num_top_level)]
        self.pos: dict[str, int] = {n: i for i, n in enumerate(self.names)}
        self.types: dict[str, int] = {}
        for name, dtype, _ in idx.known_tensors(infer=True):
            try:
                self.types[name] = onnx.helper.np_dtype_to_tensor_dtype(dtype)
            except (KeyError, ValueError, TypeError):
                continue
        graph = model.graph
        self.initializers: dict[str, TensorProto] = {t.name: t for t in graph.initializer}
        for t in graph.initializer:
            self.types[t.name] = t.data_type
        self.constants: dict[str, TensorProto] = {}
        for node in self.protos:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                value = _constant_value(node)
                if value is not None:
                    self.constants[node.output[0]] = value
                    self.types[node.output[0]] = value.data_type
        self.graph_inputs = [vi.name for vi in graph.input]
        self.graph_outputs = [vi.name for vi in graph.output]
        captured: set[str] = set()
        for sub in idx.subgraphs:
            captured.update(sub.captures)
        self.protected: frozenset[str] = frozenset(self.graph_outputs) | frozenset(captured)
        """Names whose dtype must not change: graph outputs and outer-scope names read by sub-graphs."""
        self.all_names: set[str] = set(self.names) | set(self.types) | set(self.graph_inputs)
        for node in self.protos:
            self.all_names.update(node.input)
            self.all_names.update(node.output)
        self._schemas: dict[tuple[str, str], onnx.defs.OpSchema | None] = {}
        self._template: onnx.ModelProto | None = None
        self._const_checks: dict[str, tuple[float, float, int] | None] = {}
        self.shape_slice = self._shape_slice()
        self.facts: list[NodeFacts] = [self._facts(i) for i in range(len(self.protos))]

    # ------------------------------------------------------------------ queries
    def node(self, name: str) -> NodeFacts:
        """Facts of the top-level node ``name``; unknown names raise :class:`TrtdbgError` with close matches."""
        pos = self.pos.get(name)
        if pos is None:
            import difflib

            where = self.path or "the model"
            sub = self.index.find(name)
            if sub is not None:
                raise TrtdbgError(
                    f"node '{name}' of {where} is inside a sub-graph; only top-level nodes take a "
                    f"precision (give the If/Loop/Scan node instead)"
                )
            close = difflib.get_close_matches(name, self.names, n=3)
            hint = (
                f"; did you mean {', '.join(close)}?" if close else "; `trtdbg inspect MODEL --show layers` lists them"
            )
            raise TrtdbgError(f"plan names node '{name}', which does not exist in {where}{hint}")
        return self.facts[pos]

    def candidates(self, precision: str) -> list[str]:
        """Top-level nodes that may take ``precision`` (fp16, bf16, int8), in topological order."""
        return [f.name for f in self.facts if f.allows(precision)]

    def demotions(self, precision: str) -> dict[str, str]:
        """``{node: reason}`` for nodes that touch floats but may not take ``precision``."""
        if precision == "int8":
            return {f.name: f.blockers["int8"] for f in self.facts if f.int8_candidate and "int8" in f.blockers}
        return {f.name: f.blockers[precision] for f in self.facts if f.candidate and precision in f.blockers}

    def schema(self, node: onnx.NodeProto) -> onnx.defs.OpSchema | None:
        """The node's schema at the model's opset (``None`` for custom domains and unknown ops)."""
        key = (node.domain, node.op_type)
        if key not in self._schemas:
            try:
                self._schemas[key] = (
                    onnx.defs.get_schema(node.op_type, self.opset, "") if node.domain in ("", "ai.onnx") else None
                )
            except onnx.defs.SchemaError:
                self._schemas[key] = None
        return self._schemas[key]

    def empty_copy(self) -> onnx.ModelProto:
        """A copy of the model without nodes, initializers and top-level value_info (to be filled by a rewrite)."""
        if self._template is None:
            template = onnx.ModelProto()
            _copy_fields(self.model, template, {"graph"})
            _copy_fields(self.model.graph, template.graph, {"node", "initializer", "value_info"})
            self._template = template
        out = onnx.ModelProto()
        out.CopyFrom(self._template)
        return out

    def node_copies(self) -> Iterator[tuple[onnx.NodeProto, NodeFacts, onnx.NodeProto]]:
        """``(original, its facts, a copy named as the plan names it)`` per top-level node, in order (for rewrites)."""
        for src, facts in zip(self.protos, self.facts):
            node = onnx.NodeProto()
            node.CopyFrom(src)
            node.name = facts.name
            yield src, facts, node

    def constant_array(self, name: str) -> np.ndarray | None:
        """Values of an initializer or Constant output (``None`` for other tensors)."""
        t = self.initializers.get(name) or self.constants.get(name)
        if t is None:
            return None
        if t.data_location == TensorProto.EXTERNAL:
            return self.index.initializer_array(name)
        return numpy_helper.to_array(t)

    def constant_value(self, name: str) -> np.ndarray:
        """Values of ``name``, known to be an initializer or Constant output."""
        arr = self.constant_array(name)
        assert arr is not None, f"{name} is not a constant"
        return arr

    # ------------------------------------------------------------------ building
    def _shape_slice(self) -> dict[int, str]:
        """``{node pos: reason}`` for nodes in the backward slice of shape/index/parameter inputs."""
        producer = {}
        for pos, node in enumerate(self.protos):
            for y in node.output:
                if y:
                    producer[y] = pos
        found: dict[int, str] = {}
        stack: list[tuple[int, str]] = []
        for pos, node in enumerate(self.protos):
            for i in SHAPE_PARAM_INPUTS.get(node.op_type, ()):
                if i < len(node.input) and node.input[i] in producer:
                    why = f"computes input {i} of {node.op_type} '{self.names[pos]}' (shape sub-graph)"
                    stack.append((producer[node.input[i]], why))
        while stack:
            pos, why = stack.pop()
            if pos in found:
                continue
            op = self.protos[pos].op_type
            if op in INDEX_MAKERS:
                continue
            found[pos] = why
            if op in SHAPE_READERS:
                continue
            for x in self.protos[pos].input:
                if x in producer and producer[x] not in found:
                    stack.append((producer[x], why))
        return found

    def _facts(self, pos: int) -> NodeFacts:
        node = self.protos[pos]
        facts = NodeFacts(pos, self.names[pos], node.op_type)
        types = self.types
        if node.domain not in ("", "ai.onnx"):
            if any(types.get(x) == F32 for x in (*node.input, *node.output) if x):
                facts.candidate = True
                facts.block(f"custom domain '{node.domain}' (plugin or custom op)", "custom domain", LOW_FLOATS)
            return facts
        op = node.op_type
        if op in SHAPE_READERS:
            return facts
        has_graph = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
        touches = any(types.get(x) == F32 for x in (*node.input, *node.output) if x)
        if has_graph or op in ATTRIBUTE_TYPED or op in QUANT_OPS:
            if touches:
                facts.candidate = True
                if has_graph:
                    facts.block("carries sub-graphs (control flow; its bodies stay fp32)", "control flow", LOW_FLOATS)
                elif op in ATTRIBUTE_TYPED:
                    facts.block(f"output dtype of {op} comes from an attribute", "attribute-typed output", LOW_FLOATS)
                else:
                    facts.block("Q/DQ node: scales stay fp32", "Q/DQ", LOW_FLOATS)
            return facts
        schema = self.schema(node)
        if schema is None:
            if touches:
                facts.candidate = True
                facts.block(f"no schema for {op} at opset {self.opset}", "no schema", LOW_FLOATS)
            return facts

        keep = KEEP_FP32_INPUTS.get(op, frozenset())
        float_inputs: list[int] = []
        params: set[str] = set()
        bad: dict[int, str] = {}  # low type -> first offending input
        unknown = [x for x in node.input if x and x not in types]
        for i, x in enumerate(node.input):
            if not x or types.get(x) != F32 or i in keep:
                continue
            formal = formal_parameter(schema.inputs, i)
            if formal is None:
                continue
            float_inputs.append(i)
            params.add(formal.type_str)
            allowed = _allowed(schema, formal.type_str)
            for low in (F16, BF16):
                if _TYPE_STR[low] not in allowed and low not in bad:
                    bad[low] = f"{op} at opset {self.opset} has no {_TYPE_STR[low][7:-1]} for input '{formal.name}'"
        low_outputs: list[int] = []
        if op == "Cast":
            to = _attr_int(node, "to")
            if to == F32:
                low_outputs.append(0)
        elif op in ("Constant", "ConstantOfShape"):
            value = self.constants.get(node.output[0]) if op == "Constant" else constant_of_shape_value(node)
            if value is not None and value.data_type == F32:
                low_outputs.append(0)
        else:
            for j, y in enumerate(node.output):
                formal = formal_parameter(schema.outputs, j)
                if y and formal is not None and formal.type_str in params and types.get(y) == F32:
                    low_outputs.append(j)
        if op in ("Cast", "Constant", "ConstantOfShape") and low_outputs:
            allowed = _allowed(schema, schema.outputs[0].type_str)
            for low in (F16, BF16):
                if _TYPE_STR[low] not in allowed and low not in bad:
                    bad[low] = f"{op} at opset {self.opset} cannot produce {_TYPE_STR[low][7:-1]}"
        if self.opset < 13:
            bad[BF16] = f"opset {self.opset} has no bfloat16 Cast (bfloat16 needs opset >= 13)"
        facts.float_inputs = tuple(float_inputs)
        facts.low_outputs = tuple(low_outputs)
        facts.candidate = bool(float_inputs or low_outputs)
        facts.int8_candidate = op in QUANTIZABLE and bool(node.input) and types.get(node.input[0]) == F32
        if not (facts.candidate or facts.int8_candidate):
            return facts

        block = facts.block
        if unknown:
            block(f"input '{unknown[0]}' has an unknown type (shape inference could not type it)", "unknown type")
        if pos in self.shape_slice:
            block(self.shape_slice[pos], "shape sub-graph")
        for low_type, reason in bad.items():
            block(reason, f"{TYPE_NAMES[low_type]} not in the opset-{self.opset} schema", (TYPE_NAMES[low_type],))
        constant_inputs = [node.input[i] for i in float_inputs]
        if op in ("Constant", "ConstantOfShape") and low_outputs:
            constant_inputs.append(node.output[0])
        for x in constant_inputs:
            check = self._constant_check(x, node)
            if check is None:
                continue
            peak, tiny, size = check
            what = "initializer" if x in self.initializers else "constant"
            if peak > FP16_MAX:
                block(
                    f"{what} '{x}' holds |x| = {peak:.6g} > 65504 (fp16 max)", "constant beyond fp16 range", ("fp16",)
                )
            if tiny and size <= TINY_CONSTANT_ELEMENTS:
                block(f"{what} '{x}' holds {tiny:.3g}, which is 0 in fp16", "constant that is 0 in fp16", ("fp16",))
        return facts

    def _constant_check(self, name: str, node: onnx.NodeProto) -> tuple[float, float, int] | None:
        """``(max |x|, smallest nonzero |x| that flushes to 0 in fp16 or 0, size)`` of a float constant."""
        if name in self._const_checks:
            return self._const_checks[name]
        if node.op_type == "ConstantOfShape":
            arr: np.ndarray | None = numpy_helper.to_array(constant_of_shape_value(node))
        else:
            arr = self.constant_array(name)
        result = None
        if arr is not None and arr.dtype == np.float32 and arr.size:
            a = np.abs(arr[np.isfinite(arr)])
            peak = float(a.max()) if a.size else 0.0
            flushed = a[flushes_to_zero(a)]
            result = (peak, float(flushed.min()) if flushed.size else 0.0, int(arr.size))
        self._const_checks[name] = result
        return result


def _copy_fields(src: Any, dst: Any, skip: set[str]) -> None:
    """Copy every set protobuf field of ``src`` into ``dst`` except ``skip``."""
    for fd, value in src.ListFields():
        if fd.name in skip:
            continue
        repeated = fd.is_repeated if hasattr(fd, "is_repeated") else fd.label == fd.LABEL_REPEATED
        if repeated:
            getattr(dst, fd.name).extend(value)
        elif fd.type == fd.TYPE_MESSAGE:
            getattr(dst, fd.name).CopyFrom(value)
        else:
            setattr(dst, fd.name, value)


def _allowed(schema: onnx.defs.OpSchema, type_str: str) -> list[str]:
    for c in schema.type_constraints:
        if c.type_param_str == type_str:
            return list(c.allowed_type_strs)
    return [type_str]


def _attr_int(node: onnx.NodeProto, name: str) -> int | None:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return None


def _constant_value(node: onnx.NodeProto) -> TensorProto | None:
    """A Constant node's value as a tensor (``value``, ``value_float(s)``); ``None`` for other attributes."""
    for a in node.attribute:
        if a.name == "value":
            return a.t
        if a.name == "value_float":
            return numpy_helper.from_array(np.array(a.f, np.float32))
        if a.name == "value_floats":
            return numpy_helper.from_array(np.array(list(a.floats), np.float32))
        if a.name == "value_int":
            return numpy_helper.from_array(np.array(a.i, np.int64))
        if a.name == "value_ints":
            return numpy_helper.from_array(np.array(list(a.ints), np.int64))
    return None


def constant_of_shape_value(node: onnx.NodeProto) -> TensorProto:
    """ConstantOfShape's fill value (default: float32 zero)."""
    for a in node.attribute:
        if a.name == "value":
            return a.t
    return numpy_helper.from_array(np.zeros(1, np.float32))
