"""Opset upgrade for low precision: where the model's opset schema lacks FP16/BF16 for an op that a later opset
allows (``Conv`` has bfloat16 only from opset 22, ``Cast`` from 13), the model is converted with ONNX's version
converter before the precision rules run, so the op really computes in low precision instead of staying FP32.

Tensor and node names survive the conversion (the converter may add nodes, e.g. Constant inputs for axes), so a
compare still matches the upgraded subject to the original reference by name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import onnx

from engine_core.errors import first_line
from engine_core.model.index import ModelIndex
from engine_core.precision.rules import Analysis

MAX_OPSET = 22
"""Newest opset the rewrite upgrades to (ONNX Runtime 1.2x and TensorRT 10 parse it)."""
_TYPE = {"fp16": "tensor(float16)", "bf16": "tensor(bfloat16)"}
_PROTO_LIMIT = 1_800_000_000


def _first_opset_with(op: str, low: str, start: int) -> int | None:
    """The first opset in ``start .. MAX_OPSET`` whose ``op`` schema takes ``low`` wherever it takes float."""
    for version in range(start, MAX_OPSET + 1):
        try:
            schema = onnx.defs.get_schema(op, version, "")
        except onnx.defs.SchemaError:
            return None
        floats = [c.allowed_type_strs for c in schema.type_constraints if "tensor(float)" in c.allowed_type_strs]
        if floats and all(_TYPE[low] in allowed for allowed in floats):
            return version
    return None


def analyse(
    model: onnx.ModelProto,
    path: str | os.PathLike[str] | None,
    precisions: Iterable[str],
    data_dir: str | os.PathLike[str] | None = None,
) -> tuple[onnx.ModelProto, Analysis, list[str]]:
    """``(model, its Analysis, notes)``: ``model`` upgraded to the opset that makes more of its nodes legal in
    ``precisions`` (when one exists and the conversion works), else unchanged with a note saying why.
    ``data_dir``: the folder of the model's external data (default: beside ``path``)."""
    analysis = Analysis(model, path, ModelIndex(model, path, data_dir))
    lows = [p for p in dict.fromkeys(precisions) if p in _TYPE]
    target, ops = analysis.opset, set()
    for facts in analysis.facts:
        for p in lows:
            if not facts.kinds.get(p, "").endswith(f"opset-{analysis.opset} schema"):
                continue
            start = max(analysis.opset + 1, 13 if p == "bf16" else 1)
            version = _first_opset_with(facts.op_type, p, start)
            if version is not None:
                target = max(target, version)
                ops.add(f"{facts.op_type} ({p})")
    if target == analysis.opset:
        return model, analysis, []
    what = ", ".join(sorted(ops)[:4]) + (f" and {len(ops) - 4} more op types" if len(ops) > 4 else "")
    if model.ByteSize() > _PROTO_LIMIT:
        return model, analysis, [f"opset {analysis.opset} kept: the model is too large to convert ({what} stay fp32)"]
    try:
        upgraded = onnx.version_converter.convert_version(model, target)
    except Exception as exc:  # the converter raises several exception types
        first = first_line(exc, 200)
        return (
            model,
            analysis,
            [f"opset {analysis.opset} kept: the version converter failed ({first}); {what} stay fp32"],
        )
    return (
        upgraded,
        Analysis(upgraded, path, ModelIndex(upgraded, path, data_dir)),
        [f"opset {analysis.opset} -> {target} so that {what} can run"],
    )
