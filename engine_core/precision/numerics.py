"""FP16 / BF16 storage rounding in numpy (round to nearest even, overflow to inf), without extra dependencies."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, numpy_helper

F32, F16, BF16 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16


def bf16_bits(a: np.ndarray) -> np.ndarray:
    """The bfloat16 bit patterns (uint16) of float32 ``a``, rounded to nearest even; NaN stays NaN."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = (u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))) >> np.uint32(16)
    nan = np.isnan(a)
    if nan.any():
        rounded = np.where(nan, (u >> np.uint32(16)) | np.uint32(0x40), rounded)
    return rounded.astype(np.uint16)


def round_to(a: np.ndarray, elem_type: int) -> np.ndarray:
    """float32 ``a`` stored in ``elem_type`` (FP16 or BF16) and read back as float32."""
    a = np.asarray(a, dtype=np.float32)
    if elem_type == F16:
        with np.errstate(over="ignore"):
            return a.astype(np.float16).astype(np.float32)
    if elem_type == BF16:
        return (bf16_bits(a).astype(np.uint32) << np.uint32(16)).view(np.float32).reshape(a.shape)
    raise ValueError(f"not a low-precision float type: {elem_type}")


def low_array(a: np.ndarray, elem_type: int) -> np.ndarray:
    """float32 ``a`` converted to ``elem_type`` (FP16, or BF16 as ``ml_dtypes.bfloat16``), rounded like ONNX Cast."""
    if elem_type == F16:
        with np.errstate(over="ignore"):
            return np.asarray(a, dtype=np.float32).astype(np.float16)
    if elem_type == BF16:
        from onnx.helper import tensor_dtype_to_np_dtype

        return bf16_bits(a).view(tensor_dtype_to_np_dtype(BF16)).reshape(np.shape(a))
    raise ValueError(f"not a low-precision float type: {elem_type}")


def to_tensor(a: np.ndarray, elem_type: int, name: str) -> TensorProto:
    """A TensorProto of ``elem_type`` (FP32, FP16 or BF16) holding float32 ``a`` (rounded)."""
    a = np.asarray(a, dtype=np.float32)
    if elem_type == F32:
        return numpy_helper.from_array(a, name)
    if elem_type == F16:
        with np.errstate(over="ignore"):
            return numpy_helper.from_array(a.astype(np.float16), name)
    t = TensorProto()
    t.name = name
    t.data_type = BF16
    t.dims.extend(a.shape)
    t.raw_data = bf16_bits(a).tobytes()
    return t
