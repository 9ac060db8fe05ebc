"""Which nodes ONNX Runtime's CUDA provider can run in FP16/BF16, found by probing ONNX Runtime itself.

A node whose low-precision type has no CUDA kernel makes ONNX Runtime fall back to the CPU provider, which has no
BF16 kernel for most ops either: the session then fails to load (``Provider type for Reciprocal node … is not set``).
For ``ort-cuda`` plans such nodes stay FP32, with the reason in the coverage's ``kept`` counts.

ONNX Runtime's kernel registry listing (``get_all_opkernel_def``) does not include providers loaded as shared
libraries (CUDA), so each distinct (op, opset, input/output types) is probed once: a one-node model with the types
the rewrite would give it, loaded on the provider with CPU fallback disabled. Only a kernel-assignment failure
counts as "no kernel"; other probe failures leave the node to the real session (which reports them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import onnx
from onnx import helper

from engine_core.model.loader import ort_session_options
from engine_core.precision.rules import FLOAT_TYPES, Analysis

KernelCheck = Callable[[onnx.NodeProto, list[int | None], list[int | None], int], bool]
"""``check(node, input types, output types, opset)`` → True when the provider has a kernel (types: ONNX elem types,
``None`` for absent inputs)."""

_NO_KERNEL = ("fallback to CPU EP has been explicitly disabled", "Could not find an implementation", "is not set")
_CACHE: dict[tuple, bool] = {}


def session_probe(provider: str = "CUDAExecutionProvider") -> KernelCheck | None:
    """A :data:`KernelCheck` that loads one-node models on ``provider``; ``None`` when the provider cannot start."""
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        return None
    so = ort_session_options()
    if provider != "CPUExecutionProvider":
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")

    def check(node: onnx.NodeProto, ins: list[int | None], outs: list[int | None], opset: int) -> bool:
        key: tuple[Any, ...] = (provider, ort.__version__, node.domain, node.op_type, opset, tuple(ins), tuple(outs))
        key += tuple(sorted(a.SerializeToString() for a in node.attribute))
        if key not in _CACHE:
            names_in = [f"i{k}" if t is not None else "" for k, t in enumerate(ins)]
            probe = helper.make_node(node.op_type, names_in, [f"o{k}" for k in range(len(outs))], domain=node.domain)
            probe.attribute.extend(node.attribute)
            graph = helper.make_graph(
                [probe],
                "probe",
                [helper.make_tensor_value_info(n, t, None) for n, t in zip(names_in, ins) if t is not None],
                [helper.make_tensor_value_info(f"o{k}", t or 0, None) for k, t in enumerate(outs)],
            )
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid(node.domain, opset)], ir_version=8)
            try:
                ort.InferenceSession(model.SerializeToString(), so, providers=[provider])
                _CACHE[key] = True
            except Exception as exc:  # onnxruntime raises its own exception types
                _CACHE[key] = not any(s in str(exc) for s in _NO_KERNEL)
        return _CACHE[key]

    if not check(helper.make_node("Relu", ["x"], ["y"]), [onnx.TensorProto.FLOAT], [onnx.TensorProto.FLOAT], 17):
        return None  # the provider does not start at all: the real session says why
    return check


def keep_without_kernel(
    analysis: Analysis, precisions: Iterable[str], check: KernelCheck | None, label: str = "CUDA", version: str = ""
) -> int:
    """Forbid ``precisions`` on nodes that ``check`` finds no kernel for; returns how many (node, precision) pairs."""
    if check is None:
        return 0
    blocked = 0
    for p in (p for p in dict.fromkeys(precisions) if p in FLOAT_TYPES):
        low = FLOAT_TYPES[p]
        for facts in analysis.facts:
            if not facts.allows(p):
                continue
            node = analysis.protos[facts.pos]
            ins = [
                (low if i in facts.float_inputs else analysis.types.get(x)) if x else None
                for i, x in enumerate(node.input)
            ]
            outs = [low if j in facts.low_outputs else analysis.types.get(y) for j, y in enumerate(node.output)]
            if any(t is None for x, t in zip(node.input, ins) if x) or any(t is None for t in outs):
                continue  # untyped tensors: leave it to the real session
            if check(node, ins, outs, analysis.opset):
                continue
            where = f"onnxruntime {version} " if version else ""
            facts.block(
                f"{where}has no {label} {p} kernel for {node.op_type}",
                f"no {label} {p} kernel for {node.op_type}",
                (p,),
            )
            blocked += 1
    return blocked
