"""Error histograms with log-spaced bins (the detail pane's histogram)."""

from __future__ import annotations

import numpy as np
import pytest

from engine_core.comparator.histogram import error_histograms
from engine_core.comparator.metrics import compare_tensors
from engine_core.comparator.tolerances import CompareSettings


def test_counts_edges_zeros_and_nonfinite() -> None:
    ref = np.ones(1000, dtype=np.float32)
    err = np.concatenate([np.zeros(100), np.full(400, 1e-6), np.full(490, 1e-3), np.full(9, 0.5), [np.nan]])
    sub = (ref + err).astype(np.float32)
    settings = CompareSettings.from_specs(atol=["1e-4"])
    a, r = error_histograms("t", sub, ref, settings, bins=12)
    assert a.total == r.total == 1000
    assert a.zeros == 100 and a.nonfinite == 1 and sum(a.counts) == 899
    assert len(a.edges) == 13 and all(x < y for x, y in zip(a.edges, a.edges[1:]))
    (stats,) = compare_tensors(["t"], [sub[:-1]], [ref[:-1]], settings)
    assert a.edges[-1] == pytest.approx(stats.max_abs)  # the largest finite error closes the last bin
    assert a.counts[-1] == 9 and a.tolerance == 1e-4
    # log spacing: equal ratios between consecutive edges
    ratios = np.diff(np.log(a.edges))
    assert np.allclose(ratios, ratios[0])
    assert r.counts == a.counts  # |reference| == 1: rel == abs


def test_matched_infinities_and_zero_reference() -> None:
    ref = np.array([np.inf, 0.0, 2.0, -np.inf], dtype=np.float32)
    sub = np.array([np.inf, 1e-3, 2.0, np.inf], dtype=np.float32)
    a, r = error_histograms("t", sub, ref, CompareSettings())
    assert (a.zeros, a.nonfinite) == (2, 1)  # equal infinities are 0; -inf vs inf is inf
    assert r.edges[-1] == pytest.approx(1e-3 / 2.220446049250313e-16)  # a zero reference gets EPSILON
    strict = CompareSettings.from_specs(polygraphy_defaults=True)
    assert error_histograms("t", sub, ref, strict)[0].nonfinite == 2


def test_identical_and_integer_tensors() -> None:
    x = np.arange(10, dtype=np.int8)
    a, r = error_histograms("t", x, x.copy(), CompareSettings())
    assert a.edges == () and a.counts == () and a.zeros == 10
    y = x.copy()
    y[3] += 4
    a, _ = error_histograms("t", y, x, CompareSettings())
    assert a.counts == (1,) and a.edges[0] == 4.0 and a.zeros == 9


def test_chunked_walk_matches_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine_core.comparator.histogram as hist

    rng = np.random.default_rng(0)
    ref = rng.standard_normal(5000).astype(np.float32)
    sub = ref + rng.standard_normal(5000).astype(np.float32) * 1e-3
    whole = error_histograms("t", sub, ref, CompareSettings())
    monkeypatch.setattr(hist, "_CHUNK", 333)
    assert error_histograms("t", sub, ref, CompareSettings()) == whole


def test_histogram_errors_are_the_verdicts_errors() -> None:
    """Bool tensors: rel = xor / |ref| as the statistics compute it (1/0 is Inf, 0/0 NaN), not a copy of abs."""
    sub, ref = np.array([True, False, True]), np.array([False, False, True])
    _, rel = error_histograms("b", sub, ref, CompareSettings())
    (stats,) = compare_tensors(["b"], [sub], [ref], CompareSettings(), order_stats=True)
    assert np.isnan(stats.max_rel) and rel.nonfinite == 2 and rel.zeros == 1 and sum(rel.counts) == 0
