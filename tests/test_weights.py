"""External weights: one memory map shared by every session, converted copies made once, files linked not copied,
and a one-line refusal when the machine cannot hold a run (issue 15; the > 2 GB model is in test_bigmodel.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from engine_core.backend.ort import OrtRunner
from engine_core.errors import TrtdbgError
from engine_core.model import weights
from engine_core.model.loader import load_model
from engine_core.model.save import save_rewritten
from engine_core.model.synthetic import write_matmul_tower
from engine_core.precision.build import PlanBuilder
from engine_core.precision.plan import PrecisionPlan
from tui.cli.main import main


@pytest.fixture
def tower(tmp_path: Path) -> Path:
    return Path(write_matmul_tower(str(tmp_path / "m"), layers=5, width=512)[0])


def test_sessions_share_one_map_of_the_weights(tower: Path) -> None:
    model = load_model(tower, load_external_data=False)
    w = model.graph.initializer[0]
    a, b = weights.tensor_array(w, tower.parent), weights.tensor_array(w, tower.parent)
    assert np.shares_memory(a, b) and not a.flags.writeable
    x = {"x": np.random.default_rng(0).random((1, 512), dtype=np.float32)}
    with OrtRunner(model, tower) as r1, OrtRunner(model, tower) as r2:
        y1, y2 = r1.infer(x)[r1.output_names()[0]], r2.infer(x)[r2.output_names()[0]]
    import onnxruntime as ort

    so = (
        ort.SessionOptions()
    )  # reference: ONNX Runtime reading the weights itself (pre-packing off, as with shared ones)
    so.add_session_config_entry("session.disable_prepacking", "1")
    full = onnx.load(str(tower)).SerializeToString()
    want = ort.InferenceSession(full, so, providers=["CPUExecutionProvider"]).run(None, x)[0]
    np.testing.assert_array_equal(y1, want)
    np.testing.assert_array_equal(y2, want)


def test_fp16_weights_are_converted_once_and_written_with_links(tower: Path, tmp_path: Path) -> None:
    model = load_model(tower, load_external_data=False)
    builder = PlanBuilder(model, tower, tmp_path / "work")
    plan = PrecisionPlan("fp16", nodes={"/layers.0/MatMul": "fp32"})
    first, _ = builder.build(plan, emulated=True)
    again, _ = builder.build(PrecisionPlan("fp16"), emulated=False)
    held = [t for t in first.graph.initializer if weights.is_memory(t)]
    assert len(held) == 4 and all(t.data_type == onnx.TensorProto.FLOAT16 for t in held)
    for t in held:  # the emulation and the real-type rewrite hold the same FP16 array
        twin = next(u for u in again.graph.initializer if weights.external_info(u) == weights.external_info(t))
        assert weights.tensor_array(t, None) is weights.tensor_array(twin, None)
    beside = tower.with_name("emulated.onnx")  # written next to the weights: the FP32 file is referenced as it is
    save_rewritten(first, beside, tower.parent, tower)
    kept = {
        weights.external_info(t)["location"] for t in onnx.load(str(beside), load_external_data=False).graph.initializer
    }
    assert kept == {"tower.onnx.data", "emulated.onnx.data"}
    assert beside.with_name("emulated.onnx.data").stat().st_size == 4 * 512 * 512 * 2  # only the FP16 copies
    elsewhere = tmp_path / "out" / "emulated.onnx"  # elsewhere: ONNX allows no link, the FP32 weight is copied
    save_rewritten(first, elsewhere, tower.parent, tower)
    assert not elsewhere.with_name("tower.onnx.data").exists()
    for path in (beside, elsewhere):
        onnx.checker.check_model(str(path), full_check=True)
        np.testing.assert_array_equal(
            onnx.numpy_helper.to_array(onnx.load(str(path)).graph.initializer[0]),
            weights.tensor_array(model.graph.initializer[0], tower.parent),
        )


REFUSED = {
    "compare": "compare {m} --subject ort:fp16 --mark all",
    "bisect": "bisect {m} --precision fp16 --workspace {o}/ws",
    "convert": "convert {m} --precision fp16 -o {o}/out.onnx",
    "reduce": "reduce {m} --subject ort:fp16 -o {o}/out.onnx --workspace {o}/ws",
    "sanitize": "surgeon sanitize {m} --fold-constants -o {o}/out.onnx",
    "extract": "surgeon extract {m} --outputs /layers.1/Tanh_output_0 -o {o}/out.onnx",
    "insert": "surgeon insert {m} --op Identity --inputs /layers.1/Tanh_output_0 --outputs i -o {o}/out.onnx",
    "prune": "surgeon prune {m} --nodes /layers.4/Tanh -o {o}/out.onnx --external-data",
    "lint": "check lint {m}",
    "bench": "bench {m} --backend ort:fp16 --runs 1",
    "display-as-trt": "inspect {m} --display-as trt",
    "show-weights": "inspect {m} --show weights",
}


@pytest.mark.parametrize("command", sorted(REFUSED))
def test_every_command_refuses_in_one_line_when_memory_is_short(
    command: str, tower: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command that reads weights or builds sessions makes the same estimate first (weights of the 5 MB model
    + 256 MiB) and, with 1 MiB available, stops in one line naming the model and what to do: nothing is written."""
    monkeypatch.setattr("engine_core.sysinfo.available_memory", lambda: 1 << 20)
    out = tmp_path / "out"
    rc = main(REFUSED[command].format(m=tower, o=out).split())
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert f"of {tower} needs" in err and "more than the 1 MiB of memory available; free memory" in err
    assert not list(out.rglob("*.onnx*"))


def test_estimate_counts_what_each_command_holds(tower: Path) -> None:
    model = load_model(tower, load_external_data=False)
    w, base = weights.weights_bytes(model), 256 << 20
    assert w == 5 * 512 * 512 * 4
    assert weights.estimate_memory(model) == w + base
    assert weights.estimate_memory(model, ["fp16", "int8"]) == w + w // 2 + w * 3 // 2 + base
    assert weights.estimate_memory(model, copies=1, extra=7, activations=3) == 2 * w + 10 + base


def test_reduce_links_weights_and_reads_them_from_external_data_dir(tower: Path, tmp_path: Path) -> None:
    """reduce with the weights in another folder (--external-data-dir) and an FP16 copy with external data as the
    subject model: each candidate refers to the weight files through links (nothing copied into the workspace),
    and the written outputs are ordinary ONNX files."""
    apart = tmp_path / "weights"
    apart.mkdir()
    data = tower.with_name("tower.onnx.data").rename(apart / "tower.onnx.data")
    fp16 = tmp_path / "fp16" / "fp16.onnx"
    moved = ["--external-data-dir", str(apart)]
    tower.with_name("tower.onnx.data").symlink_to(data)  # convert has no --external-data-dir
    assert main(["convert", str(tower), "--precision", "fp16", "-o", str(fp16)]) == 0
    tower.with_name("tower.onnx.data").unlink()
    out, ws = tmp_path / "out" / "red.onnx", tmp_path / "ws"
    args = ["reduce", str(tower), "-o", str(out), "--workspace", str(ws), "--quiet", *moved]
    assert main([*args, "--subject-model", str(fp16), "--atol", "1e-2", "--rtol", "1e-2"]) == 0
    work = ws / "reduce"
    links = sorted(p for p in work.iterdir() if p.is_symlink())
    assert {p.resolve() for p in links} == {data.resolve(), fp16.with_name("fp16.onnx.data").resolve()}
    assert not any(p.suffix == ".data" and not p.is_symlink() and p.stat().st_size > 1 << 20 for p in work.iterdir())
    for written in (out, out.with_name("red.subject.onnx")):
        onnx.checker.check_model(str(written), full_check=True)


def test_reduce_with_a_precision_subject_reads_the_weights_from_external_data_dir(
    tower: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """reduce --subject ort:fp16 with the weights in another folder: the judge and the subject's coverage read them
    there (the runner factory takes the folder), and the coverage is the one of the weights in place."""
    from engine_core.precision.runner import PrecisionRunner
    from engine_core.runners import make_runner

    def coverage(runner: object) -> dict:
        assert isinstance(runner, PrecisionRunner)
        return runner.coverage.to_json()

    model = load_model(tower, load_external_data=False)
    in_place = coverage(make_runner("ort:fp16", model, tower))
    apart = tmp_path / "weights"
    apart.mkdir()
    tower.with_name("tower.onnx.data").rename(apart / "tower.onnx.data")
    moved = coverage(make_runner("ort:fp16", model, tower, data_dir=apart))
    assert moved == in_place and moved["nodes_low"] > 0
    with pytest.raises(TrtdbgError, match="TensorRT reads external data beside the model file only"):
        make_runner("trt:fp16", model, tower, data_dir=apart)
    out = tmp_path / "out" / "red.onnx"
    args = ["reduce", str(tower), "-o", str(out), "--workspace", str(tmp_path / "ws"), "--subject", "ort:fp16"]
    assert main([*args, "--external-data-dir", str(apart), "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["precision_coverage"] == in_place
    assert doc["nodes"] and doc["written"][0] == str(out)
    onnx.checker.check_model(str(out), full_check=True)


def test_int8_model_holds_the_weights_the_quantizer_kept_through_the_source_map(tower: Path, tmp_path: Path) -> None:
    """Calibration runs on the shared weights, and the FP32 weights the quantizer writes back unchanged (Q/DQ after
    them) are the original memory map, not a second copy; a weight it changed would keep its own values."""
    model = load_model(tower, load_external_data=False)
    builder = PlanBuilder(model, tower, tmp_path / "work")
    rng = np.random.default_rng(0)
    builder.calibrate([{"x": rng.random((1, 512), dtype=np.float32)} for _ in range(2)])
    assert builder.quantizer is not None and len(builder.quantizer.ranges()) >= 10
    q, res = builder.build(PrecisionPlan("int8"), emulated=False)
    assert len(res.int8) == 5
    originals = {t.name: t for t in model.graph.initializer}
    held = [t for t in q.graph.initializer if weights.is_memory(t) and t.name in originals]
    assert len(held) == 5
    for t in held:
        assert np.shares_memory(weights.tensor_array(t, None), weights.tensor_array(originals[t.name], tower.parent))
    assert any(n.op_type == "DequantizeLinear" for n in q.graph.node)


def test_candidates_written_elsewhere_share_one_copy_of_the_weights(tower: Path, tmp_path: Path) -> None:
    """reuse="copy" (bisect's and reduce's --check candidates, the quantizer's input): the data file is copied
    beside the candidates once and every candidate refers to it; a changed source is copied again."""
    model = load_model(tower, load_external_data=False)
    builder = PlanBuilder(model, tower, tmp_path / "work")
    first, _ = builder.build(PrecisionPlan("fp16", nodes={"/layers.0/MatMul": "fp32"}), emulated=False)
    second, _ = builder.build(PrecisionPlan("fp16", nodes={"/layers.1/MatMul": "fp32"}), emulated=False)
    out = tmp_path / "cands"
    save_rewritten(first, out / "a.onnx", tower.parent, tower, reuse="copy")
    shared = out / "shared.tower.onnx.data"
    inode = shared.stat().st_ino
    save_rewritten(second, out / "b.onnx", tower.parent, tower, reuse="copy")
    assert shared.stat().st_ino == inode  # not copied again
    for name, kept in (("a.onnx", "/layers.0/weight"), ("b.onnx", "/layers.1/weight")):
        onnx.checker.check_model(str(out / name), full_check=True)
        loaded = {t.name: t for t in onnx.load(str(out / name), load_external_data=False).graph.initializer}
        assert weights.external_info(loaded[kept])["location"] == "shared.tower.onnx.data"
        assert (out / name).with_name(name + ".data").stat().st_size < shared.stat().st_size  # FP16 copies only
    data = tower.with_name("tower.onnx.data")
    os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 10**9))
    save_rewritten(first, out / "a.onnx", tower.parent, tower, reuse="copy")
    assert shared.stat().st_ino != inode and shared.stat().st_mtime_ns == data.stat().st_mtime_ns


def test_memory_references_go_inline_for_a_non_cpu_provider() -> None:
    """ONNX Runtime's CUDA provider reads external initializers from their files itself, so a memory reference
    (an FP16/BF16 copy held by trtdbg) is stored inline in the model given to it, with the same values."""
    arr = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    w = weights.memory_tensor("w", "test-inline-w", lambda: arr, onnx.TensorProto.FLOAT)
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
        [w],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=10)
    inlined = weights.inline_memory(model)
    (t,) = inlined.graph.initializer
    assert not weights.is_external(t) and weights.is_memory(model.graph.initializer[0])
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(t), arr)
    x = {"x": np.ones((1, 3), np.float32)}
    y_ref = weights.open_session(model, None).run(None, x)[0]
    np.testing.assert_array_equal(weights.open_session(inlined, None).run(None, x)[0], y_ref)
    bare = onnx.helper.make_model(onnx.helper.make_graph([], "e", [], []))
    assert weights.inline_memory(bare) is bare
