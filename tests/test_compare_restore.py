"""The workspace's last compare, read back for the same unchanged model (the app restores it on open)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine_core.comparator.request import CompareRequest, execute
from engine_core.comparator.restore import load_last_compare
from engine_core.errors import TrtdbgError
from engine_core.model.synthetic import fp16_copy, small_cnn_model
from engine_core.options import DataOptions
from engine_core.workspace import Workspace
from tests.conftest import shared_model


def _run(model: Path, subject: Path, ws: Path, **kw):
    return execute(CompareRequest(model=str(model), subject_model=str(subject), marks=["all"], workspace=str(ws), **kw))


def test_restores_the_failing_tensors_summary_and_firsts(save_model, tmp_path: Path) -> None:
    model = save_model(small_cnn_model(), "m.onnx")
    sub = save_model(fp16_copy(small_cnn_model()), "m16.onnx")
    report = _run(model, sub, tmp_path / "ws", data=DataOptions(iterations=2))
    assert not report.passed
    got = load_last_compare(Workspace(tmp_path / "ws"), str(model))
    assert got is not None and "failing tensors only" in got.kept_note
    r2 = got.report
    assert (r2.reference, r2.subject, r2.model) == (report.reference, report.subject, report.model)
    assert (r2.summary.compared, r2.summary.failed) == (report.summary.compared, report.summary.failed)
    failing = [r for r in report.results if not r.stats.passed]
    assert [(r.slot.name, r.iteration) for r in r2.results] == [(r.slot.name, r.iteration) for r in failing]
    for a, b in zip(r2.results, failing):
        assert (a.slot.name, a.slot.subject_name, a.slot.node, a.slot.topo_index) == (
            b.slot.name,
            b.slot.subject_name,
            b.slot.node,
            b.slot.topo_index,
        )
        for f in ("max_abs", "max_rel", "mismatches", "cosine", "shape", "argmax_abs", "dtype", "passed"):
            x, y = getattr(a.stats, f), getattr(b.stats, f)
            assert x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y)), f
    ff, ff2 = report.summary.first_failing, r2.summary.first_failing
    assert (ff.slot.name, ff.iteration) == (ff2.slot.name, ff2.iteration)


def test_other_model_changed_model_and_damaged_file(save_model, tmp_path: Path) -> None:
    model = save_model(small_cnn_model(), "m.onnx")
    sub = save_model(fp16_copy(small_cnn_model()), "m16.onnx")
    ws = Workspace(tmp_path / "ws")
    assert load_last_compare(ws, str(model)) is None  # nothing saved yet
    _run(model, sub, tmp_path / "ws")
    assert load_last_compare(ws, str(sub)) is None  # the saved compare is of another model
    os.utime(model, ns=(0, os.stat(model).st_mtime_ns + 10**9))  # the model file changed since
    with pytest.raises(TrtdbgError, match="predates"):
        load_last_compare(ws, str(model))
    ws.path("last_compare.json").write_text("{not json")
    with pytest.raises(TrtdbgError, match="cannot read"):
        load_last_compare(ws, str(model))


def test_real_model_round_trip(tmp_path: Path) -> None:
    model = shared_model("magika_v3_3.onnx")
    report = execute(CompareRequest(model=str(model), subject="ort:fp16", marks=["all"], workspace=str(tmp_path)))
    got = load_last_compare(Workspace(tmp_path), str(model))
    assert got is not None and got.report.summary.compared == report.summary.compared
    assert len(got.report.results) == min(1000, report.summary.failed)


def test_no_saved_compare_is_answered_without_importing_the_compare_engine(tmp_path: Path) -> None:
    """The app asks while it answers its first keys: importing the engine then would hold the GIL ~50 ms."""
    code = (
        "import sys; from engine_core.comparator.restore import load_last_compare; "
        "from engine_core.workspace import Workspace; "
        "print(load_last_compare(Workspace(sys.argv[1]), sys.argv[2]), 'engine_core.comparator.engine' in sys.modules)"
    )
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "ws"), str(tmp_path / "m.onnx")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert out.split() == ["None", "False"]
