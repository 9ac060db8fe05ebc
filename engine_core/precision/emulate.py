"""CPU emulation of FP16/BF16 storage rounding (docs/precision.md §8).

ONNX Runtime CPU computes most FP16 nodes in FP32 and drops the rounding between them, so running the rewritten model
on CPU under-reports the error. The emulation keeps the FP32 model and rounds, through explicit
``Cast(low) -> Cast(float)`` pairs (which ONNX Runtime keeps at every optimization level), exactly the tensors the
rewritten model would hold in low precision: the outputs of low-precision nodes, and the inputs they receive from
higher-precision producers (graph inputs, FP32 nodes, nodes of another low precision). Constants and small weights
(under :data:`~engine_core.model.weights.LARGE_BYTES`) read by low-precision nodes become rounded FP32 initializers;
large weights are stored in the low type (a copy shared by every plan, see
:func:`~engine_core.precision.rewrite.typed_initializer`) and read through ``Cast(float)``, so the FP32 weights stay
the reference's own. Casts of initializers are few on purpose: ONNX Runtime's session creation grows quadratically
with the number of nodes that read only initializers (a 7.7k-node transformer with one such Cast per weight took
3.7 s of CPU to load instead of 1.4 s). Overflow (inf above 65504) and underflow (0 below 2^-25) of every stored
tensor are reproduced; FP16 accumulation inside a kernel is not. All original tensor names keep their meaning, with
the stored (rounded) values.
"""

from __future__ import annotations

from collections.abc import Mapping

import onnx
from onnx import TensorProto, helper

from engine_core.model import weights
from engine_core.precision.numerics import round_to, to_tensor
from engine_core.precision.rewrite import Namer, typed_initializer
from engine_core.precision.rules import F32, TYPE_NAMES, Analysis, constant_of_shape_value


def emulate(analysis: Analysis, low: Mapping[str, int]) -> onnx.ModelProto:
    """The FP32 model with storage rounding for nodes ``low`` (``{node name: FLOAT16|BFLOAT16}``, already legal)."""
    out = analysis.empty_copy()
    nodes = out.graph.node  # filled in place: no detached node copies
    fresh = Namer(analysis.all_names)
    stored: dict[str, int] = {}  # tensor -> low type it is already rounded to
    rounded: dict[tuple[str, int], str] = {}
    extra_inits: list[TensorProto] = []
    constant_inits = set(analysis.initializers) - set(analysis.graph_inputs)

    def cast(x: str, y: str, name: str, to: int) -> None:
        nodes.add(op_type="Cast", name=name, input=[x], output=[y]).attribute.add(name="to", i=to, type=_INT)

    def round_input(x: str, want: int) -> str:
        if stored.get(x) == want:
            return x
        key = (x, want)
        name = rounded.get(key)
        if name is None:
            tag = TYPE_NAMES[want]
            if x in constant_inits and weights.tensor_nbytes(analysis.initializers[x]) >= weights.LARGE_BYTES:
                name, held = fresh(f"{x}__as_{tag}"), fresh(f"{x}__{tag}")
                extra_inits.append(typed_initializer(analysis, x, want, held))
                cast(held, name, name, F32)
            elif x in constant_inits or (x in analysis.constants and x not in stored):
                name = fresh(f"{x}__as_{tag}")
                extra_inits.append(to_tensor(round_to(analysis.constant_value(x), want), F32, name))
            else:
                name = fresh(f"{x}__as_{tag}")
                held = fresh(f"{x}__{tag}")
                cast(x, held, held, want)
                cast(held, name, name, F32)
            rounded[key] = name
        return name

    for src, facts in zip(analysis.protos, analysis.facts):
        want = low.get(facts.name)
        inputs = {i: round_input(src.input[i], want) for i in facts.float_inputs} if want else {}
        node = nodes.add()
        node.CopyFrom(src)
        node.name = facts.name
        if not want:
            continue
        for i, x in inputs.items():
            node.input[i] = x
        op = src.op_type
        if op in ("Constant", "ConstantOfShape"):
            value = (
                analysis.constant_value(src.output[0])
                if op == "Constant"
                else onnx.numpy_helper.to_array(constant_of_shape_value(src))
            )
            del node.attribute[:]
            node.attribute.append(helper.make_attribute("value", to_tensor(round_to(value, want), F32, "")))
            stored[src.output[0]] = want
            continue
        tag = TYPE_NAMES[want]
        for j in facts.low_outputs:
            y = src.output[j]
            raw, held = fresh(f"{y}__{tag}_raw"), fresh(f"{y}__{tag}")
            node.output[j] = raw
            cast(raw, held, held, want)
            cast(held, y, fresh(f"{y}__{tag}_stored"), F32)
            stored[y] = want

    types, outputs = analysis.types, set(analysis.graph_outputs)
    out.graph.value_info.extend(  # every original tensor keeps its type: outputs added later are declared typed
        helper.make_tensor_value_info(y, types[y], None)
        for src in analysis.protos
        for y in src.output
        if y and y not in outputs and y in types
    )
    used = {x for n in nodes for x in n.input} | analysis.protected | set(analysis.graph_inputs)
    out.graph.initializer.extend(t for t in analysis.model.graph.initializer if t.name in used)
    out.graph.initializer.extend(extra_inits)
    return out


_INT = onnx.AttributeProto.INT
