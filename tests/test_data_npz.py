"""Inputs/outputs in .npz: both layouts, round trips, plain numpy archives, errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine_core.data.npz import read_npz
from engine_core.data.store import load_inputs, load_outputs, save_inputs, save_outputs
from engine_core.errors import TrtdbgError


def _feed(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "/encoder/layer.0/Add_output_0": rng.standard_normal((2, 4)).astype(np.float32),
        "ids": rng.integers(0, 100, (1, 5), dtype=np.int64),
        "flag": np.array(True),
    }


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for k in a:
        assert b[k].dtype == a[k].dtype and b[k].shape == a[k].shape and np.array_equal(a[k], b[k]), k


def test_single_iteration_uses_plain_names(tmp_path: Path) -> None:
    save_inputs(tmp_path / "one.npz", [_feed(0)])
    with np.load(tmp_path / "one.npz", allow_pickle=False) as f:  # readable by plain numpy
        assert f.files == list(_feed(0))
        assert np.array_equal(f["ids"], _feed(0)["ids"])
    (loaded,) = load_inputs([str(tmp_path / "one.npz")])
    _same(_feed(0), loaded)


def test_several_iterations_use_index_prefix(tmp_path: Path) -> None:
    feeds = [_feed(i) for i in range(3)]
    save_inputs(tmp_path / "many.npz", feeds)
    with np.load(tmp_path / "many.npz", allow_pickle=False) as f:
        assert f.files[:3] == ["0//encoder/layer.0/Add_output_0", "0/ids", "0/flag"]
        assert len(f.files) == 9
    for want, got in zip(feeds, load_inputs([str(tmp_path / "many.npz")])):
        _same(want, got)


def test_single_iteration_with_index_like_names_round_trips(tmp_path: Path) -> None:
    feed = {"0/a": np.ones(2, np.float32), "1/b": np.zeros(3, np.float32)}
    save_inputs(tmp_path / "tricky.npz", [feed])
    (loaded,) = load_inputs([str(tmp_path / "tricky.npz")])
    _same(feed, loaded)


def test_outputs_keep_runner_name_and_order(tmp_path: Path) -> None:
    its = [{"z": np.ones(1, np.float32), "a": np.zeros(2, np.float16)} for _ in range(2)]
    save_outputs(tmp_path / "out.npz", "onnxrt", its)
    saved = load_outputs(tmp_path / "out.npz")
    assert saved.runner_name == "onnxrt" and saved.other_runners == []
    assert len(saved.iterations) == 2
    for want, got in zip(its, saved.iterations):
        _same(want, got)


def test_numpy_written_archives_load(tmp_path: Path) -> None:
    a, b = np.arange(4.0), np.arange(6, dtype=np.int32).reshape(2, 3)
    np.savez(tmp_path / "plain.npz", x=a, y=b)
    np.savez_compressed(tmp_path / "multi.npz", **{"0/x": a, "1/x": a + 1})
    (plain,) = load_inputs([str(tmp_path / "plain.npz")])
    _same({"x": a, "y": b}, plain)
    multi = load_inputs([str(tmp_path / "multi.npz")])
    assert [m["x"][0] for m in multi] == [0.0, 1.0]
    saved = load_outputs(tmp_path / "plain.npz")
    assert saved.runner_name == "plain"  # no stored name: the file stem


def test_errors(tmp_path: Path) -> None:
    save_inputs(tmp_path / "good.npz", [_feed(0), _feed(1)])
    data = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    np.savez(tmp_path / "gap.npz", **{"0/x": np.ones(1), "2/x": np.ones(1)})
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object))
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    cases = {
        "missing.npz": "file not found",
        "trunc.npz": "not a valid .npz archive",
        "gap.npz": "skip iteration 1",
        "objects.npz": "key 'x'",
        "empty.npz": "holds no tensors",
    }
    for name, expected in cases.items():
        with pytest.raises(TrtdbgError) as info:
            read_npz(tmp_path / name)
        assert name in str(info.value) and expected in str(info.value), str(info.value)
    with pytest.raises(TrtdbgError, match="object arrays need pickle"):
        save_inputs(tmp_path / "o.npz", [{"x": np.array([None], dtype=object)}])
    with pytest.raises(TrtdbgError, match="unsupported file type '.npy'"):
        save_inputs(tmp_path / "o.npy", [_feed(0)])
