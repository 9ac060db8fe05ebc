"""The statistics give the same numbers however they are computed: tensors alone or several at once, and the
streaming path against the whole-array (Polygraphy) path on what decides a verdict."""

from __future__ import annotations

import numpy as np

from engine_core.comparator.metrics import TensorStats, compare_tensors
from engine_core.comparator.tolerances import CompareSettings


def _pairs() -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """Large tensors (several streaming chunks each): ReLU zeros, a NaN, matched and unmatched infinities."""
    rng = np.random.default_rng(7)
    names, subs, refs = [], [], []
    for k in range(5):
        ref = np.maximum(rng.standard_normal((3, 70_001)).astype(np.float32), 0)  # exact zeros: the epsilon rule
        sub = ref + (rng.standard_normal(ref.shape) * 10.0 ** -(k + 3)).astype(np.float32)
        if k == 1:
            sub[1, 5] = np.nan
        if k == 2:
            ref[0, 100] = sub[0, 100] = np.inf
            sub[2, 9] = -np.inf
        names.append(f"t{k}")
        subs.append(sub)
        refs.append(ref)
    return names, subs, refs


def _values(st: TensorStats) -> dict[str, object]:
    return {k: (repr(v) if isinstance(v, float) else v) for k, v in st.to_dict().items()}  # NaN == NaN


def test_tensors_compared_together_match_each_alone() -> None:
    names, subs, refs = _pairs()
    settings = CompareSettings()
    together = compare_tensors(names, subs, refs, settings)
    alone = [compare_tensors([n], [s], [r], settings)[0] for n, s, r in zip(names, subs, refs)]
    assert [_values(a) for a in together] == [_values(b) for b in alone]
    assert [st.passed for st in together] == [False, False, False, True, True]
    assert together[1].nan == 1 and together[2].inf == 2 and together[2].inf_matched == 1


def test_streaming_path_decides_as_the_whole_array_path() -> None:
    names, subs, refs = _pairs()
    settings = CompareSettings()
    streaming = compare_tensors(names, subs, refs, settings)
    whole = compare_tensors(names, subs, refs, settings, order_stats=True)  # order statistics: whole arrays
    decisive = ("passed", "max_abs", "argmax_abs", "max_rel", "argmax_rel", "mismatches", "nan", "inf")
    for a, b in zip(streaming, whole):
        assert a.median_abs is None and b.median_abs is not None
        assert [repr(getattr(a, k)) for k in decisive] == [repr(getattr(b, k)) for k in decisive]


def test_cosine_and_snr_from_float32_sums_keep_their_digits() -> None:
    """The streaming path sums in float32: 1 − cosine and SNR still agree with extended precision to ~1e-6 relative,
    identical tensors give exactly 1 and inf, and magnitudes whose float32 squares overflow or underflow
    (1e30, 1e-21, a -3.4e38 attention mask) are summed again in float64."""
    rng = np.random.default_rng(1)
    for scale in (1.0, 1e-21, 1e30):
        for noise in (1e-4, 1e-1):
            ref = (rng.standard_normal(70_001) * scale).astype(np.float32)
            sub = (ref * (1 + rng.standard_normal(ref.size).astype(np.float32) * np.float32(noise))).astype(np.float32)
            (st,) = compare_tensors(["t"], [sub], [ref], CompareSettings())
            s, r = sub.astype(np.longdouble), ref.astype(np.longdouble)
            one_minus = 1 - (s @ r) / np.sqrt((s @ s) * (r @ r))
            snr = 10 * np.log10((r @ r) / ((s - r) @ (s - r)))
            assert abs((1 - st.cosine) - float(one_minus)) <= 1e-5 * float(one_minus), (scale, noise)
            assert abs(st.snr_db - float(snr)) <= 1e-4, (scale, noise)
    mask = np.full((4, 64), -3.4e38, np.float32)
    mask[:, :10] = rng.standard_normal((4, 10))
    (same,) = compare_tensors(["mask"], [mask.copy()], [mask], CompareSettings())
    assert same.cosine == 1.0 and same.snr_db == np.inf
