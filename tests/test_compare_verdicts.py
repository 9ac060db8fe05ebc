"""Verdicts and core statistics equal Polygraphy's ``simple`` comparator on tricky data (in-process)."""

from __future__ import annotations

import numpy as np
import pytest

from engine_core.comparator.metrics import compare_tensors, error_distribution
from engine_core.comparator.tolerances import CompareSettings

polygraphy_compare = pytest.importorskip("polygraphy.comparator")


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    ref = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    zeros_ref = np.maximum(ref, 0)  # many exact zeros: the epsilon rule matters
    fp16 = ref.astype(np.float16)
    nan_sub = ref.copy()
    nan_sub[0, 0, 0, 0] = np.nan
    inf_ref = ref.copy()
    inf_ref[1, 2, 3, 4] = np.inf
    tiny = (ref * 1e-7).astype(np.float32)
    ints = rng.integers(-5, 5, size=(4, 16)).astype(np.int8)
    return {
        "noise": (ref + rng.standard_normal(ref.shape).astype(np.float32) * 1e-4, ref),
        "fp16_vs_fp32": (fp16, ref),
        "relu_zeros": (zeros_ref + 1e-6, zeros_ref),
        "nan_in_subject": (nan_sub, ref),
        "inf_both": (inf_ref.copy(), inf_ref),
        "tiny": (tiny * 1.01, tiny),
        "ints": (ints, np.clip(ints + 1, -5, 5).astype(np.int8)),
        "bools": (ref > 0, ref > 0.01),
        "identical": (ref.copy(), ref),
        "scalar": (np.array(1.0005, np.float32), np.array(1.0, np.float32)),
    }


def _polygraphy_verdicts(cases, **kwargs) -> dict[str, tuple[bool, float, float]]:
    from polygraphy.comparator import CompareFunc, IterationResult

    func = CompareFunc.simple(**kwargs)
    subj = IterationResult({k: v[0] for k, v in cases.items()}, runner_name="subject")
    ref = IterationResult({k: v[1] for k, v in cases.items()}, runner_name="reference")
    res = func(subj, ref)
    return {k: (bool(r), float(r.max_absdiff), float(r.max_reldiff)) for k, r in res.items()}


@pytest.mark.parametrize(
    "atol,rtol,stat,inf_equal",
    [
        (1e-5, 1e-5, "elemwise", False),
        (1e-3, 1e-2, "elemwise", False),
        (1e-3, 1e-5, "max", False),
        (5e-4, 1e-1, "mean", False),
        (1e-4, 1e-3, "median", False),
        (1e-4, 1e-3, "quantile", False),
        (1e-5, 1e-5, "elemwise", True),
    ],
)
def test_verdicts_match_polygraphy(atol: float, rtol: float, stat: str, inf_equal: bool) -> None:
    cases = _cases()
    if stat == "quantile":
        del cases["bools"]  # Polygraphy 0.53.6 crashes here (np.quantile on a bool absdiff); we cast to float
    theirs = _polygraphy_verdicts(
        cases, atol=atol, rtol=rtol, check_error_stat=stat, infinities_compare_equal=inf_equal
    )
    settings = CompareSettings.from_specs(
        atol=[str(atol)],
        rtol=[str(rtol)],
        check_error_stat=[stat],
        infinities_compare_equal=inf_equal,
        polygraphy_defaults=True,
    )
    names = list(cases)
    ours = compare_tensors(names, [cases[n][0] for n in names], [cases[n][1] for n in names], settings)
    verdicts = {s.name: s.passed for s in ours}
    assert verdicts == {k: v[0] for k, v in theirs.items()}
    assert any(verdicts.values()) and not all(verdicts.values())
    for s in ours:
        _, max_abs, max_rel = theirs[s.name]
        np.testing.assert_equal(s.max_abs, max_abs)
        np.testing.assert_equal(s.max_rel, max_rel)


def test_per_tensor_tolerances_and_colon_names() -> None:
    settings = CompareSettings.from_specs(atol=["1e-6", "onnx::MatMul_12:0.5"], rtol=["0"])
    a = np.zeros(4, np.float32)
    b = np.full(4, 0.25, np.float32)
    res = compare_tensors(["onnx::MatMul_12", "other"], [a, a], [b, b], settings)
    assert [r.passed for r in res] == [True, False]


def test_extra_statistics() -> None:
    ref = np.linspace(-1, 1, 1000, dtype=np.float32).reshape(10, 100)
    sub = ref.copy()
    sub[3, 7] += 0.5
    sub[0, 0] = np.inf
    (st,) = compare_tensors(["t"], [sub], [ref], CompareSettings())
    assert st.inf == 1 and st.nan == 0 and st.ref_inf == 0
    assert st.argmax_abs == (0, 0)
    assert st.mismatches == 2 and not st.passed
    finite = sub.copy()
    finite[0, 0] = ref[0, 0]
    (st2,) = compare_tensors(["t"], [finite], [ref], CompareSettings())
    assert st2.argmax_abs == (3, 7)
    assert st2.max_abs == pytest.approx(0.5, rel=1e-6)
    assert 0.99 < st2.cosine < 1.0
    assert st2.snr_db > 20
    assert st2.p99_abs is None  # order statistics are computed on demand
    full = error_distribution(st2, finite, ref, CompareSettings())
    assert full.median_abs <= full.p90_abs <= full.p99_abs <= full.max_abs == st2.max_abs
    assert full.std_abs > 0 and full.max_rel_robust is not None


def test_robust_relative_error_ignores_underflow_to_zero() -> None:
    ref = np.array([3e-30, 1.0, 2.0], np.float32)  # fp16 flushes the tiny value to 0
    sub = ref.astype(np.float16).astype(np.float32)
    poly, robust = (
        compare_tensors(["a", "a"], [sub, sub], [ref, ref], CompareSettings.from_specs(atol=["1e-6"], rtol=["1e-3"]))[
            0
        ],
        compare_tensors(
            ["a"], [sub], [ref], CompareSettings.from_specs(atol=["1e-6"], rtol=["1e-3"], rel_mode="robust")
        )[0],
    )
    assert poly.max_rel == pytest.approx(1.0)
    assert robust.max_rel_robust < 1e-3
    assert robust.passed


def test_shape_mismatch_fails_with_reason() -> None:
    (st,) = compare_tensors(["x"], [np.zeros((2, 3))], [np.zeros((3, 2))], CompareSettings())
    assert not st.passed and "shapes differ" in (st.reason or "")
    (st2,) = compare_tensors(["x"], [np.zeros((2, 3))], [np.zeros((3, 2))], CompareSettings(check_shapes=False))
    assert st2.passed
