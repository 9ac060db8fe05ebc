"""Vectorised per-tensor error statistics and Polygraphy ``simple``-comparator verdicts.

Tensors of equal size and dtypes are stacked into one 2-D array and reduced along axis 1, so
thousands of small tensors cost a handful of numpy calls instead of dozens each. The arithmetic
is Polygraphy's (``comparator/compare.py: SimpleCompareFunc._check_outputs_match``):

* both sides are cast up (fp16→fp32, 8/16-bit ints→int32, uint32→int64); bools use xor;
* ``absdiff = |subject − reference|``; with ``infinities_compare_equal`` equal infinities give 0;
* ``reldiff = absdiff / |reference|`` where zeros of a floating reference get ``+2.220446049250313e-16``;
* ``elemwise`` fails iff some element has ``(abs > atol or abs is NaN) and (rel > rtol or rel is NaN)``;
  ``max|mean|median|quantile`` fail iff ``(stat_abs is NaN or > atol) and (stat_rel is NaN or > rtol)``
  (the mean is computed in float32, the quantile with numpy's linear rule).

Extra statistics Polygraphy does not give: std and p90/p95/p99 of both errors, cosine similarity,
SNR, NaN/Inf counts per side, the number of mismatching elements, and a near-zero-robust relative
error ``|s − r| / (|r| + atol)`` (``rel_mode="robust"`` makes the verdict use it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine_core.comparator.tolerances import CompareSettings

EPSILON = 2.220446049250313e-16
_SMALL = 1 << 14  # tensors up to this many elements are stacked with their peers


@dataclass(slots=True)
class TensorStats:
    """Error statistics and verdict for one tensor of one iteration (subject vs reference)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    ref_dtype: str
    size: int
    passed: bool
    reason: str | None = None
    max_abs: float = float("nan")
    mean_abs: float = float("nan")
    median_abs: float = float("nan")
    std_abs: float = float("nan")
    p90_abs: float = float("nan")
    p95_abs: float = float("nan")
    p99_abs: float = float("nan")
    argmax_abs: tuple[int, ...] | None = None
    max_rel: float = float("nan")
    mean_rel: float = float("nan")
    median_rel: float = float("nan")
    std_rel: float = float("nan")
    p90_rel: float = float("nan")
    p95_rel: float = float("nan")
    p99_rel: float = float("nan")
    argmax_rel: tuple[int, ...] | None = None
    quantile_abs: float | None = None
    quantile_rel: float | None = None
    max_rel_robust: float = float("nan")
    mean_rel_robust: float = float("nan")
    cosine: float = float("nan")
    snr_db: float = float("nan")
    mismatches: int = 0
    nan: int = 0
    inf: int = 0
    ref_nan: int = 0
    ref_inf: int = 0

    @property
    def nonfinite(self) -> bool:
        """True when the subject produced NaN or Inf."""
        return self.nan > 0 or self.inf > 0

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly dict (NaN/Inf become strings only at JSON encoding time)."""
        d = {f: getattr(self, f) for f in _FIELDS}
        d["shape"] = list(self.shape)
        for k in ("argmax_abs", "argmax_rel"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d


_FIELDS = tuple(TensorStats.__dataclass_fields__)


def cast_up(a: np.ndarray) -> np.ndarray:
    """Polygraphy's ``cast_up``: widen fp16 and small integer types before arithmetic."""
    dt = a.dtype
    if dt == np.float16:
        return a.astype(np.float32)
    if dt in (np.int8, np.uint8, np.int16, np.uint16):
        return a.astype(np.int32)
    if dt == np.uint32:
        return a.astype(np.int64)
    return a


def compare_tensors(
    names: Sequence[str], subjects: Sequence[np.ndarray], references: Sequence[np.ndarray], settings: CompareSettings
) -> list[TensorStats]:
    """Statistics and verdicts for each ``(subject, reference)`` pair, in the given order."""
    results: list[TensorStats | None] = [None] * len(names)
    groups: dict[tuple[int, str, str, str], list[int]] = {}
    for i, (name, sub, ref) in enumerate(zip(names, subjects, references)):
        sub, ref = np.asarray(sub), np.asarray(ref)
        problem = _structural_problem(sub, ref, settings)
        if problem:
            results[i] = _failed(name, sub, ref, problem)
            continue
        if sub.size == 0:
            results[i] = TensorStats(
                name,
                tuple(ref.shape),
                sub.dtype.name,
                ref.dtype.name,
                0,
                True,
                max_abs=0.0,
                max_rel=0.0,
                median_abs=0.0,
                median_rel=0.0,
            )
            continue
        size = int(ref.size)
        key = (size if size <= _SMALL else -1 - i, sub.dtype.str, ref.dtype.str, settings.check_error_stat.get(name))
        groups.setdefault(key, []).append(i)
    for idx in groups.values():
        subs = [np.asarray(subjects[i]) for i in idx]
        refs = [np.asarray(references[i]) for i in idx]
        for i, st in zip(idx, _group_stats([names[i] for i in idx], subs, refs, settings)):
            results[i] = st
    return [r for r in results if r is not None]


def _structural_problem(sub: np.ndarray, ref: np.ndarray, settings: CompareSettings) -> str | None:
    if sub.dtype.kind not in "biuf" or ref.dtype.kind not in "biuf":
        return f"cannot compare non-numeric tensors ({sub.dtype} vs {ref.dtype})"
    if sub.shape != ref.shape:
        if settings.check_shapes or sub.size != ref.size:
            return f"shapes differ: subject {tuple(sub.shape)} vs reference {tuple(ref.shape)}"
    return None


def _failed(name: str, sub: np.ndarray, ref: np.ndarray, reason: str) -> TensorStats:
    return TensorStats(name, tuple(ref.shape), sub.dtype.name, ref.dtype.name, int(ref.size), False, reason=reason)


def _stack(arrays: Sequence[np.ndarray]) -> np.ndarray:
    if len(arrays) == 1:
        return cast_up(arrays[0]).reshape(1, -1)
    return cast_up(np.stack([a.reshape(-1) for a in arrays]))


def _group_stats(
    names: Sequence[str], subs: Sequence[np.ndarray], refs: Sequence[np.ndarray], settings: CompareSettings
) -> list[TensorStats]:
    """Stats for tensors of identical size/dtypes: one vectorised pass over a [k, n] stack."""
    S = _stack(subs)
    R = _stack(refs)
    k = S.shape[0]
    atol = np.array([settings.atol.get(n) for n in names], dtype=np.float64)
    rtol = np.array([settings.rtol.get(n) for n in names], dtype=np.float64)
    stat = settings.check_error_stat.get(names[0])
    with np.errstate(all="ignore"):
        if S.dtype == np.bool_ and R.dtype == np.bool_:
            absd = np.logical_xor(S, R)
        else:
            absd = np.abs(np.subtract(S, R))
            if settings.infinities_compare_equal and S.dtype.kind == "f":
                absd = np.where(np.isinf(S) & (S == R), np.asarray(0), absd)  # int64 0-d: float64 as Polygraphy
        R_eps = R
        if R.dtype.kind == "f":
            zero = R == 0
            if zero.any():
                R_eps = R.copy()
                R_eps[zero] += EPSILON
        rel = np.divide(absd, np.abs(R_eps))

        absf = absd if absd.dtype.kind == "f" else absd.astype(np.float64)
        relf = rel if rel.dtype.kind == "f" else rel.astype(np.float64)
        max_abs = np.max(absf, axis=1)
        max_rel = np.max(relf, axis=1)
        mean_abs = np.mean(absd, axis=1, dtype=np.float32)
        mean_rel = np.mean(rel, axis=1, dtype=np.float32)
        median_abs, q_abs = _order_stats(absf)
        median_rel, q_rel = _order_stats(relf)
        std_abs = np.std(absf, axis=1)
        std_rel = np.std(relf, axis=1)
        arg_abs = np.argmax(absf, axis=1)
        arg_rel = np.argmax(relf, axis=1)
        robust = absf / (np.abs(R).astype(absf.dtype, copy=False) + atol[:, None])
        max_robust = np.max(robust, axis=1)
        mean_robust = np.mean(robust, axis=1)

        rel_for_verdict = robust if settings.rel_mode == "robust" else relf
        mism = ((absf > atol[:, None]) | np.isnan(absf)) & (
            (rel_for_verdict > rtol[:, None]) | np.isnan(rel_for_verdict)
        )
        n_mism = np.count_nonzero(mism, axis=1)

        quant_abs = quant_rel = None
        if stat == "quantile":
            qs = [settings.error_quantile.get(n) for n in names]
            if len(set(qs)) == 1:
                quant_abs = np.quantile(absf, qs[0], axis=1)
                quant_rel = np.quantile(rel_for_verdict, qs[0], axis=1)
            else:
                quant_abs = np.array([np.quantile(absf[j], qs[j]) for j in range(k)])
                quant_rel = np.array([np.quantile(rel_for_verdict[j], qs[j]) for j in range(k)])

        if S.dtype.kind == "f":
            nan_s = np.count_nonzero(np.isnan(S), axis=1)
            inf_s = np.count_nonzero(np.isinf(S), axis=1)
        else:
            nan_s = inf_s = np.zeros(k, dtype=np.int64)
        if R.dtype.kind == "f":
            nan_r = np.count_nonzero(np.isnan(R), axis=1)
            inf_r = np.count_nonzero(np.isinf(R), axis=1)
        else:
            nan_r = inf_r = np.zeros(k, dtype=np.int64)
        dot, ss, rr, noise = _dots(S, R)
        ns, nr = np.sqrt(ss), np.sqrt(rr)
        cosine = dot / (ns * nr)
        cosine = np.where((ns == 0) & (nr == 0), 1.0, np.where((ns == 0) | (nr == 0), 0.0, cosine))
        signal = rr
        snr = np.where(noise == 0, np.inf, 10.0 * np.log10(signal / noise))

    cols = {
        "max_abs": max_abs,
        "mean_abs": mean_abs,
        "median_abs": median_abs,
        "std_abs": std_abs,
        "p90_abs": q_abs[0],
        "p95_abs": q_abs[1],
        "p99_abs": q_abs[2],
        "max_rel": max_rel,
        "mean_rel": mean_rel,
        "median_rel": median_rel,
        "std_rel": std_rel,
        "p90_rel": q_rel[0],
        "p95_rel": q_rel[1],
        "p99_rel": q_rel[2],
        "max_rel_robust": max_robust,
        "mean_rel_robust": mean_robust,
        "cosine": cosine,
        "snr_db": snr,
    }
    rows = {key: np.asarray(v, dtype=np.float64).tolist() for key, v in cols.items()}
    ints = {
        key: np.asarray(v).tolist()
        for key, v in {"mismatches": n_mism, "nan": nan_s, "inf": inf_s, "ref_nan": nan_r, "ref_inf": inf_r}.items()
    }
    shape = tuple(refs[0].shape)
    same_shape = all(r.shape == shape for r in refs)
    arg_abs_idx = _unravel_all(arg_abs, shape) if same_shape else None
    arg_rel_idx = _unravel_all(arg_rel, shape) if same_shape else None
    dtype, ref_dtype, size = subs[0].dtype.name, refs[0].dtype.name, int(refs[0].size)
    if stat == "elemwise":
        verdicts = (n_mism == 0).tolist()
    else:
        rel_stat = {"max": max_rel, "mean": mean_rel, "median": median_rel, "quantile": quant_rel}[stat]
        if settings.rel_mode == "robust" and stat != "quantile":
            if stat == "max":
                rel_stat = np.max(robust, axis=1)
            elif stat == "median":
                rel_stat = np.median(robust, axis=1)
            else:
                rel_stat = np.mean(robust, axis=1, dtype=np.float32)
        abs_stat = {"max": max_abs, "mean": mean_abs, "median": median_abs, "quantile": quant_abs}[stat]
        verdicts = [not (_stat_failed(abs_stat[j], atol[j]) and _stat_failed(rel_stat[j], rtol[j])) for j in range(k)]
    out: list[TensorStats] = []
    for j in range(k):
        rshape = shape if same_shape else tuple(refs[j].shape)
        out.append(
            TensorStats(
                names[j],
                rshape,
                dtype,
                ref_dtype,
                size,
                bool(verdicts[j]),
                None,
                rows["max_abs"][j],
                rows["mean_abs"][j],
                rows["median_abs"][j],
                rows["std_abs"][j],
                rows["p90_abs"][j],
                rows["p95_abs"][j],
                rows["p99_abs"][j],
                arg_abs_idx[j] if arg_abs_idx else _unravel_all(arg_abs[j : j + 1], rshape)[0],
                rows["max_rel"][j],
                rows["mean_rel"][j],
                rows["median_rel"][j],
                rows["std_rel"][j],
                rows["p90_rel"][j],
                rows["p95_rel"][j],
                rows["p99_rel"][j],
                arg_rel_idx[j] if arg_rel_idx else _unravel_all(arg_rel[j : j + 1], rshape)[0],
                None if quant_abs is None else float(quant_abs[j]),
                None if quant_rel is None else float(quant_rel[j]),
                rows["max_rel_robust"][j],
                rows["mean_rel_robust"][j],
                rows["cosine"][j],
                rows["snr_db"][j],
                ints["mismatches"][j],
                ints["nan"][j],
                ints["inf"][j],
                ints["ref_nan"][j],
                ints["ref_inf"][j],
            )
        )
    return out


_QUANTILES = (0.9, 0.95, 0.99)
_DOT_CHUNK = 1 << 20


def _order_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row medians (exactly as ``np.median``) and p90/p95/p99 (linear rule) from ONE partition copy."""
    n = x.shape[1]
    half = n // 2
    med_idx = [half - 1, half] if n % 2 == 0 else [half]
    q_pos = [q * (n - 1) for q in _QUANTILES]
    q_lo = [int(np.floor(v)) for v in q_pos]
    q_hi = [min(lo + 1, n - 1) for lo in q_lo]
    kth = sorted({*med_idx, *q_lo, *q_hi, n - 1})
    part = np.partition(x, kth, axis=1)
    median = np.mean(part[:, med_idx[0] : med_idx[-1] + 1], axis=1)
    median = np.where(np.isnan(part[:, -1]), np.nan, median) if x.dtype.kind == "f" else median
    quant = np.empty((len(_QUANTILES), x.shape[0]), dtype=np.float64)
    for i, (v, lo, hi) in enumerate(zip(q_pos, q_lo, q_hi)):
        a, b = part[:, lo].astype(np.float64), part[:, hi].astype(np.float64)
        quant[i] = a + (b - a) * (v - lo)
    return median, quant


def _dots(S: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row sums of S·R, S·S, R·R and (S−R)² in float64, converting at most ~1M elements at a time."""
    k, n = S.shape
    out = np.zeros((4, k), dtype=np.float64)
    step = max(1, _DOT_CHUNK // max(k, 1))
    for c in range(0, n, step):
        s = S[:, c : c + step].astype(np.float64)
        r = R[:, c : c + step].astype(np.float64)
        out[0] += np.einsum("ij,ij->i", s, r)
        out[1] += np.einsum("ij,ij->i", s, s)
        out[2] += np.einsum("ij,ij->i", r, r)
        s -= r
        out[3] += np.einsum("ij,ij->i", s, s)
    return out[0], out[1], out[2], out[3]


def _stat_failed(value: float, tol: float) -> bool:
    return bool(np.isnan(value) or value > tol)


def _unravel_all(flat: np.ndarray, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Multi-dimensional indices for flat argmax positions (one vectorised call)."""
    if not shape:
        return [()] * len(flat)
    return list(zip(*(c.tolist() for c in np.unravel_index(flat, shape))))
