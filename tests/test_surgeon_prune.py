"""surgeon prune (bypass or cut to inputs) and export with or without external data."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine_core.errors import TrtdbgError
from engine_core.model.loader import load_model
from engine_core.model.save import save_model
from engine_core.model.synthetic import small_cnn_model
from engine_core.surgeon.insert import insert_node
from engine_core.surgeon.prune import prune_nodes
from engine_core.surgeon.verify import compare_models
from tests.conftest import run_cli, shared_model, surgeon_ok

FEED = {"input": np.random.default_rng(5).standard_normal((1, 3, 32, 32)).astype(np.float32)}


def test_pruning_an_inserted_identity_restores_the_outputs() -> None:
    model = small_cnn_model()
    wrapped = insert_node(model, "Identity", ["/Add_output_0"], ["/Add_output_0"], name="/probe").model
    result = prune_nodes(wrapped, ["/probe"])
    assert result.changes.removed == ("/probe",)
    assert all(d.equal for d in compare_models(model, None, result.model, [FEED]))


def test_bypass_chain_and_graph_output() -> None:
    model = small_cnn_model()
    chain = prune_nodes(model, ["/relu2/Relu", "/Add"])
    assert set(chain.changes.removed) == {"/relu2/Relu", "/Add", "/skip/Conv"}  # /skip/Conv fed only /Add
    assert any("1 node(s) that fed only the pruned nodes" in n for n in chain.changes.notes)
    pool = next(n for n in chain.model.graph.node if n.op_type == "GlobalAveragePool")
    assert list(pool.input) == ["/conv2/Conv_output_0"]
    last = prune_nodes(model, ["/Softmax"])
    assert [vi.name for vi in last.model.graph.output] == ["/Div_output_0", "features"]


def test_as_inputs_cuts_the_graph() -> None:
    result = prune_nodes(small_cnn_model(), ["/Add"], as_inputs=True)
    assert [vi.name for vi in result.model.graph.input] == ["input", "/Add_output_0"]
    assert len(result.model.graph.node) == 6


def test_prune_errors_are_one_line() -> None:
    model = small_cnn_model()
    for nodes, pattern in (
        (["/relu9/Relu"], "no top-level node named '/relu9/Relu'.*did you mean"),
        (["/pool/GlobalAveragePool"], "shape \\[1, 8, 1, 1\\] but its input"),
        ([], "at least one node"),
    ):
        with pytest.raises(TrtdbgError, match=pattern) as info:
            prune_nodes(model, nodes)
        assert "\n" not in str(info.value)
    cast = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], "/cast", to=TensorProto.FLOAT16)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2])],
    )
    with pytest.raises(TrtdbgError, match="output is float16 but its input 'x' is float32"):
        prune_nodes(helper.make_model(cast, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), ["/cast"])


def test_export_external_data_round_trip(tmp_path) -> None:
    model = small_cnn_model()
    written = save_model(model, tmp_path / "m.onnx", external_data=True, threshold=256)
    assert [p.name for p in written] == ["m.onnx.data", "m.onnx"]
    assert (tmp_path / "m.onnx").stat().st_size < 2000 < (tmp_path / "m.onnx.data").stat().st_size
    bare = onnx.load(tmp_path / "m.onnx", load_external_data=False)
    big = {t.name for t in model.graph.initializer if numpy_helper.to_array(t).nbytes >= 256}
    assert {t.name for t in bare.graph.initializer if t.data_location == TensorProto.EXTERNAL} == big
    assert 0 < len(big) < len(model.graph.initializer)
    again = load_model(tmp_path / "m.onnx")
    for a, b in zip(model.graph.initializer, again.graph.initializer):
        np.testing.assert_array_equal(numpy_helper.to_array(a), numpy_helper.to_array(b))
    embedded = save_model(again, tmp_path / "e.onnx")
    assert [p.name for p in embedded] == ["e.onnx"]
    reloaded = onnx.load(tmp_path / "e.onnx")
    assert not any(t.data_location == TensorProto.EXTERNAL for t in reloaded.graph.initializer)
    assert reloaded.graph.node == model.graph.node
    assert all(d.equal for d in compare_models(model, None, reloaded, [FEED]))
    with pytest.raises(TrtdbgError, match="refusing to overwrite input file"):
        save_model(model, tmp_path / "m.onnx", external_data=True, protect=[tmp_path / "m.onnx.data"])


def test_cli_prune_real_model_with_external_data(tmp_path) -> None:
    path = shared_model("magika_v3_3.onnx")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    model = onnx.load(path)
    target = next(n for n in model.graph.node if n.op_type == "MatMul")
    out = tmp_path / "magika_pruned.onnx"
    surgeon_ok("prune", path, out, "--nodes", target.name, "--as-inputs", "--external-data")
    assert (tmp_path / "magika_pruned.onnx.data").exists()
    pruned = load_model(out)
    assert target.output[0] in [vi.name for vi in pruned.graph.input]
    assert target.name not in [n.name for n in pruned.graph.node]
    onnx.checker.check_model(pruned)
    bad = run_cli("surgeon", "prune", str(path), "--nodes", "no_such_node", "-o", str(tmp_path / "x.onnx"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no top-level node" in bad.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
