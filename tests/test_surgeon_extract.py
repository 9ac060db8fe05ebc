"""surgeon extract: the cut computes exactly what the original computes there, on generated and real models."""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from engine_core.errors import TrtdbgError
from engine_core.model.synthetic import branchy_model, small_cnn_model
from engine_core.surgeon.extract import TensorSpec, extract, parse_tensor_specs
from engine_core.surgeon.graph import top_level_tensors
from tests.conftest import SHARED_MODELS, run_cli, shared_model, surgeon_ok


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
    """Run ``model`` in ORT (no optimizations) returning any top-level tensors."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in outputs:
        if name not in have:
            m.graph.output.add().name = name
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return dict(zip(outputs, sess.run(outputs, feed)))


def test_extract_middle_of_small_cnn_matches_original() -> None:
    model = small_cnn_model()
    before = model.SerializeToString()
    known = top_level_tensors(model)
    result = extract(
        model,
        parse_tensor_specs(["/relu1/Relu_output_0"], known, "--inputs", "m", with_shape=True),
        parse_tensor_specs(["/Add_output_0"], known, "--outputs", "m", with_shape=False),
    )
    assert model.SerializeToString() == before  # pure: the input model is untouched
    new = result.model
    assert sorted(n.name for n in new.graph.node) == ["/Add", "/conv2/Conv", "/relu2/Relu", "/skip/Conv"]
    assert [vi.name for vi in new.graph.input] == ["/relu1/Relu_output_0"]
    assert result.changes.nodes_before == 12 and result.changes.nodes_after == 4
    assert "/relu1/Relu_output_0 [float32, (1, 8, 32, 32)]" in result.changes.inputs
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    ref = _run(model, {"input": x}, ["/relu1/Relu_output_0", "/Add_output_0"])
    got = _run(new, {"/relu1/Relu_output_0": ref["/relu1/Relu_output_0"]}, ["/Add_output_0"])
    np.testing.assert_array_equal(got["/Add_output_0"], ref["/Add_output_0"])


def test_extract_without_inputs_cuts_at_needed_graph_inputs() -> None:
    model = branchy_model()
    result = extract(model, None, [TensorSpec("attn")])
    assert {vi.name for vi in result.model.graph.input} == {"x"}
    assert "/out/MatMul" not in {n.name for n in result.model.graph.node}
    assert len(result.model.graph.node) == 12


def test_spec_parsing_with_colons_shapes_and_dtypes() -> None:
    known = {"onnx::Mul_5", "a", "b"}
    specs = parse_tensor_specs(
        ["onnx::Mul_5:1x3:float16,a:[1,n,?]:auto", "b:auto"], known, "--inputs", "m", with_shape=True
    )
    assert specs[0] == TensorSpec("onnx::Mul_5", (1, 3), np.dtype("float16"))
    assert specs[1] == TensorSpec("a", (1, "n", None), None)
    assert specs[2] == TensorSpec("b", None, None)
    assert parse_tensor_specs(["a:int64"], known, "--outputs", "m", with_shape=False)[0].dtype == np.int64
    with pytest.raises(TrtdbgError, match="tensor 'onnx::Mul_6' does not exist.*did you mean 'onnx::Mul_5'"):
        parse_tensor_specs(["onnx::Mul_6:1x3"], known, "--inputs", "m", with_shape=True)
    with pytest.raises(TrtdbgError, match="unknown dtype 'float99'"):
        parse_tensor_specs(["a:1x3:float99"], known, "--inputs", "m", with_shape=True)


def test_bad_specs_are_one_line_errors() -> None:
    model = small_cnn_model()
    out = [TensorSpec("/Add_output_0")]
    cases = [
        ([TensorSpec("/relu1/Relu_output_0", (1, 3, 5, 5))], "shape \\[1, 3, 5, 5\\] .* contradicts the graph"),
        ([TensorSpec("/relu1/Relu_output_0", None, np.dtype("float16"))], "dtype float16 .* contradicts the graph"),
        ([], "need graph input\\(s\\) input, which --inputs does not list"),
        ([TensorSpec("nope")], "tensor 'nope' does not exist"),
    ]
    for inputs, pattern in cases:
        with pytest.raises(TrtdbgError, match=pattern) as info:
            extract(model, inputs, out)
        assert "\n" not in str(info.value)
    with pytest.raises(TrtdbgError, match="is an initializer"):
        extract(model, None, [TensorSpec("fc.weight")])


def test_input_made_by_a_node_the_cut_needs_is_an_error() -> None:
    nodes = [
        helper.make_node("Split", ["x"], ["a", "b"], "split", axis=0, num_outputs=2),
        helper.make_node("Add", ["a", "b"], ["y"], "add"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    with pytest.raises(TrtdbgError, match="'a' is also computed inside the cut: node 'split'"):
        extract(model, [TensorSpec("a")], [TensorSpec("y")])
    assert [n.name for n in extract(model, [TensorSpec("a"), TensorSpec("b")], [TensorSpec("y")]).model.graph.node] == [
        "add"
    ]


def test_unknown_metadata_is_measured_with_onnx_runtime() -> None:
    """A com.microsoft op defeats ONNX shape inference; extract measures the cut's metadata with one ORT run."""
    nodes = [
        helper.make_node("Gelu", ["x"], ["g"], "gelu", domain="com.microsoft"),
        helper.make_node("Relu", ["g"], ["r"], "relu"),
        helper.make_node("Neg", ["r"], ["y"], "neg"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)], ir_version=8
    )
    result = extract(model, [TensorSpec("g")], [TensorSpec("r")])
    assert any("measured with ONNX Runtime" in n for n in result.changes.notes)
    assert result.changes.inputs == ("g [float32, (2, 5)]",)
    assert result.changes.outputs == ("r [float32, (2, 5)]",)


def _chain_cut(model: onnx.ModelProto) -> tuple[str, str]:
    """Two tensors of a Conv chain deep inside a real model, such that the second depends only on the first."""
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    return convs[10].input[0], convs[12].output[0]


@pytest.mark.parametrize("name,shape", [("ppocrv4_det", (1, 3, 64, 64)), ("ppocrv4_rec", (1, 3, 48, 320))])
def test_extract_real_models_matches_original(name: str, shape: tuple[int, ...]) -> None:
    path = shared_model(f"{name}.onnx")
    model = onnx.load(path)
    start, end = _chain_cut(model)
    result = extract(model, [TensorSpec(start)], [TensorSpec(end)], path=str(path))
    x = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
    ref = _run(model, {"x": x}, [start, end])
    got = _run(result.model, {start: ref[start]}, [end])
    np.testing.assert_allclose(got[end], ref[end], rtol=1e-5, atol=1e-5)
    assert 0 < len(result.model.graph.node) < len(model.graph.node) / 10


def test_cli_extract_writes_valid_model_and_leaves_input_alone(tmp_path, save_model) -> None:
    path = save_model(small_cnn_model())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    out = tmp_path / "cut.onnx"
    proc = surgeon_ok(
        "extract", path, out, "--inputs", "/relu1/Relu_output_0:auto:float32", "--outputs", "/Add_output_0"
    )
    assert "extract: 12 -> 4 nodes" in proc.stdout
    onnx.checker.check_model(onnx.load(out))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    bad = run_cli(
        "surgeon",
        "extract",
        str(path),
        "--inputs",
        "/relu1/Relu_output_0:1x3x5x5",
        "--outputs",
        "/Add_output_0",
        "-o",
        str(tmp_path / "x.onnx"),
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "contradicts the graph" in bad.stderr
    assert not (tmp_path / "x.onnx").exists()
    missing = run_cli("surgeon", "extract", str(path), "--outputs", "/Add_output_O", "-o", str(tmp_path / "y.onnx"))
    assert missing.returncode == 2 and "did you mean '/Add_output_0'" in missing.stderr
    assert "Traceback" not in missing.stderr + bad.stderr


def test_cli_extract_real_model(tmp_path) -> None:
    path = shared_model("magika_v3_3.onnx")
    model = onnx.load(path)
    target = next(n for n in model.graph.node if n.op_type == "MatMul").output[0]
    out = tmp_path / "magika_cut.onnx"
    proc = run_cli("surgeon", "extract", str(path), "--outputs", target, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    cut = onnx.load(out)
    sys.path.insert(0, str(SHARED_MODELS))
    try:
        from inputs import make_inputs  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(SHARED_MODELS))
    feed = make_inputs("magika_v3_3", 0)
    ref = _run(model, feed, [target])
    got = _run(cut, {k: v for k, v in feed.items() if k in {vi.name for vi in cut.graph.input}}, [target])
    np.testing.assert_array_equal(got[target], ref[target])


# ---------------------------------------------------------------------- the piece's real inputs
def test_saved_real_inputs_make_the_piece_compute_the_full_models_tensors(tmp_path, save_model) -> None:
    from engine_core.data.store import load_inputs
    from engine_core.options import DataOptions
    from engine_core.surgeon.job import SurgeryRequest, run_surgery

    path = save_model(small_cnn_model())
    out = tmp_path / "piece.onnx"
    data = DataOptions(iterations=2, seed=5)
    result = run_surgery(
        SurgeryRequest(
            "extract",
            str(path),
            str(out),
            inputs=["/relu1/Relu_output_0"],
            outputs=["/Add_output_0"],
            data=data,
            save_inputs="",
        )
    )
    assert result.inputs_saved == tmp_path / "piece_inputs.json" and result.inputs_saved.exists()
    assert result.compare_command == f"trtdbg compare {out} --load-inputs {tmp_path / 'piece_inputs.json'}"
    feeds = load_inputs([str(result.inputs_saved)])
    assert len(feeds) == 2 and all(set(f) == {"/relu1/Relu_output_0"} for f in feeds)
    originals = list(data.source([vi for vi in _metas(path)], model=str(path)))
    full = onnx.load(path)
    for feed, original in zip(feeds, originals):
        ref = _run(full, original, ["/relu1/Relu_output_0", "/Add_output_0"])
        np.testing.assert_array_equal(feed["/relu1/Relu_output_0"], ref["/relu1/Relu_output_0"])
        got = _run(onnx.load(out), feed, ["/Add_output_0"])
        np.testing.assert_array_equal(got["/Add_output_0"], ref["/Add_output_0"])
    assert not np.array_equal(feeds[0]["/relu1/Relu_output_0"], feeds[1]["/relu1/Relu_output_0"])


def _metas(path):
    from engine_core.backend.ort import OrtRunner

    with OrtRunner(onnx.load(path), str(path)) as runner:
        return runner.input_metadata()


def test_save_inputs_refuses_overwrites_other_kinds_and_misfitting_data(tmp_path, save_model) -> None:
    from engine_core.options import DataOptions
    from engine_core.surgeon.job import SurgeryRequest, run_surgery

    path = save_model(small_cnn_model())
    out = str(tmp_path / "piece.onnx")
    common = {"inputs": ["/relu1/Relu_output_0"], "outputs": ["/Add_output_0"]}
    with pytest.raises(TrtdbgError, match="would overwrite the model"):
        run_surgery(SurgeryRequest("extract", str(path), out, save_inputs=str(path), **common))
    with pytest.raises(TrtdbgError, match="applies to extract only"):
        run_surgery(SurgeryRequest("sanitize", str(path), out, save_inputs=""))
    dyn = save_model(_dynamic_batch(small_cnn_model()), "dyn.onnx")
    with pytest.raises(TrtdbgError, match="declared float32.*but the data gives float32\\[2, 8, 32, 32\\]"):
        run_surgery(
            SurgeryRequest(
                "extract",
                str(dyn),
                out,
                inputs=["/relu1/Relu_output_0:1x8x32x32"],
                outputs=["/Add_output_0"],
                data=DataOptions(shapes=("input:2x3x32x32",)),
                save_inputs="",
            )
        )
    assert not (tmp_path / "piece.onnx").exists() and not (tmp_path / "piece_inputs.json").exists()


def _dynamic_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim.ClearField("dim_value")
    dim.dim_param = "batch"
    del model.graph.value_info[:]
    for o in model.graph.output:
        o.type.tensor_type.shape.dim[0].dim_param = "batch"
    return model


def test_cli_extract_save_inputs_on_a_real_model_then_compare_the_piece(tmp_path, cli) -> None:
    path = shared_model("magika_v3_3.onnx")
    model = onnx.load(path)
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    start, end = matmuls[len(matmuls) // 2].output[0], model.graph.output[0].name
    out = tmp_path / "magika_tail.onnx"
    script = f"{SHARED_MODELS / 'inputs.py'}:load_magika_v3_3"
    rc, stdout, stderr = cli(  # its shape sub-graphs read the graph input 'bytes' all along: a cut keeps it
        "surgeon", "extract", path, "--inputs", start, "bytes", "--outputs", end, "-o", out, "--save-inputs",
        "--data-loader-script", script,
    )  # fmt: skip
    assert rc == 0, stderr
    saved = tmp_path / "magika_tail_inputs.json"
    command = f"trtdbg compare {out} --load-inputs {saved}"
    assert f"compare the piece alone: {command}" in stdout and "load_magika_v3_3" in stdout
    from engine_core.data.store import load_inputs

    sys.path.insert(0, str(SHARED_MODELS))
    try:
        from inputs import make_inputs  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(SHARED_MODELS))
    feeds = load_inputs([str(saved)])
    assert len(feeds) == 4
    for k, feed in enumerate(feeds):
        original = make_inputs("magika_v3_3", k)
        ref = _run(model, original, [start, end])
        assert set(feed) == {start, "bytes"} and np.array_equal(feed["bytes"], original["bytes"])
        np.testing.assert_array_equal(feed[start], ref[start])
        np.testing.assert_array_equal(_run(onnx.load(out), feed, [end])[end], ref[end])
    rc, stdout, stderr = cli(*command.split()[1:], "--subject", "ort", "--json")
    assert rc == 0, stderr
