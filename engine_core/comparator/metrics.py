"""Vectorised per-tensor error statistics and Polygraphy ``simple``-comparator verdicts.

Tensors of equal size and dtypes are stacked into one 2-D array and reduced along axis 1, so
thousands of small tensors cost a handful of numpy calls instead of dozens each. The arithmetic
is Polygraphy's (``comparator/compare.py: SimpleCompareFunc._check_outputs_match``):

* both sides are cast up (fp16→fp32, 8/16-bit ints→int32, uint32→int64); bools use xor;
* ``absdiff = |subject − reference|``; with ``infinities_compare_equal`` (trtdbg's default) equal
  infinities at the same position give 0, NaN always fails;
* ``reldiff = absdiff / |reference|`` where zeros of a floating reference get ``+2.220446049250313e-16``;
* ``elemwise`` fails iff some element has ``(abs > atol or abs is NaN) and (rel > rtol or rel is NaN)``;
  ``max|mean|median|quantile`` fail iff ``(stat_abs is NaN or > atol) and (stat_rel is NaN or > rtol)``
  (the mean is computed in float32, the quantile with numpy's linear rule).

Two ways to get there, with identical verdicts, maxima and argmaxima:

* the streaming path (floating tensors, ``elemwise``/``max``): one cache-sized chunk of columns at a
  time, every statistic the verdict and the error table need (max/argmax, means, mismatch count,
  cosine, SNR, NaN/Inf counts) from the chunk while it is hot, with no order statistics;
* the full path (integers, bools, ``mean``/``median``/``quantile``, ``rel_mode="robust"``, matched
  infinities, or ``order_stats=True``): whole-array numpy as Polygraphy does it.

Order statistics (median, p90/p95/p99, std) and the near-zero-robust relative error
``|s − r| / (|r| + atol)`` are computed only where a verdict needs them or the caller asks
(``order_stats=True``: the detail pane's :func:`error_distribution`, ``compare --order-stats``);
otherwise they are ``None``.
"""

from __future__ import annotations

import functools
import operator
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from engine_core.comparator.tolerances import CompareSettings

EPSILON = 2.220446049250313e-16
_SMALL = 1 << 14  # tensors up to this many elements are stacked with their peers
_CHUNK = 1 << 16  # elements per row-chunk on the streaming path (stays in the CPU caches)
_TINY = 1e-24  # float32 sums of squares below this may hold flushed or subnormal squares: summed again in float64
_QUANTILES = (0.9, 0.95, 0.99)


@dataclass(slots=True)
class TensorStats:
    """Error statistics and verdict for one tensor of one iteration (subject vs reference).

    Order statistics (``median_*``, ``p9x_*``, ``std_*``) and the robust relative error are ``None``
    when they were not computed (see the module docstring).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    ref_dtype: str
    size: int
    passed: bool
    reason: str | None = None
    max_abs: float = float("nan")
    mean_abs: float = float("nan")
    median_abs: float | None = None
    std_abs: float | None = None
    p90_abs: float | None = None
    p95_abs: float | None = None
    p99_abs: float | None = None
    argmax_abs: tuple[int, ...] | None = None
    max_rel: float = float("nan")
    mean_rel: float = float("nan")
    median_rel: float | None = None
    std_rel: float | None = None
    p90_rel: float | None = None
    p95_rel: float | None = None
    p99_rel: float | None = None
    argmax_rel: tuple[int, ...] | None = None
    quantile_abs: float | None = None
    quantile_rel: float | None = None
    max_rel_robust: float | None = None
    mean_rel_robust: float | None = None
    cosine: float = float("nan")
    snr_db: float = float("nan")
    mismatches: int = 0
    nan: int = 0
    inf: int = 0
    ref_nan: int = 0
    ref_inf: int = 0
    inf_matched: int = 0
    """Elements where both sides hold the same ±inf (equal by default, NaN under Polygraphy's rule)."""
    atol: float | None = None
    """The absolute tolerance this tensor was judged with."""

    @property
    def nonfinite(self) -> bool:
        """True when the subject produced NaN or Inf."""
        return self.nan > 0 or self.inf > 0

    @property
    def is_float(self) -> bool:
        """True for floating-point tensors (the ones ``--first-failing float`` considers)."""
        return self.ref_dtype.startswith(("float", "bfloat"))

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly dict (NaN/Inf become strings only at JSON encoding time)."""
        d = dict(zip(_FIELDS, _VALUES(self)))
        d["shape"] = list(self.shape)
        for k in ("argmax_abs", "argmax_rel"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d


_FIELDS = tuple(TensorStats.__dataclass_fields__)
_VALUES = operator.attrgetter(*_FIELDS)


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


def tolerance_for(name: str, dtype: np.dtype, settings: CompareSettings) -> float:
    """The absolute tolerance of tensor ``name``: its ``--atol NAME:`` value, else ``int_atol`` for
    integer tensors narrower than 64 bits (quantized data, integer accumulators), else the default."""
    if name in settings.atol.overrides:
        return settings.atol.overrides[name]
    if settings.int_atol is not None and dtype.kind in "iu" and dtype.itemsize <= 4:
        return max(settings.int_atol, settings.atol.default)
    return settings.atol.default


def compare_tensors(
    names: Sequence[str],
    subjects: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    settings: CompareSettings,
    *,
    order_stats: bool = False,
) -> list[TensorStats]:
    """Statistics and verdicts for each ``(subject, reference)`` pair, in the given order.

    ``order_stats`` also computes median, p90/p95/p99, std and the robust relative error of every tensor.
    """
    with threadpool_limits(1, user_api="blas"):  # BLAS threads only contend on cache-sized dot products
        return _compare_tensors(names, subjects, references, settings, order_stats)


def _compare_tensors(
    names: Sequence[str],
    subjects: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    settings: CompareSettings,
    order_stats: bool,
) -> list[TensorStats]:
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
                name, tuple(ref.shape), sub.dtype.name, ref.dtype.name, 0, True, max_abs=0.0, max_rel=0.0
            )
            continue
        size = int(ref.size)
        key = (size if size <= _SMALL else -1 - i, sub.dtype.str, ref.dtype.str, settings.check_error_stat.get(name))
        groups.setdefault(key, []).append(i)

    for idx in groups.values():  # one thread: with cache-sized chunks, worker threads only queued on the GIL
        stats = _group_stats(
            [names[i] for i in idx],
            [np.asarray(subjects[i]) for i in idx],
            [np.asarray(references[i]) for i in idx],
            settings,
            order_stats,
        )
        for i, st in zip(idx, stats):
            results[i] = st
    return [r for r in results if r is not None]


def _streams(stat: str, sub: np.dtype, ref: np.dtype, settings: CompareSettings, order_stats: bool) -> bool:
    """Whether tensors of these dtypes take the streaming path (see the module docstring)."""
    sub, ref = cast_up(np.empty(0, sub)).dtype, cast_up(np.empty(0, ref)).dtype
    return (
        not order_stats
        and stat in ("elemwise", "max")
        and settings.rel_mode == "polygraphy"
        and sub == ref
        and sub.kind == "f"
        and not (settings.polygraphy_defaults and settings.infinities_compare_equal)
    )


def error_distribution(
    stats: TensorStats, subject: np.ndarray, reference: np.ndarray, settings: CompareSettings
) -> TensorStats:
    """``stats`` completed with the order statistics and robust relative error of this pair (detail views)."""
    (full,) = compare_tensors([stats.name], [subject], [reference], settings, order_stats=True)
    return replace(stats, **{f: getattr(full, f) for f in _ORDER_FIELDS})


_ORDER_FIELDS = tuple(f"{s}_{k}" for k in ("abs", "rel") for s in ("median", "std", "p90", "p95", "p99")) + (
    "max_rel_robust",
    "mean_rel_robust",
)


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
    names: Sequence[str],
    subs: Sequence[np.ndarray],
    refs: Sequence[np.ndarray],
    settings: CompareSettings,
    order_stats: bool,
) -> list[TensorStats]:
    """Stats for tensors of identical size/dtypes: one vectorised pass over a [k, n] stack."""
    S = _stack(subs)
    R = _stack(refs)
    stat = settings.check_error_stat.get(names[0])
    atol = np.array([tolerance_for(n, R.dtype, settings) for n in names], dtype=np.float64)
    rtol = np.array([settings.rtol.get(n) for n in names], dtype=np.float64)
    if _streams(stat, S.dtype, R.dtype, settings, order_stats):
        cols = _streaming_stats(S, R, atol, rtol, settings)
    else:
        cols = _full_stats(names, S, R, atol, rtol, settings, stat, order_stats)
    return _to_stats(names, subs, refs, cols, atol, rtol, stat, settings)


def _to_stats(
    names: Sequence[str],
    subs: Sequence[np.ndarray],
    refs: Sequence[np.ndarray],
    cols: dict[str, Any],
    atol: np.ndarray,
    rtol: np.ndarray,
    stat: str,
    settings: CompareSettings,
) -> list[TensorStats]:
    """One :class:`TensorStats` per row of the computed columns, with its verdict."""
    k = len(names)
    if stat == "elemwise":
        verdicts = (np.asarray(cols["mismatches"]) == 0).tolist()
    else:
        abs_stat = cols[f"{stat}_abs" if stat != "quantile" else "quantile_abs"]
        rel_stat = cols["verdict_rel"]
        assert abs_stat is not None and rel_stat is not None
        verdicts = [not (_stat_failed(abs_stat[j], atol[j]) and _stat_failed(rel_stat[j], rtol[j])) for j in range(k)]
    lists: dict[str, list[Any] | None] = {}
    for key, v in cols.items():
        if key in ("verdict_rel", "arg_abs", "arg_rel"):
            continue
        if v is None:
            lists[key] = None
        elif key in _INT_COLS:
            lists[key] = np.asarray(v).tolist()
        else:
            lists[key] = np.asarray(v, dtype=np.float64).tolist()
    shape = tuple(refs[0].shape)
    same_shape = all(r.shape == shape for r in refs)
    arg_abs, arg_rel = np.asarray(cols["arg_abs"]), np.asarray(cols["arg_rel"])
    arg_abs_idx = _unravel_all(arg_abs, shape) if same_shape else None
    arg_rel_idx = _unravel_all(arg_rel, shape) if same_shape else None
    dtype, ref_dtype, size = subs[0].dtype.name, refs[0].dtype.name, int(refs[0].size)
    atols = atol.tolist()
    out: list[TensorStats] = []
    for j in range(k):
        rshape = shape if same_shape else tuple(refs[j].shape)
        values: dict[str, Any] = {key: (None if v is None else v[j]) for key, v in lists.items()}
        out.append(
            TensorStats(
                names[j],
                rshape,
                dtype,
                ref_dtype,
                size,
                bool(verdicts[j]),
                argmax_abs=arg_abs_idx[j] if arg_abs_idx else _unravel_all(arg_abs[j : j + 1], rshape)[0],
                argmax_rel=arg_rel_idx[j] if arg_rel_idx else _unravel_all(arg_rel[j : j + 1], rshape)[0],
                atol=atols[j],
                **values,
            )
        )
    return out


_INT_COLS = {"mismatches", "nan", "inf", "ref_nan", "ref_inf", "inf_matched"}


def _float_below(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The largest ``dtype`` value ≤ each of ``values``: ``x > t`` ⟺ ``x > below(t)`` for every x of ``dtype``."""
    t = values.astype(dtype)
    over = t.astype(np.float64) > values
    return np.where(over, np.nextafter(t, dtype.type(-np.inf)), t)


def _streaming_stats(
    S: np.ndarray, R: np.ndarray, atol: np.ndarray, rtol: np.ndarray, settings: CompareSettings
) -> dict[str, Any]:
    """Verdict and table statistics of floating [k, n] stacks, one cache-sized chunk at a time."""
    k, n = S.shape
    dt = S.dtype
    width = n if n <= _SMALL else _CHUNK  # independent of k: results never depend on how tensors were grouped
    atol_t = _float_below(atol, dt)[:, None]
    rtol_t = _float_below(rtol, dt)[:, None]
    rows = np.arange(k)
    best = {"abs": np.full(k, -np.inf), "rel": np.full(k, -np.inf)}
    arg = {"abs": np.zeros(k, np.int64), "rel": np.zeros(k, np.int64)}
    sums = {"abs": np.zeros(k), "rel": np.zeros(k)}
    mism = np.zeros(k, np.int64)
    dots = np.zeros((4, k))  # the sums of _cosine_snr: Σ(s−r)(s+r), Σs², Σr², Σ(s−r)², in dt per chunk
    buf_d, buf_r, buf_e, zero = _scratch(dt, k, min(width, n))
    ones = _ones(dt, min(width, n))
    eps = dt.type(EPSILON)
    with np.errstate(all="ignore"):
        for c in range(0, n, width):
            s, r = S[:, c : c + width], R[:, c : c + width]
            w = s.shape[1]
            d = np.subtract(s, r, out=buf_d[:, :w])
            dots[0] += _rowdot(d, np.add(s, r, out=buf_e[:, :w]))
            dots[1] += _rowdot(s, s)
            dots[2] += _rowdot(r, r)
            np.abs(d, out=d)
            am_abs = d.argmax(axis=1)
            if settings.infinities_compare_equal and np.isnan(d[rows, am_abs]).any():
                matched = np.isinf(s) & (s == r)  # inf - inf: equal infinities count as equal
                if matched.any():
                    d[matched] = 0
                    am_abs = d.argmax(axis=1)
            a = np.abs(r, out=buf_r[:, :w])
            z = np.equal(a, 0, out=zero[:, :w])
            if z.any():  # zeros in the reference: Polygraphy's |r| + epsilon there (+ 0 leaves the others exact)
                np.add(a, np.multiply(z, eps, out=buf_e[:, :w]), out=a)
            rel = np.divide(d, a, out=a)
            am_rel = rel.argmax(axis=1)
            chunk_max = {}
            for key, x, am in (("abs", d, am_abs), ("rel", rel, am_rel)):
                mv = x[rows, am].astype(np.float64)
                cur = best[key]
                take = (np.isnan(mv) & ~np.isnan(cur)) | (mv > cur)
                cur[take] = mv[take]
                arg[key][take] = am[take] + c
                sums[key] += _rowdot(x, ones[:w])
                chunk_max[key] = mv
            check = ~(chunk_max["abs"] <= atol_t[:, 0]) & ~(chunk_max["rel"] <= rtol_t[:, 0])
            if check.any():
                sel = np.flatnonzero(check)
                ok = (d[sel] <= atol_t[sel]) | (rel[sel] <= rtol_t[sel])
                mism[sel] += w - np.count_nonzero(ok, axis=1)
            dots[3] += _rowdot(d, d)
        nonfinite = ~np.isfinite(dots).all(axis=0)  # an inf or NaN in the row (a matched ±inf too), or an overflow
        counts = {key: np.zeros(k, np.int64) for key in ("nan", "inf", "ref_nan", "ref_inf", "inf_matched")}
        unmatched: dict[int, tuple[float, float]] = {}
        for j in np.flatnonzero(nonfinite).tolist():
            counts["nan"][j] = np.count_nonzero(np.isnan(S[j]))
            counts["inf"][j] = np.count_nonzero(np.isinf(S[j]))
            counts["ref_nan"][j] = np.count_nonzero(np.isnan(R[j]))
            counts["ref_inf"][j] = np.count_nonzero(np.isinf(R[j]))
            matched = np.isinf(S[j]) & (S[j] == R[j])
            counts["inf_matched"][j] = np.count_nonzero(matched)
            if settings.infinities_compare_equal and counts["inf_matched"][j]:
                unmatched[j] = _cosine_snr_unmatched(S[j], R[j], matched)
        if dt != np.float64:  # float32 sums of finite rows that overflowed or lost their low bits: again in float64
            held = counts["nan"] + counts["inf"] + counts["ref_nan"] + counts["ref_inf"] > 0
            tiny = (dots[1] < _TINY) | (dots[2] < _TINY) | ((dots[3] < _TINY) & (best["abs"] != 0))
            for j in np.flatnonzero((tiny | nonfinite) & ~held).tolist():
                dots[:, j] = np.ravel(_dots(S[j : j + 1], R[j : j + 1]))
        cosine, snr = _cosine_snr(*dots)
        for j, (cos_j, snr_j) in unmatched.items():
            cosine[j], snr[j] = cos_j, snr_j
    return {
        "max_abs": best["abs"],
        "max_rel": best["rel"],
        "arg_abs": arg["abs"],
        "arg_rel": arg["rel"],
        "mean_abs": sums["abs"] / n,
        "mean_rel": sums["rel"] / n,
        "verdict_rel": best["rel"],
        "cosine": cosine,
        "snr_db": snr,
        "mismatches": mism,
        **counts,
    }


def error_arrays(
    S: np.ndarray, R: np.ndarray, settings: CompareSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Polygraphy's element errors of cast-up ``[k, n]`` stacks, as the verdicts compute them: ``abs = |S − R|``
    (xor for bools; matched infinities 0 when they compare equal), ``rel = abs / |R|`` with ``EPSILON`` for a zero
    reference; and the matched-infinity mask of float stacks (``None`` otherwise). Call under ``np.errstate``."""
    matched = None
    if S.dtype == np.bool_ and R.dtype == np.bool_:
        absd = np.logical_xor(S, R)
    else:
        absd = np.abs(np.subtract(S, R))
    if S.dtype.kind == "f":
        matched = np.isinf(S) & (S == R)
        if settings.infinities_compare_equal and settings.polygraphy_defaults:
            absd = np.where(matched, np.asarray(0), absd)  # int64 0-d: float64 errors, as Polygraphy
        elif settings.infinities_compare_equal and matched.any():
            absd[matched] = 0
    R_eps = R
    if R.dtype.kind == "f":
        zero = R == 0
        if zero.any():
            R_eps = R.copy()
            R_eps[zero] += EPSILON
    return absd, np.divide(absd, np.abs(R_eps)), matched


def _full_stats(
    names: Sequence[str],
    S: np.ndarray,
    R: np.ndarray,
    atol: np.ndarray,
    rtol: np.ndarray,
    settings: CompareSettings,
    stat: str,
    order_stats: bool,
) -> dict[str, Any]:
    """Every statistic from whole arrays, exactly as Polygraphy computes them."""
    k = S.shape[0]
    cols: dict[str, Any] = {}
    with np.errstate(all="ignore"):
        absd, rel, matched = error_arrays(S, R, settings)
        cols["inf_matched"] = np.count_nonzero(matched, axis=1) if matched is not None else np.zeros(k, np.int64)

        absf = absd if absd.dtype.kind == "f" else absd.astype(np.float64)
        relf = rel if rel.dtype.kind == "f" else rel.astype(np.float64)
        cols["arg_abs"] = np.argmax(absf, axis=1)
        cols["arg_rel"] = np.argmax(relf, axis=1)
        cols["max_abs"] = np.max(absf, axis=1)
        cols["max_rel"] = np.max(relf, axis=1)
        cols["mean_abs"] = np.mean(absd, axis=1, dtype=np.float32)
        cols["mean_rel"] = np.mean(rel, axis=1, dtype=np.float32)
        robust: np.ndarray | None = None
        if order_stats or settings.rel_mode == "robust":
            robust = absf / (np.abs(R).astype(absf.dtype, copy=False) + atol[:, None])
            cols["max_rel_robust"] = np.max(robust, axis=1)
            cols["mean_rel_robust"] = np.mean(robust, axis=1)
        rel_for_verdict = robust if robust is not None and settings.rel_mode == "robust" else relf
        if order_stats or stat == "median":
            cols["median_abs"], q_abs = _order_stats(absf)
            cols["median_rel"], q_rel = _order_stats(relf)
            if order_stats:
                for i, q in enumerate(("p90", "p95", "p99")):
                    cols[f"{q}_abs"], cols[f"{q}_rel"] = q_abs[i], q_rel[i]
                cols["std_abs"] = np.std(absf, axis=1)
                cols["std_rel"] = np.std(relf, axis=1)
        mism = ((absf > atol[:, None]) | np.isnan(absf)) & (
            (rel_for_verdict > rtol[:, None]) | np.isnan(rel_for_verdict)
        )
        cols["mismatches"] = np.count_nonzero(mism, axis=1)

        if stat == "quantile":
            qs = [settings.error_quantile.get(n) for n in names]
            if len(set(qs)) == 1:
                cols["quantile_abs"] = np.quantile(absf, qs[0], axis=1)
                cols["quantile_rel"] = np.quantile(rel_for_verdict, qs[0], axis=1)
            else:
                cols["quantile_abs"] = np.array([np.quantile(absf[j], qs[j]) for j in range(k)])
                cols["quantile_rel"] = np.array([np.quantile(rel_for_verdict[j], qs[j]) for j in range(k)])
            cols["verdict_rel"] = cols["quantile_rel"]
        elif stat != "elemwise":
            if robust is not None and settings.rel_mode == "robust":
                if stat == "max":
                    cols["verdict_rel"] = np.max(robust, axis=1)
                elif stat == "median":
                    cols["verdict_rel"] = np.median(robust, axis=1)
                else:
                    cols["verdict_rel"] = np.mean(robust, axis=1, dtype=np.float32)
            else:
                cols["verdict_rel"] = cols[f"{stat}_rel"]

        for side, X in (("", S), ("ref_", R)):
            if X.dtype.kind == "f":
                cols[f"{side}nan"] = np.count_nonzero(np.isnan(X), axis=1)
                cols[f"{side}inf"] = np.count_nonzero(np.isinf(X), axis=1)
            else:
                cols[f"{side}nan"] = cols[f"{side}inf"] = np.zeros(k, dtype=np.int64)
        cols["cosine"], cols["snr_db"] = _cosine_snr(*_dots(S, R))
        if settings.infinities_compare_equal and matched is not None:
            for j in np.flatnonzero(cols["inf_matched"]):
                cols["cosine"][j], cols["snr_db"][j] = _cosine_snr_unmatched(S[j], R[j], matched[j])
    return cols


def _cosine_snr_unmatched(s: np.ndarray, r: np.ndarray, matched: np.ndarray) -> tuple[float, float]:
    """Cosine and SNR of one row holding the same ±inf on both sides (``matched``: a -inf attention mask), over its
    other elements: with the infinities counted equal, identical tensors have cosine 1, not the NaN of inf·inf.
    Call under ``np.errstate``."""
    keep = ~matched
    cosine, snr = _cosine_snr(*_dots(s[keep][None], r[keep][None]))
    return cosine[0], snr[0]


def _cosine_snr(gap: np.ndarray, ss: np.ndarray, rr: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity (both zero → 1, one zero → 0) and SNR in dB (reference power over error power) from the
    row sums ``gap = Σ(s−r)(s+r)``, ``ss = Σs²``, ``rr = Σr²`` and ``noise = Σ(s−r)²``.

    ``1 − cos = (‖s−r‖² − (‖s‖−‖r‖)²) / (2‖s‖‖r‖)`` with ``‖s‖−‖r‖ = gap / (‖s‖+‖r‖)``: every term shrinks with
    ``s − r``, so near-identical tensors keep the digits that ``s·r / (‖s‖‖r‖)`` rounds away, identical ones
    give exactly 1, and float32 sums are precise enough (relative error ~1e-6 of ``1 − cos`` itself)."""
    ns, nr = np.sqrt(ss), np.sqrt(rr)
    diff = gap / (ns + nr)
    cosine = np.clip(1.0 - (noise - diff * diff) / (2.0 * ns * nr), -1.0, 1.0)
    cosine = np.where((ns == 0) & (nr == 0), 1.0, np.where((ns == 0) | (nr == 0), 0.0, cosine))
    snr = np.where(noise == 0, np.inf, 10.0 * np.log10(rr / noise))
    return cosine, snr


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
    """The row sums of :func:`_cosine_snr` in float64 (exact products), converting one cache-sized chunk at a time."""
    k, n = S.shape
    out = np.zeros((4, k), dtype=np.float64)
    step = max(1024, _CHUNK // max(k, 1))
    for c in range(0, n, step):
        s = S[:, c : c + step].astype(np.float64)
        r = R[:, c : c + step].astype(np.float64)
        out[1] += np.einsum("ij,ij->i", s, s)
        out[2] += np.einsum("ij,ij->i", r, r)
        d = s - r
        out[0] += np.einsum("ij,ij->i", d, np.add(s, r, out=s))
        out[3] += np.einsum("ij,ij->i", d, d)
    return out[0], out[1], out[2], out[3]


_SCRATCH = threading.local()


def _scratch(dt: np.dtype, k: int, w: int) -> tuple[np.ndarray, ...]:
    """Buffers for a ``[k, w]`` chunk: three of ``dt`` and a bool mask. Chunks of large tensors reuse this thread's
    set: fresh buffers cost a page fault per 4 KiB on every call."""
    key = (dt, k, w)
    held = getattr(_SCRATCH, "held", None)
    if held is not None and held[0] == key:
        return held[1]
    shape = (k, w)
    buffers = (np.empty(shape, dt), np.empty(shape, dt), np.empty(shape, dt), np.empty(shape, bool))
    if k * w <= _CHUNK:  # a stack of small tensors is used once: not kept
        _SCRATCH.held = (key, buffers)
    return buffers


@functools.cache
def _ones(dt: np.dtype, n: int) -> np.ndarray:
    """A read-only vector of ``n`` ones (row sums as dot products)."""
    ones = np.ones(n, dt)
    ones.flags.writeable = False
    return ones


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of a [k, w] array with a [k, w] array or a [w] vector: one batched ``matmul``
    that makes one BLAS dot per row (so a row's result never depends on the rows stacked with it)."""
    column = b[:, None] if b.ndim == 1 else b[:, :, None]
    return np.matmul(a[:, None, :], column)[:, 0, 0].astype(np.float64)


def _stat_failed(value: float, tol: float) -> bool:
    return bool(np.isnan(value) or value > tol)


def _unravel_all(flat: np.ndarray, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Multi-dimensional indices for flat argmax positions (one vectorised call)."""
    if not shape:
        return [()] * len(flat)
    return list(zip(*(c.tolist() for c in np.unravel_index(flat, shape))))
