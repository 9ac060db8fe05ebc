"""The statistics give the same numbers however they are computed: tensors alone or several at once (worker
threads), and the streaming path against the whole-array (Polygraphy) path on what decides a verdict."""

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
