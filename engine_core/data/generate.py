"""Random input data, as Polygraphy's default data loader makes it.

Iteration ``i`` draws from ``numpy.random.default_rng(seed + i)``, so a seed reproduces every
iteration and one iteration can be regenerated alone. Values per input come from its value range
(Polygraphy ``--val-range`` syntax, default ``[0, 1]``, inclusive): floats are uniform in
``[lo, hi]`` in the input's dtype; integers are uniform in ``[int(lo), int(hi)]`` (clipped to the
dtype); bools are integers from that range, cast to bool (``[0, 1]`` → random True/False).
The values differ from Polygraphy's (it uses ``RandomState``); the rules are the same.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from engine_core.errors import TrtdbgError
from engine_core.sysinfo import check_fits
from engine_core.types import TensorMeta

DEFAULT_VAL_RANGE = (0.0, 1.0)
VAL_RANGE_SYNTAX = "[lo,hi] for all inputs or NAME:[lo,hi] for one, e.g. [0,1] x:[-1,1]"

_NUMBER = r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*"
_RANGE = re.compile(rf"\s*(?:(?P<name>[^,\[\]]*?):)?\s*[\[(](?P<lo>{_NUMBER}),(?P<hi>{_NUMBER})[\])]\s*(?:,|$)")


def parse_val_range(specs: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Parse ``[lo,hi]`` (key ``""``: the default) and ``NAME:[lo,hi]`` specs; several may share a string."""
    ranges: dict[str, tuple[float, float]] = {}
    for spec in specs:
        pos = 0
        while pos < len(spec):
            match = _RANGE.match(spec, pos)
            if match is None or match.end() == pos:
                raise TrtdbgError(f"bad value range {spec[pos:]!r} in {spec!r}; expected {VAL_RANGE_SYNTAX}")
            name = (match.group("name") or "").strip()
            lo, hi = float(match.group("lo")), float(match.group("hi"))
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise TrtdbgError(f"value range {match.group(0).strip(' ,')!r} is too large; give finite bounds")
            if lo > hi:
                raise TrtdbgError(
                    f"value range {match.group(0).strip(' ,')!r} has lo > hi; write it as [lo,hi] with lo <= hi"
                )
            ranges[name] = (lo, hi)
            pos = match.end()
    return ranges


def value_range_for(name: str, val_range: Mapping[str, tuple[float, float]] | None) -> tuple[float, float]:
    """The range used for input ``name``: its own, else the default entry ``""``, else ``[0, 1]``."""
    ranges = val_range or {}
    return ranges.get(name, ranges.get("", DEFAULT_VAL_RANGE))


def _generate(rng: np.random.Generator, meta: TensorMeta, shape: tuple[int, ...], lo: float, hi: float) -> np.ndarray:
    dtype = np.dtype(meta.dtype)
    if dtype.kind == "f":
        work = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)
        values = rng.random(shape, dtype=work)
        values *= hi - lo
        values += lo
        return values.astype(dtype, copy=False)
    if dtype.kind in "iub":
        int_dtype = np.dtype(np.int8) if dtype.kind == "b" else dtype
        info = np.iinfo(int_dtype)
        ilo, ihi = int(max(lo, info.min)), int(min(hi, info.max))
        if ilo > ihi:
            raise TrtdbgError(
                f"value range [{lo:g},{hi:g}] for input '{meta.name}' holds no {int_dtype.name} value; "
                f"give a range within [{info.min},{info.max}]"
            )
        values = rng.integers(ilo, ihi, size=shape, dtype=int_dtype, endpoint=True)
        return values.astype(bool) if dtype.kind == "b" else values
    raise TrtdbgError(
        f"cannot generate random data for input '{meta.name}' of dtype {dtype.name}; "
        "load inputs from a file or a data loader script instead"
    )


class RandomDataLoader:
    """Iterable of ``iterations`` random feed dicts (input order of ``metas``); deterministic per seed."""

    def __init__(
        self,
        metas: Sequence[TensorMeta],
        shapes: Mapping[str, tuple[int, ...]],
        seed: int = 1,
        val_range: Mapping[str, tuple[float, float]] | None = None,
        iterations: int = 1,
    ) -> None:
        missing = [m.name for m in metas if m.name not in shapes]
        if missing:
            raise TrtdbgError(f"no shape for input '{missing[0]}'; resolve shapes for every input first")
        unknown = [name for name in (val_range or {}) if name and name not in {m.name for m in metas}]
        if unknown:
            raise TrtdbgError(
                f"value range given for unknown input '{unknown[0]}'; the model inputs are: "
                f"{', '.join(m.name for m in metas)}"
            )
        if iterations < 1:
            raise TrtdbgError(f"iterations must be at least 1 (got {iterations})")
        if seed < 0:
            raise TrtdbgError(f"seed must be a non-negative integer (got {seed})")
        self.metas = list(metas)
        self.shapes = {m.name: tuple(shapes[m.name]) for m in metas}
        for m in self.metas:
            shape = self.shapes[m.name]
            if any(d < 0 for d in shape):
                raise TrtdbgError(f"input '{m.name}' has a negative dimension {list(shape)}; give --shapes")
            # float inputs are drawn in float32/float64 first: at most 8 bytes per element
            check_fits(
                math.prod(shape) * max(8, np.dtype(m.dtype).itemsize),
                f"random data for input '{m.name}' of shape {list(shape)}",
                "give smaller --shapes, or load inputs from a file",
            )
        self.seed = seed
        self.val_range = dict(val_range or {})
        self.iterations = iterations

    def feed(self, index: int) -> dict[str, np.ndarray]:
        """The feed dict of iteration ``index`` (seed ``seed + index``)."""
        rng = np.random.default_rng(self.seed + index)
        return {
            m.name: _generate(rng, m, self.shapes[m.name], *value_range_for(m.name, self.val_range)) for m in self.metas
        }

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for index in range(self.iterations):
            yield self.feed(index)
