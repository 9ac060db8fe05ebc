"""Plain types shared by every layer: tensor metadata and dimensions."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

Dim = int | str | None
"""A dimension: a fixed size, a symbolic name (``"batch"``), or ``None`` when unknown."""


@dataclass(frozen=True)
class TensorMeta:
    """Name, numpy dtype (``None`` when unknown) and (possibly dynamic) shape of a model tensor."""

    name: str
    dtype: np.dtype | None
    shape: tuple[Dim, ...] | None

    @property
    def is_dynamic(self) -> bool:
        """True when the shape is unknown or has a non-integer dimension."""
        return self.shape is None or any(not isinstance(d, int) or d < 0 for d in self.shape)

    def describe(self) -> str:
        """``name [dtype=float32, shape=(1, 3, 'h', 'w')]`` as Polygraphy prints it."""
        return f"{self.name} [dtype={np.dtype(self.dtype).name}, shape={self.shape}]"


def json_value(value: Any) -> Any:
    """Tuples as lists, recursively (what JSON gives back)."""
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return value


def json_fields(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as JSON gives them back: nested dataclasses as dicts, tuples as lists."""
    return json_value(asdict(obj))
