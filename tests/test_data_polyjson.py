"""Polygraphy JSON interoperability (both directions, file and directory forms), fallbacks and errors."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from polygraphy.comparator import RunResults
from polygraphy.comparator.data_loader import StreamingDataLoader
from polygraphy.comparator.struct import IterationResult
from polygraphy.json import load_json, save_json
from polygraphy.json.serde import IterationWriter

from engine_core.data.store import SavedOutputs, load_inputs, load_outputs, save_inputs, save_outputs
from engine_core.errors import TrtdbgError


def _arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "/conv/Conv_output_0": rng.standard_normal((1, 3, 4, 4)).astype(np.float32),
        "half": rng.standard_normal((2, 5)).astype(np.float16),
        "ids": rng.integers(-5, 5, (2, 7), dtype=np.int64),
        "bytes": rng.integers(0, 255, (9,), dtype=np.uint8),
        "mask": rng.random((3, 3)) > 0.5,
        "scalar": np.array(seed + 0.5, dtype=np.float64),
        "empty": np.zeros((0, 3), dtype=np.int32),
        "fortran": np.asfortranarray(rng.standard_normal((3, 4))),
        "strided": rng.standard_normal((6, 6)).astype(np.float32)[::2, 1::2],
    }


def _assert_same(a: dict[str, np.ndarray], b: dict) -> None:
    assert list(a) == list(b)
    for name, value in a.items():
        got = np.asarray(b[name])
        assert got.dtype == value.dtype, name
        assert got.shape == value.shape, name
        assert np.array_equal(got, value), name


FEEDS = [_arrays(0), _arrays(1)]


# ---- ours -> Polygraphy


def test_our_inputs_file_loads_in_polygraphy(tmp_path: Path) -> None:
    path = tmp_path / "inputs.json"
    save_inputs(path, FEEDS)
    theirs = load_json(str(path))
    assert isinstance(theirs, list) and len(theirs) == 2
    for ours, feed in zip(FEEDS, theirs):
        _assert_same(ours, feed)


def test_our_inputs_directory_loads_in_polygraphy(tmp_path: Path) -> None:
    path = tmp_path / "inputs"
    save_inputs(path, FEEDS)
    assert sorted(os.listdir(path)) == ["0000000000.json", "0000000001.json"]
    theirs = list(StreamingDataLoader(str(path)))
    assert len(theirs) == 2
    for ours, feed in zip(FEEDS, theirs):
        _assert_same(ours, feed)


def test_our_outputs_file_and_directory_load_in_polygraphy(tmp_path: Path) -> None:
    save_outputs(tmp_path / "out.json", "trtdbg-onnxrt", FEEDS)
    results = RunResults.load(str(tmp_path / "out.json"))
    assert list(results.keys()) == ["trtdbg-onnxrt"]
    its = results["trtdbg-onnxrt"]
    assert len(its) == 2 and its[0].runner_name == "trtdbg-onnxrt"
    for ours, it in zip(FEEDS, its):
        _assert_same(ours, dict(it.items()))

    save_outputs(tmp_path / "outdir", "trtdbg-onnxrt", FEEDS)
    streamed = RunResults.concat(RunResults.load_streaming(str(tmp_path / "outdir")))
    for ours, it in zip(FEEDS, streamed["trtdbg-onnxrt"]):
        _assert_same(ours, dict(it.items()))


# ---- Polygraphy -> ours


def test_polygraphy_inputs_file_single_dict_and_directory_load_in_ours(tmp_path: Path) -> None:
    save_json(FEEDS, str(tmp_path / "list.json"))
    save_json(FEEDS[1], str(tmp_path / "one.json"))
    with IterationWriter(str(tmp_path / "dir")) as writer:
        for feed in FEEDS:
            writer.append(feed)
    loaded = load_inputs([str(tmp_path / "list.json"), str(tmp_path / "one.json"), str(tmp_path / "dir")])
    assert len(loaded) == 5
    for ours, feed in zip(FEEDS + [FEEDS[1]] + FEEDS, loaded):
        _assert_same(ours, feed)
    (tmp_path / "list.json").rename(tmp_path / "noext")  # an extensionless file is read as JSON, like Polygraphy
    assert len(load_inputs([str(tmp_path / "noext")])) == 2


def test_polygraphy_outputs_load_in_ours(tmp_path: Path) -> None:
    results = RunResults()
    results.append(("onnxrt-runner-N0", [IterationResult(f, 0.01, "onnxrt-runner-N0") for f in FEEDS]))
    results.append(("trt-runner-N0", [IterationResult(FEEDS[0], 0.02, "trt-runner-N0")]))
    results.save(str(tmp_path / "out.json"))
    saved = load_outputs(str(tmp_path / "out.json"))
    assert isinstance(saved, SavedOutputs)
    assert saved.runner_name == "onnxrt-runner-N0" and saved.other_runners == ["trt-runner-N0"]
    assert len(saved.iterations) == 2
    for ours, it in zip(FEEDS, saved.iterations):
        _assert_same(ours, it)

    with IterationWriter(str(tmp_path / "outdir")) as writer:
        for single in results.split():
            writer.append(single)
    from_dir = load_outputs(str(tmp_path / "outdir"))
    assert from_dir.runner_name == "onnxrt-runner-N0" and from_dir.other_runners == ["trt-runner-N0"]
    for ours, it in zip(FEEDS, from_dir.iterations):
        _assert_same(ours, it)


def test_output_order_is_kept(tmp_path: Path) -> None:
    outs = {name: np.full((2,), i, dtype=np.float32) for i, name in enumerate(["z", "a", "m", "/b/0", "c"])}
    save_outputs(tmp_path / "o.json", "r", [outs])
    assert list(load_outputs(tmp_path / "o.json").iterations[0]) == ["z", "a", "m", "/b/0", "c"]


# ---- read fallbacks


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def test_legacy_tag_latin1_and_npz_payloads(tmp_path: Path) -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    npz_buf = io.BytesIO()
    np.savez(npz_buf, first=a * 2, second=a)
    feed = {
        "legacy": {
            "array": base64.b64encode(_npy(a)).decode(),
            "__polygraphy_encoded_ndarray": "polygraphy_serialized_json_type",
        },
        "latin1": {"array": _npy(a + 1).decode("latin-1"), "polygraphy_class": "ndarray"},
        "npz": {"array": base64.b64encode(npz_buf.getvalue()).decode(), "polygraphy_class": "ndarray"},
        "lazy": {
            "values": {"array": base64.b64encode(_npy(a + 3)).decode(), "polygraphy_class": "ndarray"},
            "polygraphy_class": "LazyNumpyArray",
        },
    }
    (tmp_path / "old.json").write_text(json.dumps([feed]))
    (loaded,) = load_inputs([str(tmp_path / "old.json")])
    assert np.array_equal(loaded["legacy"], a)
    assert np.array_equal(loaded["latin1"], a + 1)
    assert np.array_equal(loaded["npz"], a * 2)
    assert np.array_equal(loaded["lazy"], a + 3)
    assert load_json(str(tmp_path / "old.json"))[0]["latin1"].sum() == (a + 1).sum()  # Polygraphy agrees


def test_loaded_arrays_are_writable(tmp_path: Path) -> None:
    save_inputs(tmp_path / "i.json", FEEDS)
    loaded = load_inputs([str(tmp_path / "i.json")])[0]
    assert all(v.flags.writeable for v in loaded.values())
    assert loaded["fortran"].flags.f_contiguous or loaded["fortran"].flags.c_contiguous


def test_20k_array_outputs_load_fast_without_np_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outs = {f"/layer{i}/Relu_output_0": np.full((1, 64), i, dtype=np.float32) for i in range(20_000)}
    save_outputs(tmp_path / "big.json", "r", [outs])

    def no_np_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("np.load per array is 20x slower; the .npy fast path was not used")

    monkeypatch.setattr(np, "load", no_np_load)
    start = time.perf_counter()
    saved = load_outputs(tmp_path / "big.json")
    elapsed = time.perf_counter() - start
    monkeypatch.undo()
    assert len(saved.iterations[0]) == 20_000
    assert saved.iterations[0]["/layer19999/Relu_output_0"][0, 0] == 19999
    print(f"20k-array load: {elapsed:.2f} s")  # speed lives in bench/; the np.load guard checks the fast path


# ---- errors


def _error(func, *args) -> str:
    with pytest.raises(TrtdbgError) as info:
        func(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_read_errors_name_the_file(tmp_path: Path) -> None:
    save_inputs(tmp_path / "good.json", FEEDS)
    text = (tmp_path / "good.json").read_text()
    (tmp_path / "trunc.json").write_text(text[: len(text) // 2])
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "weird.txt").write_text("{}")
    bad = json.loads(text)
    bad[0]["ids"]["array"] = base64.b64encode(b"not an npy file at all").decode()
    (tmp_path / "badpayload.json").write_text(json.dumps(bad))
    short = json.loads(text)
    short[0]["ids"]["array"] = base64.b64encode(_npy(FEEDS[0]["ids"])[:-8]).decode()
    (tmp_path / "shortdata.json").write_text(json.dumps(short))
    (tmp_path / "emptydir").mkdir()

    assert "missing.json: file not found" in _error(load_inputs, [str(tmp_path / "missing.json")])
    assert "trunc.json: not valid JSON" in _error(load_inputs, [str(tmp_path / "trunc.json")])
    assert "empty.json: file is empty" in _error(load_inputs, [str(tmp_path / "empty.json")])
    assert "unsupported file type '.txt'" in _error(load_inputs, [str(tmp_path / "weird.txt")])
    assert "badpayload.json: iteration 0, tensor 'ids'" in _error(load_inputs, [str(tmp_path / "badpayload.json")])
    assert (
        "shortdata.json: iteration 0, tensor 'ids': the .npy header declares int64[2, 7] (112 bytes) but only 104"
        in _error(load_inputs, [str(tmp_path / "shortdata.json")])
    )
    assert "no .json iteration files" in _error(load_inputs, [str(tmp_path / "emptydir")])
    assert "looks like saved inputs" in _error(load_outputs, str(tmp_path / "good.json"))


def test_outputs_file_given_as_inputs_is_explained(tmp_path: Path) -> None:
    save_outputs(tmp_path / "out.json", "r", FEEDS[:1])
    assert "looks like saved outputs" in _error(load_inputs, [str(tmp_path / "out.json")])


def test_directory_writes_need_a_new_or_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("x")
    (tmp_path / "afile").write_text("x")
    assert "not empty" in _error(save_inputs, tmp_path / "used", FEEDS)
    assert "a file exists there" in _error(save_outputs, tmp_path / "afile", "r", FEEDS)
    assert (tmp_path / "used" / "keep.txt").read_text() == "x"
    (tmp_path / "fresh").mkdir()
    save_inputs(tmp_path / "fresh", FEEDS)
    assert len(load_inputs([str(tmp_path / "fresh")])) == 2


def test_polygraphy_cli_reads_our_inputs_and_outputs_and_we_read_its_outputs(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "y"], ["prod"]), helper.make_node("Relu", ["prod"], ["out"])],
        "tiny",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "tiny.onnx"))
    rng = np.random.default_rng(3)
    feeds = [
        {"x": rng.standard_normal((2, 3)).astype(np.float32), "y": rng.standard_normal((2, 3)).astype(np.float32)}
        for _ in range(2)
    ]
    session = ort.InferenceSession(str(tmp_path / "tiny.onnx"), providers=["CPUExecutionProvider"])
    expected = [dict(zip(["out"], session.run(None, f))) for f in feeds]
    save_inputs(tmp_path / "ours_in.json", feeds)
    save_outputs(tmp_path / "ours_out.json", "trtdbg", expected)

    polygraphy = Path(sys.executable).with_name("polygraphy")
    cmd = [
        str(polygraphy),
        "run",
        str(tmp_path / "tiny.onnx"),
        "--onnxrt",
        "--load-inputs",
        str(tmp_path / "ours_in.json"),
        "--load-outputs",
        str(tmp_path / "ours_out.json"),
        "--save-outputs",
        str(tmp_path / "theirs.json"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "PASSED" in proc.stdout
    theirs = load_outputs(tmp_path / "theirs.json")
    assert theirs.runner_name.startswith("onnxrt-runner")
    assert len(theirs.iterations) == 2
    for want, got in zip(expected, theirs.iterations):
        _assert_same(want, got)
