"""Per-tensor compare settings: ``[name:]value`` lists as Polygraphy parses them."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from engine_core.errors import TrtdbgError, require_one_of

T = TypeVar("T")
ERROR_STATS = ("elemwise", "max", "mean", "median", "quantile")
REL_MODES = ("polygraphy", "robust")
INT_ATOL = 1.0
"""Default tolerance of quantized integer tensors (int8/uint8/int16/uint16/int32/uint32): one unit."""


@dataclass
class PerTensor(Generic[T]):
    """A default value plus per-tensor overrides (``""`` is the default key, as in Polygraphy)."""

    default: T
    overrides: dict[str, T] = field(default_factory=dict)

    def get(self, name: str) -> T:
        """The value for tensor ``name``."""
        return self.overrides.get(name, self.default)


def parse_per_tensor(specs: Sequence[str] | None, default: T, convert: Callable[[str], T], option: str) -> PerTensor[T]:
    """Parse ``["1e-3", "onnx::MatMul_12:1e-2"]`` (split at the last ``:``, so names may contain ``:``)."""
    result: PerTensor[T] = PerTensor(default)
    for spec in specs or ():
        for item in _split_items(spec, option):
            name, sep, value = item.rpartition(":")
            try:
                converted = convert(value.strip())
            except (TypeError, ValueError) as exc:
                why = f" ({exc.args[0]})" if exc.args and str(exc.args[0]).startswith("must") else ""
                raise TrtdbgError(f"{option}: cannot read '{item}'{why}; expected [TENSOR:]VALUE") from None
            if sep and name:
                result.overrides[name] = converted
            else:
                result.default = converted
    return result


def _split_items(spec: str, option: str) -> list[str]:
    """Split on commas (a comma never appears inside a value); an empty item (``1e-3,``) is an error."""
    items = [p.strip() for p in str(spec).split(",")]
    if not all(items):
        raise TrtdbgError(f"{option}: cannot read '{spec}': an empty value between commas; expected [TENSOR:]VALUE,...")
    return items


def _tolerance(value: str) -> float:
    """A tolerance: a number >= 0 (``inf`` allowed: never fails on this error), not NaN."""
    tol = float(value)
    if math.isnan(tol) or tol < 0:
        raise ValueError("must be a number >= 0")
    return tol


def _stat(value: str) -> str:
    if value not in ERROR_STATS:
        raise ValueError(value)
    return value


def _quantile(value: str) -> float:
    q = float(value)
    if not 0.0 <= q <= 1.0:
        raise ValueError("must be between 0 and 1")
    return q


@dataclass
class CompareSettings:
    """Everything that decides a verdict (Polygraphy ``simple`` comparator plus extensions)."""

    atol: PerTensor[float] = field(default_factory=lambda: PerTensor(1e-5))
    rtol: PerTensor[float] = field(default_factory=lambda: PerTensor(1e-5))
    check_error_stat: PerTensor[str] = field(default_factory=lambda: PerTensor("elemwise"))
    error_quantile: PerTensor[float] = field(default_factory=lambda: PerTensor(0.99))
    infinities_compare_equal: bool = True
    """Equal ±inf at the same position count as equal (trtdbg's default; Polygraphy's is False)."""
    rel_mode: str = "polygraphy"
    check_shapes: bool = True
    polygraphy_defaults: bool = False
    """Polygraphy's exact arithmetic: with ``infinities_compare_equal`` its errors become float64, as there."""
    int_atol: float | None = INT_ATOL
    """Absolute tolerance of integer tensors narrower than 64 bits (quantized data); ``None``: the default atol."""

    @classmethod
    def from_specs(
        cls,
        atol: Sequence[str] | None = None,
        rtol: Sequence[str] | None = None,
        check_error_stat: Sequence[str] | None = None,
        error_quantile: Sequence[str] | None = None,
        infinities_compare_equal: bool | None = None,
        rel_mode: str = "polygraphy",
        check_shapes: bool = True,
        int_atol: float | None = None,
        polygraphy_defaults: bool = False,
    ) -> CompareSettings:
        """Build settings from command-line style ``[name:]value`` lists.

        ``None`` means the default: matched infinities equal and integer tolerance ``INT_ATOL``, or, with
        ``polygraphy_defaults``, Polygraphy's rules (infinities differ, integers judged by ``atol``).
        """
        require_one_of("--rel-mode:", rel_mode, REL_MODES)
        return cls(
            atol=parse_per_tensor(atol, 1e-5, _tolerance, "--atol"),
            rtol=parse_per_tensor(rtol, 1e-5, _tolerance, "--rtol"),
            check_error_stat=parse_per_tensor(check_error_stat, "elemwise", _stat, "--check-error-stat"),
            error_quantile=parse_per_tensor(error_quantile, 0.99, _quantile, "--error-quantile"),
            infinities_compare_equal=(
                infinities_compare_equal if infinities_compare_equal is not None else not polygraphy_defaults
            ),
            rel_mode=rel_mode,
            check_shapes=check_shapes,
            int_atol=int_atol if int_atol is not None or polygraphy_defaults else INT_ATOL,
            polygraphy_defaults=polygraphy_defaults,
        )

    def describe(self) -> dict[str, object]:
        """JSON-friendly summary of the settings."""
        return {
            "atol": self.atol.default,
            "rtol": self.rtol.default,
            "check_error_stat": self.check_error_stat.default,
            "error_quantile": self.error_quantile.default,
            "overrides": {
                "atol": self.atol.overrides,
                "rtol": self.rtol.overrides,
                "check_error_stat": self.check_error_stat.overrides,
                "error_quantile": self.error_quantile.overrides,
            },
            "infinities_compare_equal": self.infinities_compare_equal,
            "rel_mode": self.rel_mode,
            "check_shapes": self.check_shapes,
            "int_atol": self.int_atol,
            "polygraphy_defaults": self.polygraphy_defaults,
        }
