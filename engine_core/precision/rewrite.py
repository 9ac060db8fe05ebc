"""Apply a precision assignment to an ONNX graph: the model with real FP16/BF16 types (docs/precision.md §2 step 3-4).

Nodes computing in low precision read low-precision copies of their FP32 inputs (a typed initializer copy
``<name>__fp16`` or one shared ``Cast`` ``<name>__to_fp16``), ``Cast(to=FLOAT)`` becomes ``to=FLOAT16`` and float
``Constant``/``ConstantOfShape`` values are converted. Every other node sees exactly its original input types (casts
back ``<name>__to_fp32``). Graph outputs and names read by sub-graphs keep their dtype: the producer writes
``<name>__fp16`` and a ``Cast`` restores ``<name>``. All other tensors keep their names (with the new dtype), so
tensors of the rewritten model map one to one onto the original's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import onnx
from onnx import TensorProto, helper

from engine_core.errors import TrtdbgError, first_line
from engine_core.model import weights
from engine_core.precision.numerics import low_array, to_tensor
from engine_core.precision.rules import F32, TYPE_NAMES, Analysis, constant_of_shape_value


class Namer:
    """Fresh names that collide with nothing in the model (nor with each other)."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = taken
        self.added: set[str] = set()

    def __call__(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken or name in self.added:
            name, k = f"{base}_{k}", k + 1
        self.added.add(name)
        return name


def rewrite(analysis: Analysis, low: Mapping[str, int]) -> onnx.ModelProto:
    """The model with nodes ``low`` (``{node name: FLOAT16|BFLOAT16}``, already legal) computing in those types."""
    out = analysis.empty_copy()
    graph = out.graph
    fresh = Namer(analysis.all_names)
    types = analysis.types
    current: dict[str, tuple[str, int]] = {}
    casts: dict[tuple[str, int], str] = {}
    nodes: list[onnx.NodeProto] = []
    extra_inits: list[TensorProto] = []
    replaced: set[str] = set()
    constant_inits = set(analysis.initializers) - set(analysis.graph_inputs)

    def as_type(x: str, want: int) -> str:
        name, typ = current.get(x, (x, types[x]))
        if typ == want:
            return name
        key = (x, want)
        new = casts.get(key)
        if new is None:
            if x in constant_inits and name == x:
                new = fresh(f"{x}__{TYPE_NAMES[want]}")
                extra_inits.append(typed_initializer(analysis, x, want, new))
                replaced.add(x)
            else:
                new = fresh(f"{x}__to_{TYPE_NAMES[want]}")
                nodes.append(helper.make_node("Cast", [name], [new], new, to=want))
            casts[key] = new
        return new

    for src, facts, node in analysis.node_copies():
        want = low.get(facts.name)
        converted = set(facts.float_inputs) if want else ()
        for i, x in enumerate(src.input):
            if x and types.get(x) == F32:
                node.input[i] = as_type(x, want if want and i in converted else F32)
        restores = []
        if want:
            _retype_attributes(node, analysis, want)
            for j in facts.low_outputs:
                y = src.output[j]
                if y in analysis.protected:
                    inner = fresh(f"{y}__{TYPE_NAMES[want]}")
                    node.output[j] = inner
                    restores.append(helper.make_node("Cast", [inner], [y], fresh(f"{y}__restore"), to=F32))
                    casts[(y, F32)] = y
                    current[y] = (inner, want)
                else:
                    current[y] = (y, want)
        nodes.append(node)
        nodes.extend(restores)

    graph.node.extend(nodes)
    used = {x for n in nodes for x in n.input} | analysis.protected | set(analysis.graph_inputs)
    graph.initializer.extend(t for t in analysis.model.graph.initializer if t.name not in replaced or t.name in used)
    graph.initializer.extend(extra_inits)
    return out


def typed_initializer(analysis: Analysis, x: str, want: int, name: str) -> TensorProto:
    """Initializer ``x`` stored in ``want`` (FP16/BF16) as ``name``: inline when small, else a memory reference
    converted once per process and source (:func:`engine_core.model.weights.memory_tensor`), so every plan and
    candidate model over the same weights shares one copy and the model stays far below protobuf's 2 GB."""
    t = analysis.initializers[x]
    if weights.tensor_nbytes(t) < weights.LARGE_BYTES:
        return to_tensor(analysis.constant_value(x), want, name)
    key = f"{weights.source_key(t, analysis.index.data_dir)}->{TYPE_NAMES[want]}"
    return weights.memory_tensor(name, key, lambda: low_array(analysis.constant_value(x), want), want)


def _retype_attributes(node: onnx.NodeProto, analysis: Analysis, want: int) -> None:
    """Cast ``to``, Constant and ConstantOfShape values of a node that now computes in ``want``."""
    op = node.op_type
    if op == "Cast":
        for a in node.attribute:
            if a.name == "to" and a.i == F32:
                a.i = want
    elif op == "Constant" and analysis.types.get(node.output[0]) == F32:
        value = analysis.constant_value(node.output[0])
        del node.attribute[:]
        node.attribute.append(helper.make_attribute("value", to_tensor(value, want, "")))
    elif op == "ConstantOfShape":
        value = constant_of_shape_value(node)
        if value is not None and value.data_type == F32:
            arr = onnx.numpy_helper.to_array(value)
            del node.attribute[:]
            node.attribute.append(helper.make_attribute("value", to_tensor(arr, want, "")))


ORT_OPT_LEVEL = "disable"
"""ONNX Runtime optimization level for models with precision changes: even its basic level runs LayerNormFusion,
which binds mixed FP16/FP32 pieces of a decomposed LayerNorm into one mis-typed LayerNormalization (the session then
fails to load), and a fusion could swallow the emulation's rounding casts."""


def validate(
    model: onnx.ModelProto,
    where: str = "rewritten model",
    session: bool = True,
    base: str | os.PathLike[str] | None = None,
) -> None:
    """``onnx.checker`` (full), strict type inference and (with ``session``) an ONNX Runtime CPU session load at
    :data:`ORT_OPT_LEVEL` (ONNX Runtime CPU has no BF16 kernels for most ops: pass ``session=False`` for BF16);
    external weights (files in ``base``, memory references) are shared with the session, not copied."""
    try:
        checked = weights.structure_only(model)
        onnx.checker.check_model(checked, full_check=True)
        onnx.shape_inference.infer_shapes(checked, check_type=True, strict_mode=True)
    except Exception as exc:  # the checker and inference raise several exception types
        raise TrtdbgError(
            f"{where} is not valid ONNX: {first_line(exc, 400)}; please report this as a trtdbg bug"
        ) from exc
    if session:
        from engine_core.model.loader import ort_cpu_session

        try:
            ort_cpu_session(model, base=base)
        except Exception as exc:
            raise TrtdbgError(f"ONNX Runtime cannot load the {where}: {first_line(exc, 400)}") from exc
