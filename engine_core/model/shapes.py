"""Concrete tensor sizes for given input shapes (to plan mark-all batches under a memory budget)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper

from engine_core.errors import TrtdbgError


def infer_concrete_sizes(
    model: onnx.ModelProto,
    inputs: Mapping[str, tuple[tuple[int, ...], np.dtype]],
    names: Sequence[str],
    pinned: Mapping[str, tuple[tuple[int, ...], np.dtype]] | None = None,
) -> dict[str, int]:
    """Bytes of each tensor in ``names`` when the graph inputs have the given shapes.

    Runs ONNX shape inference (with data propagation) with the inputs' dims fixed and the ``pinned``
    intermediate tensors at their measured shapes (e.g. a ``NonZero`` output), so that sizes depending
    on them become known; the model is restored afterwards. Tensors whose shape or type stays unknown
    are left out. Never raises for inference failures.
    """
    n_value_info = len(model.graph.value_info)
    for name, (shape, dtype) in (pinned or {}).items():
        try:
            elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        except (KeyError, TypeError, ValueError):
            continue
        model.graph.value_info.append(helper.make_tensor_value_info(name, elem, list(shape)))
    try:
        return _infer_sizes(model, inputs, names)
    finally:
        del model.graph.value_info[n_value_info:]


def _infer_sizes(
    model: onnx.ModelProto, inputs: Mapping[str, tuple[tuple[int, ...], np.dtype]], names: Sequence[str]
) -> dict[str, int]:
    saved = []
    for vi in model.graph.input:
        if vi.name in inputs and vi.type.HasField("tensor_type"):
            saved.append((vi, onnx.TypeProto.FromString(vi.type.SerializeToString())))
            shape = inputs[vi.name][0]
            dims = vi.type.tensor_type.shape
            dims.Clear()
            for d in shape:
                dims.dim.add().dim_value = int(d)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        return {}
    finally:
        for vi, original in saved:
            vi.type.CopyFrom(original)
    wanted = set(names)
    sizes: dict[str, int] = {}
    for vi in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input):
        if vi.name not in wanted or not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        if not tt.HasField("shape") or any(not d.HasField("dim_value") for d in tt.shape.dim):
            continue
        try:
            itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).itemsize
        except (KeyError, TypeError, TrtdbgError):
            continue
        count = 1
        for d in tt.shape.dim:
            count *= d.dim_value
        sizes[vi.name] = count * itemsize
    return sizes
