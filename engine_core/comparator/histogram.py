"""Histograms of one tensor's elementwise error, with log-spaced bins (the app's detail pane).

The error is Polygraphy's (see :mod:`.metrics`): ``abs = |subject − reference|`` after ``cast_up``,
``rel = abs / |reference|`` (a zero reference gets ``EPSILON``); with ``infinities_compare_equal``
equal infinities at the same position give 0. Exact zeros and non-finite errors (NaN, Inf) cannot sit
on a log axis: they are counted apart. Positive finite errors fall into ``bins`` geometric bins from
the smallest to the largest one. The arrays are walked in chunks, so a large tensor never needs a
second float64 copy of itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from engine_core.comparator.metrics import cast_up, error_arrays, tolerance_for
from engine_core.comparator.tolerances import CompareSettings

BINS = 32
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ErrorHistogram:
    """Counts of one tensor's ``kind`` error (``abs`` or ``rel``) in log-spaced bins.

    ``edges`` has ``len(counts) + 1`` increasing values (empty when no error is positive and finite);
    bin ``k`` holds errors in ``[edges[k], edges[k+1])``, the last bin also its right edge.
    """

    kind: str
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    zeros: int
    """Elements whose error is exactly 0."""
    nonfinite: int
    """Elements whose error is NaN or ±Inf."""
    total: int
    tolerance: float | None = None
    """The tolerance this error is judged against (``atol`` / ``rtol`` of the tensor), for a marker."""

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "kind": self.kind,
            "edges": list(self.edges),
            "counts": list(self.counts),
            "zeros": self.zeros,
            "nonfinite": self.nonfinite,
            "total": self.total,
            "tolerance": self.tolerance,
        }


def error_histograms(
    name: str, subject: np.ndarray, reference: np.ndarray, settings: CompareSettings, bins: int = BINS
) -> tuple[ErrorHistogram, ErrorHistogram]:
    """The absolute and relative error histograms of one tensor pair (same number of elements)."""
    if subject.size != reference.size:
        raise ValueError(f"'{name}': {subject.size} subject elements vs {reference.size} reference elements")
    tol = {"abs": tolerance_for(name, reference.dtype, settings), "rel": settings.rtol.get(name)}
    sub, ref = subject.reshape(-1), reference.reshape(-1)
    lo = {"abs": np.inf, "rel": np.inf}
    hi = {"abs": 0.0, "rel": 0.0}
    for a, r in _errors(sub, ref, settings):
        for kind, e in (("abs", a), ("rel", r)):
            pos = e[np.isfinite(e) & (e > 0)]
            if pos.size:
                lo[kind] = min(lo[kind], float(pos.min()))
                hi[kind] = max(hi[kind], float(pos.max()))
    edges = {k: _edges(lo[k], hi[k], bins) for k in ("abs", "rel")}
    counts = {k: np.zeros(max(len(edges[k]) - 1, 0), dtype=np.int64) for k in edges}
    zeros = dict.fromkeys(edges, 0)
    nonfinite = dict.fromkeys(edges, 0)
    for a, r in _errors(sub, ref, settings):
        for kind, e in (("abs", a), ("rel", r)):
            finite = np.isfinite(e)
            nonfinite[kind] += int(e.size - np.count_nonzero(finite))
            zeros[kind] += int(np.count_nonzero(e == 0))
            pos = e[finite & (e > 0)]
            if pos.size:
                counts[kind] += np.histogram(pos, bins=np.asarray(edges[kind]))[0]
    abs_h, rel_h = (
        ErrorHistogram(k, edges[k], tuple(int(c) for c in counts[k]), zeros[k], nonfinite[k], int(sub.size), tol[k])
        for k in ("abs", "rel")
    )
    return abs_h, rel_h


def _errors(sub: np.ndarray, ref: np.ndarray, settings: CompareSettings) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(abs, rel) errors as float64, one chunk at a time, by the verdicts' arithmetic (:func:`.error_arrays`)."""
    for start in range(0, max(sub.size, 1), _CHUNK):
        s = cast_up(sub[start : start + _CHUNK]).reshape(1, -1)
        r = cast_up(ref[start : start + _CHUNK]).reshape(1, -1)
        with np.errstate(all="ignore"):
            absd, rel, _ = error_arrays(s, r, settings)
        yield absd[0].astype(np.float64, copy=False), rel[0].astype(np.float64, copy=False)


def _edges(lo: float, hi: float, bins: int) -> tuple[float, ...]:
    if not np.isfinite(lo):
        return ()
    if hi <= lo:
        return (lo, hi * (1 + 1e-9) if hi > 0 else lo)
    return tuple(float(x) for x in np.geomspace(lo, hi, bins + 1))
