"""The compare job: batching under a memory budget, streaming order, fail-fast, cancel, locating failures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from onnx import numpy_helper

from engine_core.comparator.engine import TensorSlot, plan_batches
from engine_core.comparator.request import CompareRequest, execute, prepare
from engine_core.jobs import CancelToken, JobEvents
from engine_core.model.synthetic import branchy_model, fp16_copy, small_cnn_model
from engine_core.options import DataOptions, ToleranceOptions


def _perturbed(model, scale: float = 1e-3):
    """An FP32 copy with slightly different weights: a deterministic subject that fails tight tolerances."""
    rng = np.random.default_rng(3)
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size > 1:
            init.CopyFrom(
                numpy_helper.from_array(arr + rng.standard_normal(arr.shape).astype(np.float32) * scale, init.name)
            )
    return model


def _request(model: Path, subject_model: Path, tmp_path: Path, **kw) -> CompareRequest:
    return CompareRequest(
        model=str(model), subject_model=str(subject_model), marks=["all"], workspace=str(tmp_path / "ws"), **kw
    )


def test_tiny_budget_gives_identical_results(save_model, tmp_path: Path) -> None:
    # FP32 on both sides: ORT CPU's fp16 path rewrites casts differently per marked-output set,
    # which would make the *backend* (not the batching) differ between runs.
    model = save_model(small_cnn_model(), "m.onnx")
    sub = save_model(_perturbed(small_cnn_model()), "m_perturbed.onnx")
    whole = execute(_request(model, sub, tmp_path, data=DataOptions(iterations=2)))
    tiny = execute(_request(model, sub, tmp_path, data=DataOptions(iterations=2), mem_budget=1))
    assert whole.summary.batches == 1
    assert tiny.summary.batches == len({r.slot.name for r in tiny.results}) > 3
    a = [r.to_dict() for r in sorted(whole.results, key=lambda r: (r.slot.topo_index, r.iteration))]
    b = [r.to_dict() for r in sorted(tiny.results, key=lambda r: (r.slot.topo_index, r.iteration))]
    assert a == b
    assert not whole.passed and whole.summary.first_failing is not None
    assert whole.summary.first_failing.slot.name == tiny.summary.first_failing.slot.name


def test_plan_batches_respects_budget() -> None:
    slots = [TensorSlot(f"t{i}", f"t{i}", None, i, est_bytes=100) for i in range(10)]
    batches = plan_batches(slots, mem_budget=2 * 300 + 8 * 100)
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert [s.name for b in batches for s in b] == [s.name for s in slots]
    assert len(plan_batches(slots, None)) == 1


def test_results_stream_in_graph_order_and_fail_fast_stops(save_model, tmp_path: Path) -> None:
    model = save_model(branchy_model(), "b.onnx")
    sub = save_model(fp16_copy(branchy_model()), "b16.onnx")
    seen: list[int] = []
    report = execute(_request(model, sub, tmp_path), JobEvents(on_item=lambda r: seen.append(r.slot.topo_index)))
    assert seen == sorted(seen) and len(seen) == len(report.results) > 3
    fast = execute(_request(model, sub, tmp_path, fail_fast=True))
    assert fast.summary.stopped_early
    assert len(fast.results) <= len(report.results)
    assert not fast.results[-1].stats.passed


def test_cancel_stops_the_job(save_model, tmp_path: Path) -> None:
    model = save_model(small_cnn_model(), "m.onnx")
    sub = save_model(fp16_copy(small_cnn_model()), "m16.onnx")
    cancel = CancelToken()
    cancel.cancel()
    report = execute(_request(model, sub, tmp_path), JobEvents(cancel=cancel))
    assert report.summary.cancelled and not report.passed and report.results == []


def test_second_model_matched_by_structure(save_model, tmp_path: Path) -> None:
    model = save_model(small_cnn_model(), "m.onnx")
    sub = save_model(fp16_copy(small_cnn_model()), "m16.onnx")
    prep = prepare(_request(model, sub, tmp_path))
    kinds = {s.match for s in prep.job.slots}
    assert "exact" in kinds or "structure" in kinds
    report = execute(_request(model, sub, tmp_path, tolerances=ToleranceOptions(atol=("1e-1",), rtol=("1e-1",))))
    assert report.results and all(np.isfinite(r.stats.max_abs) for r in report.results)
    doc = report.to_json()
    assert {m["match"] for m in doc["non_exact_matches"]} <= {"structure"}


def test_budget_holds_on_data_dependent_shapes(save_model, tmp_path: Path) -> None:
    from engine_core.comparator.report import json_safe
    from engine_core.model.synthetic import data_dependent_model

    model = save_model(data_dependent_model(width=1024), "dd.onnx")
    subject = data_dependent_model(width=1024)
    for init in subject.graph.initializer:
        if init.name.endswith("/k"):  # a slightly different slope in every stage: failing verdicts
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.001), init.name))
    sub = save_model(subject, "dd_sub.onnx")
    budget = 6 << 20

    def run(mem_budget: int | None):
        job = prepare(_request(model, sub, tmp_path, mem_budget=mem_budget)).job
        job.mem_budget = mem_budget  # None: no batching at all
        for src in (job.reference, job.subject):
            src.open()
        try:
            return job, [json_safe(r.to_dict()) for r in job.results()]  # NaN-safe equality
        finally:
            for src in (job.reference, job.subject):
                src.close()

    whole, whole_results = run(None)
    small, small_results = run(budget)
    assert whole.summary.batches == 1
    assert small.summary.batches > 3
    assert "data-dependent sizes" in small.summary.batch_note
    assert whole.summary.peak_batch_bytes > budget >= small.summary.peak_batch_bytes
    key = lambda d: (d["topo_index"], d["iteration"])  # noqa: E731
    assert sorted(whole_results, key=key) == sorted(small_results, key=key)
    assert whole.summary.failed == small.summary.failed > 0


def test_json_encoding_keeps_content(save_model, tmp_path: Path) -> None:
    import json

    from engine_core.comparator.report import json_safe

    model = save_model(small_cnn_model(), "m.onnx")
    sub = save_model(fp16_copy(small_cnn_model()), "m16.onnx")
    report = execute(_request(model, sub, tmp_path, data=DataOptions(iterations=2)))
    reference = json.loads(json.dumps(json_safe(report.to_json())))  # the plain, recursive encoding
    compact, indented = report.dumps(indent=False), report.dumps()
    assert "\n" not in compact and indented.count("\n") > len(report.results)
    assert json.loads(compact) == json.loads(indented) == reference


def test_order_statistics_on_demand_for_one_tensor(save_model, tmp_path: Path) -> None:
    from engine_core.comparator.detail import tensor_detail

    model = save_model(small_cnn_model(), "m.onnx")
    sub = save_model(_perturbed(small_cnn_model()), "m_perturbed.onnx")
    request = _request(model, sub, tmp_path, data=DataOptions(iterations=2))
    report = execute(request)
    result = next(r for r in report.results if r.iteration == 1 and not r.stats.passed)
    assert result.stats.median_abs is None and result.stats.p99_abs is None
    detail = tensor_detail(request, result)
    full = detail.stats
    assert full.max_abs == result.stats.max_abs and full.mismatches == result.stats.mismatches
    assert full.median_abs <= full.p90_abs <= full.p95_abs <= full.p99_abs <= full.max_abs
    everything = execute(replace(request, order_stats=True))
    same = next(r for r in everything.results if (r.slot.name, r.iteration) == (result.slot.name, 1))
    assert (same.stats.median_abs, same.stats.p99_rel) == (full.median_abs, full.p99_rel)
    h = detail.abs_hist
    assert sum(h.counts) + h.zeros + h.nonfinite == h.total == result.stats.size
    assert h.edges[0] > 0 and h.edges[-1] == pytest.approx(result.stats.max_abs)


@pytest.mark.parametrize("precision", [False, True])
def test_detail_fetcher_prepares_once_and_matches_a_fresh_fetch(
    save_model, tmp_path: Path, monkeypatch, precision
) -> None:
    from engine_core.comparator.detail import DetailFetcher, tensor_detail
    from engine_core.model import weights

    model = save_model(small_cnn_model(), "m.onnx")
    if precision:  # a precision subject: analysed and rewritten once, its session kept
        request = CompareRequest(str(model), subject="ort:fp16", marks=["all"], workspace=str(tmp_path / "ws"))
    else:
        sub = save_model(_perturbed(small_cnn_model()), "m_perturbed.onnx")
        request = _request(model, sub, tmp_path, data=DataOptions(iterations=2))
    results = execute(request).results
    picked = [results[1], results[len(results) // 2], results[-1]]  # the last: a model output
    fresh = [tensor_detail(request, r) for r in picked]
    sessions: list[int] = []
    real_open = weights.open_session
    monkeypatch.setattr(weights, "open_session", lambda *a, **k: sessions.append(1) or real_open(*a, **k))
    with DetailFetcher(request) as fetcher:
        first = fetcher.detail(picked[0])
        opened = len(sessions)
        rest = [fetcher.detail(r) for r in picked[1:]]
        assert fetcher.preparations == 1 and len(sessions) == opened == 2  # one session a side, for every tensor
        assert [first, *rest] == fresh
        fetcher.close()
        assert fetcher.detail(picked[0]) == fresh[0] and fetcher.preparations == 2


def test_detail_fetcher_exposes_only_what_the_compares_budget_allowed(save_model, tmp_path: Path, monkeypatch) -> None:
    from engine_core.comparator.detail import DetailFetcher, tensor_detail
    from engine_core.model import weights

    model = save_model(small_cnn_model(), "m.onnx")
    sub = save_model(_perturbed(small_cnn_model()), "m_perturbed.onnx")
    request = _request(model, sub, tmp_path, mem_budget=1)  # a batch per tensor, as the compare ran
    results = execute(request).results
    picked = [results[1], results[2], results[3]]
    fresh = [tensor_detail(request, r) for r in picked]
    sessions: list[int] = []
    real_open = weights.open_session
    monkeypatch.setattr(weights, "open_session", lambda *a, **k: sessions.append(1) or real_open(*a, **k))
    with DetailFetcher(request) as fetcher:
        assert [fetcher.detail(r) for r in picked] == fresh
        assert fetcher.preparations == 1 and len(sessions) == 6  # a session a side for each batch shown


def test_detail_fetcher_lets_go_of_its_sessions_when_memory_is_low(save_model, tmp_path: Path, monkeypatch) -> None:
    from engine_core.comparator import detail as detail_module

    model = save_model(small_cnn_model(), "m.onnx")
    request = CompareRequest(str(model), subject="ort:fp16", marks=["all"], workspace=str(tmp_path / "ws"))
    results = execute(request).results
    with detail_module.DetailFetcher(request) as fetcher:
        fetcher.detail(results[0])
        monkeypatch.setattr(detail_module, "available_memory", lambda: 1)  # less free than the sides hold
        fetcher.detail(results[1])
        monkeypatch.setattr(detail_module, "available_memory", lambda: None)
        fetcher.detail(results[2])
        fetcher.detail(results[3])
        assert fetcher.preparations == 2  # released after the second fetch, prepared again for the third only
