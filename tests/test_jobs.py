"""One job protocol: compare, bisect, reduce, bench and debug build report through JobEvents (progress, warnings
once, items) and stop on its cancel token — reduce and bisect included, from the engine, not from a UI loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from engine_core.benchmark import BenchOptions, run_bench
from engine_core.jobs import Cancelled, CancelToken, JobEvents
from engine_core.model.synthetic import chain_model, fp16_copy
from engine_core.options import DataOptions, ToleranceOptions
from engine_core.precision.bisect import BisectOptions, BisectSession
from engine_core.surgeon.reduce import CompareJudge, Reducer
from tests.precision_models import planted_chain


def test_warnings_are_reported_once_in_order() -> None:
    seen: list[str] = []
    events = JobEvents(on_warning=seen.append)
    for w in ("a", "b", "a"):
        events.warn(w)
    assert seen == events.warnings == ["a", "b"]


def test_bisect_session_starts_only_on_start_and_cancels_between_steps(tmp_path: Path) -> None:
    path = tmp_path / "chain.onnx"
    onnx.save(planted_chain(24, 9), path)
    ws = tmp_path / "ws"
    cancel = CancelToken()
    items: list[dict] = []

    def on_item(record: dict) -> None:
        items.append(record)
        if len(items) == 2:
            cancel.cancel()

    events = JobEvents(on_item=on_item, cancel=cancel)
    session = BisectSession(BisectOptions(model=str(path), workspace=str(ws)), events=events)
    assert not ws.exists()  # construction loads and runs nothing
    result = session.start().run()
    assert len(items) == 2 and not result["finished"] and len(result["steps"]) == 2
    resumed = BisectSession.resume(str(path), str(ws)).start()  # every step was saved
    assert len(resumed.steps()) == 2
    assert resumed.run()["culprits"] == ["/culprit/Add"]


def test_reduce_is_cancelled_from_the_engine(tmp_path: Path) -> None:
    model = chain_model(6, shape=(1, 8))
    subject = fp16_copy(model, rename=False)
    feeds = [{"input": np.full((1, 8), 70000.0, np.float32)}]
    cancel = CancelToken()
    judged: list[object] = []

    def on_item(step: object) -> None:
        judged.append(step)
        cancel.cancel()

    judge = CompareJudge(tmp_path, ToleranceOptions(), subject_model=subject, subject_model_path="fp16.onnx")
    reducer = Reducer(model, None, feeds, judge, events=JobEvents(on_item=on_item, cancel=cancel))
    with pytest.raises(Cancelled, match="reduce cancelled; nothing written") as err:
        reducer.run()
    assert err.value.exit_code == 130 and len(judged) == 1


def test_bench_reports_progress_and_cancels(save_model) -> None:
    path = save_model(chain_model(3))
    progress: list[tuple[int, int, str]] = []
    events = JobEvents(on_progress=lambda p: progress.append((p.done, p.total, p.unit)))
    run_bench(path, BenchOptions(warmup=1, runs=3), events)
    assert progress[0] == (1, 1, "warm-up runs") and progress[-1] == (3, 3, "timed runs")
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        run_bench(path, BenchOptions(warmup=1, runs=3), JobEvents(cancel=cancel))


def test_bench_reports_data_warnings(save_model, tmp_path: Path) -> None:
    from engine_core.data.store import save_inputs

    path = save_model(chain_model(3))
    x = np.zeros((1, 64), np.float32)
    x[0, 0] = np.inf
    save_inputs(tmp_path / "inf.json", [{"input": x}])
    events = JobEvents()
    run_bench(path, BenchOptions(warmup=0, runs=1, data=DataOptions(load_inputs=(str(tmp_path / "inf.json"),))), events)
    assert any("Inf" in w for w in events.warnings)
