"""Check one feed dict against the model inputs before it is run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine_core.data.shapes import format_dims, format_shape
from engine_core.errors import TrtdbgError
from engine_core.types import TensorMeta


def _shape_matches(model: Sequence[Any], got: tuple[int, ...]) -> bool:
    return len(model) == len(got) and all(not (isinstance(d, int) and d >= 0) or d == g for d, g in zip(model, got))


def check_feed(feed: Mapping[str, Any], metas: Sequence[TensorMeta], where: str) -> list[str]:
    """Raise :class:`TrtdbgError` for wrong names, types, dtypes or shapes; return NaN/Inf warnings."""
    if not isinstance(feed, Mapping):
        raise TrtdbgError(f"{where}: expected a dict of input name -> numpy array, got {type(feed).__name__}")
    expected = [m.name for m in metas]
    missing = [name for name in expected if name not in feed]
    if missing:
        raise TrtdbgError(f"{where}: missing input '{missing[0]}'; the model expects: {', '.join(expected)}")
    extra = [str(name) for name in feed if name not in expected]
    if extra:
        raise TrtdbgError(f"{where}: '{extra[0]}' is not a model input; the model expects: {', '.join(expected)}")
    warnings = []
    for meta in metas:
        value = feed[meta.name]
        if not isinstance(value, np.ndarray):
            raise TrtdbgError(
                f"{where}: input '{meta.name}' has type {type(value).__name__}, not numpy.ndarray; convert it with np.asarray"
            )
        want = np.dtype(meta.dtype)
        if value.dtype != want:
            raise TrtdbgError(
                f"{where}: input '{meta.name}' has dtype {value.dtype.name}, the model expects {want.name}; "
                f"cast it with .astype(np.{want.name})"
            )
        if meta.shape is not None and not _shape_matches(meta.shape, value.shape):
            raise TrtdbgError(
                f"{where}: input '{meta.name}' has shape {format_dims(value.shape)}, the model shape is "
                f"{format_shape(meta.shape)}; give {len(meta.shape)} dims and keep the fixed ones"
            )
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            nan = int(np.count_nonzero(np.isnan(value)))
            inf = int(np.count_nonzero(np.isinf(value)))
            warnings.append(f"{where}: input '{meta.name}' has {nan} NaN and {inf} Inf values")
    return warnings
